//! The connection to SQLite or MySQL. Both speak the same SQL here (`?` placeholders, text
//! timestamps, JSON kept as text), so one set of queries serves both through sqlx's `Any`
//! driver; only the write lock, pool settings and migrations differ per backend.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{install_default_drivers, AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Row};

use crate::error::{Result, StoreError};
use crate::model::{parse_timestamp, RecordedEvent};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/mysql");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Backend::MySql)
        } else {
            Err(StoreError::UnsupportedDatabase(redact_url(url)))
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::MySql => &MYSQL_MIGRATIONS,
        }
    }
}

/// A URL with its password replaced, fit for errors and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..scheme_end], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time and makes the others sleep and retry (in steps of up to
    /// 100 ms); writers in this process queue here instead, in order.
    sqlite_writers: Arc<tokio::sync::Mutex<()>>,
    /// MySQL: where `connect_native` connects, outside the pool.
    native: Option<NativeOptions>,
}

/// The MySQL connect options, kept out of `Debug` (they hold the password).
#[derive(Clone)]
struct NativeOptions(Arc<MySqlConnectOptions>);

impl std::fmt::Debug for NativeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NativeOptions(..)")
    }
}

/// The session every MySQL connection gets: the pool's (`after_connect`) and `connect_native`'s.
const MYSQL_SESSION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
     SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,ONLY_FULL_GROUP_BY'";

/// Pool settings that matter for an event store.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Database {
    /// Connects, creating the SQLite file or the MySQL database when it does not exist yet.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self> {
        install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}mode=rwc")
            }
            _ => url.to_string(),
        };
        if backend == Backend::MySql && !Any::database_exists(&url).await? {
            // Another process may create it at the same moment; what matters is that it exists.
            if let Err(error) = Any::create_database(&url).await {
                if !Any::database_exists(&url).await? {
                    return Err(error.into());
                }
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    let session = match backend {
                        // WAL lets readers run beside the writer; FULL makes every acknowledged
                        // commit durable, the same promise MySQL gives with its defaults.
                        // A page cache of 256 KiB instead of 2 MiB: in WAL mode a connection
                        // drops its whole cache when it starts reading after any other
                        // connection's commit, so under writes the cache only serves the one
                        // query, and each connection's cache would otherwise grow towards 2 MiB
                        // as the tables a count scans grow (16 connections: 32 MiB).
                        Backend::Sqlite => {
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                             PRAGMA cache_size = -256;"
                        }
                        Backend::MySql => MYSQL_SESSION,
                    };
                    conn.execute(session).await.map(|_| ())
                })
            })
            .connect(&url)
            .await?;
        let native = match backend {
            Backend::MySql => Some(NativeOptions(Arc::new(MySqlConnectOptions::from_str(
                &url,
            )?))),
            Backend::Sqlite => None,
        };
        Ok(Self {
            pool,
            backend,
            sqlite_writers: Arc::default(),
            native,
        })
    }

    /// MySQL: a new connection of sqlx's own MySQL driver, outside the pool, with the pool's
    /// session settings; `None` on SQLite. For bulk work, where the `Any` driver's conversion of
    /// every value and argument costs more than the work: rebuilds streaming the whole log,
    /// loading tables.
    pub async fn connect_native(&self) -> Result<Option<MySqlConnection>> {
        let Some(NativeOptions(options)) = &self.native else {
            return Ok(None);
        };
        let mut conn = options.connect().await?;
        conn.execute(MYSQL_SESSION).await?;
        Ok(Some(conn))
    }

    pub async fn migrate(&self) -> Result<()> {
        self.backend.migrator().run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for this process's turn to write (SQLite); hold it until the write transaction ends.
    /// MySQL locks rows, not the database, and needs no turn.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(Arc::clone(&self.sqlite_writers).lock_owned().await),
            Backend::MySql => None,
        }
    }

    /// Starts a transaction that holds the store's write lock from its first statement.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(match self.backend {
            // IMMEDIATE takes SQLite's write lock up front, so no reader-turned-writer can deadlock.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::MySql => self.pool.begin().await?,
        })
    }

    /// Locks the head row (the one serialization point of all writers, in every process) and
    /// moves it on by `count` positions in the same statement; returns the head before.
    pub async fn reserve_positions(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        count: i64,
    ) -> Result<i64> {
        let new_head: i64 = match self.backend {
            Backend::Sqlite => sqlx::query(
                "UPDATE event_store_head SET last_position = last_position + ? WHERE id = 1 \
                 RETURNING last_position",
            )
            .bind(count)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?,
            // MySQL's UPDATE has no RETURNING; LAST_INSERT_ID(expr) hands the value back in the
            // same round trip.
            Backend::MySql => sqlx::query(
                "UPDATE event_store_head SET last_position = LAST_INSERT_ID(last_position + ?) \
                 WHERE id = 1",
            )
            .bind(count)
            .execute(&mut **tx)
            .await?
            .last_insert_id()
            .ok_or_else(|| StoreError::Corrupt {
                position: 0,
                reason: "the head row did not report its new position".into(),
            })?,
        };
        Ok(new_head - count)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The column list every event query selects, in the order `decode_event` reads.
pub const EVENT_COLUMNS: &str = "position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, schema_version, payload, metadata, data_subject, recorded_at, prev_hash, hash";

pub fn decode_event(row: &AnyRow) -> Result<RecordedEvent> {
    let position: i64 = row.try_get(0)?;
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let event_id: String = row.try_get(1)?;
    let payload = long_text(row, 7, position)?;
    let metadata = long_text(row, 8, position)?;
    let recorded_at: String = row.try_get(10)?;
    let schema_version: i64 = row.try_get(6)?;
    Ok(RecordedEvent {
        position,
        event_id: uuid::Uuid::from_str(&event_id).map_err(|e| corrupt(format!("event id: {e}")))?,
        aggregate_type: row.try_get(2)?,
        aggregate_id: row.try_get(3)?,
        sequence: row.try_get(4)?,
        event_type: row.try_get(5)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema version {schema_version}")))?,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt(format!("payload: {e}")))?,
        metadata: serde_json::from_str(&metadata).map_err(|e| corrupt(format!("metadata: {e}")))?,
        data_subject: row.try_get(9)?,
        recorded_at: parse_timestamp(&recorded_at)
            .ok_or_else(|| corrupt(format!("recorded_at {recorded_at:?}")))?,
        prev_hash: row.try_get(11)?,
        hash: row.try_get(12)?,
    })
}

/// Reads a TEXT column. MySQL sends TEXT types as BLOB types with a text character set, which
/// sqlx's `Any` driver reports as bytes; SQLite sends text.
pub fn text_column(row: &AnyRow, index: usize) -> std::result::Result<Option<String>, sqlx::Error> {
    match row.try_get::<Option<String>, _>(index) {
        Ok(text) => Ok(text),
        Err(_) => row
            .try_get::<Option<Vec<u8>>, _>(index)?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
                    index: index.to_string(),
                    source: Box::new(e),
                })
            })
            .transpose(),
    }
}

fn long_text(row: &AnyRow, index: usize, position: i64) -> Result<String> {
    text_column(row, index)?.ok_or_else(|| StoreError::Corrupt {
        position,
        reason: format!("column {index} is NULL"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("mysql://app:s3cret@db:3306/marquee"),
            "mysql://app:***@db:3306/marquee"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1/m"),
            "mysql://root@127.0.0.1/m"
        );
        assert_eq!(redact_url("sqlite://data/m.db"), "sqlite://data/m.db");
    }

    #[test]
    fn picks_the_backend_from_the_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("mysql://h/db").unwrap(), Backend::MySql);
        assert!(Backend::from_url("postgres://h/db").is_err());
    }
}
