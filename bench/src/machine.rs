//! The machine the figures came from: CPUs and the databases' durability settings.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use event_store::{EventStore, PoolSettings};
use serde::Serialize;
use sqlx::{Connection, MySqlConnection, Row};

/// What the figures depend on besides the code.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub mariadb: Option<MariadbSettings>,
    pub sqlite: Option<SqliteSettings>,
}

#[derive(Debug, Serialize)]
pub struct MariadbSettings {
    pub version: String,
    pub innodb_flush_log_at_trx_commit: String,
    pub log_bin: String,
    pub sync_binlog: String,
}

/// As the store's own connections report them, so the note shows what ran, not what was meant.
#[derive(Debug, Serialize)]
pub struct SqliteSettings {
    pub version: String,
    pub journal_mode: String,
    pub synchronous: String,
}

/// The 1, 5 and 15 minute load averages of the machine, as `/proc/loadavg` gives them.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

impl Machine {
    pub async fn probe(mysql_server: Option<&str>, sqlite_dir: Option<&Path>) -> Result<Self> {
        let mariadb = match mysql_server {
            Some(url) => Some(probe_mariadb(url).await?),
            None => None,
        };
        let sqlite = match sqlite_dir {
            Some(dir) => Some(probe_sqlite(dir).await?),
            None => None,
        };
        Ok(Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mariadb,
            sqlite,
        })
    }
}

async fn probe_mariadb(url: &str) -> Result<MariadbSettings> {
    let mut conn = MySqlConnection::connect(url).await?;
    // As text: the server variables' integer types differ between MySQL and MariaDB.
    let row = sqlx::query(
        "SELECT VERSION(), CAST(@@innodb_flush_log_at_trx_commit AS CHAR), \
         CAST(@@log_bin AS CHAR), CAST(@@sync_binlog AS CHAR)",
    )
    .fetch_one(&mut conn)
    .await?;
    let settings = MariadbSettings {
        version: row.try_get(0)?,
        innodb_flush_log_at_trx_commit: row.try_get(1)?,
        log_bin: row.try_get(2)?,
        sync_binlog: row.try_get(3)?,
    };
    conn.close().await?;
    Ok(settings)
}

async fn probe_sqlite(dir: &Path) -> Result<SqliteSettings> {
    let url = format!("sqlite://{}", dir.join("probe.db").display());
    let store = EventStore::open(
        &url,
        PoolSettings::default(),
        Arc::new(event_store::no_upcasting),
    )
    .await?;
    let pool = store.database().pool();
    let mut conn = pool.acquire().await?;
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut *conn)
        .await?;
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await?;
    drop(conn);
    pool.close().await;
    Ok(SqliteSettings {
        version,
        journal_mode,
        synchronous: match synchronous {
            0 => "OFF".into(),
            1 => "NORMAL".into(),
            2 => "FULL".into(),
            3 => "EXTRA".into(),
            other => other.to_string(),
        },
    })
}

impl Machine {
    /// One sentence per database on its durability settings, for the note under a table.
    pub fn database_note(&self) -> String {
        let mut note = String::new();
        if let Some(m) = &self.mariadb {
            let _ = write!(
                note,
                " MariaDB {}: innodb_flush_log_at_trx_commit = {}, log_bin = {}, sync_binlog = {}.",
                m.version, m.innodb_flush_log_at_trx_commit, m.log_bin, m.sync_binlog
            );
        }
        if let Some(s) = &self.sqlite {
            let _ = write!(
                note,
                " SQLite {}: journal_mode = {}, synchronous = {}.",
                s.version, s.journal_mode, s.synchronous
            );
        }
        note
    }
}
