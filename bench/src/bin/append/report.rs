//! The results as a Markdown table for the README and as JSON, with the machine they came from.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use event_store::{EventStore, PoolSettings};
use serde::Serialize;
use sqlx::{Connection, MySqlConnection, Row};

use crate::contenders::{Backend, Variant};
use crate::driver::Measurement;

/// The targets, at 32 writers on MariaDB: the store's throughput over each baseline's.
const TARGET_WRITERS: usize = 32;
const TARGET_OVER_PLAIN: f64 = 0.7;
const TARGET_OVER_PEER: f64 = 2.0;

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

/// One variant at one writer count on one backend.
#[derive(Debug, Serialize)]
pub struct Run {
    pub backend: Backend,
    pub writers: usize,
    pub variant: Variant,
    pub measurement: Option<Measurement>,
    pub not_applicable: Option<&'static str>,
    /// The store's throughput over this variant's, from the same round; set by `Report::new`.
    pub store_over_this: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    machine: Machine,
    seconds: u64,
    warmup_seconds: u64,
    runs: Vec<Run>,
}

impl Report {
    pub fn new(machine: Machine, seconds: u64, warmup_seconds: u64, mut runs: Vec<Run>) -> Self {
        let store_rate = |backend, writers| {
            runs.iter()
                .find(|r| {
                    r.variant == Variant::Store && r.backend == backend && r.writers == writers
                })
                .and_then(|r| r.measurement)
                .map(|m| m.events_per_second)
        };
        let ratios: Vec<Option<f64>> =
            runs.iter()
                .map(|run| match (run.variant, run.measurement) {
                    (Variant::Store, _) | (_, None) => None,
                    (_, Some(m)) => store_rate(run.backend, run.writers)
                        .map(|store| store / m.events_per_second),
                })
                .collect();
        for (run, ratio) in runs.iter_mut().zip(ratios) {
            run.store_over_this = ratio;
        }
        Self {
            machine,
            seconds,
            warmup_seconds,
            runs,
        }
    }

    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| Backend | Writers | Variant | Events/s | p50 (ms) | p99 (ms) | Store ÷ variant |\n\
             |---|--:|---|--:|--:|--:|--:|\n",
        );
        let mut reasons = Vec::new();
        for run in &self.runs {
            let cells = match (run.measurement, run.not_applicable) {
                (Some(m), _) => format!(
                    "{:.0} | {:.2} | {:.2} | {}",
                    m.events_per_second,
                    m.p50_ms,
                    m.p99_ms,
                    run.store_over_this
                        .map_or_else(|| "—".to_string(), |r| format!("{r:.2}"))
                ),
                (None, reason) => {
                    if let Some(reason) = reason.filter(|r| !reasons.contains(r)) {
                        reasons.push(reason);
                    }
                    "n/a¹ | n/a | n/a | n/a".to_string()
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {cells} |",
                run.backend.label(),
                run.writers,
                run.variant.label()
            );
        }
        for reason in reasons {
            let _ = writeln!(out, "\n¹ {reason}.");
        }
        if let Some(targets) = self.targets() {
            let _ = write!(out, "\n{targets}");
        }
        let _ = write!(out, "\n{}", self.machine_note());
        out
    }

    /// Whether the store meets the targets, if this report measured them.
    fn targets(&self) -> Option<String> {
        let at = |variant| {
            self.runs.iter().find(|r| {
                r.backend == Backend::Mariadb && r.writers == TARGET_WRITERS && r.variant == variant
            })
        };
        let verdict = |ratio: f64, target: f64| {
            let met = if ratio >= target { "met" } else { "missed" };
            format!("{ratio:.2} (target ≥ {target}: {met})")
        };
        let over_plain = at(Variant::Plain)?.store_over_this?;
        let over_peer = at(Variant::Peer)?.store_over_this?;
        Some(format!(
            "Targets at {TARGET_WRITERS} writers on MariaDB: store ÷ (a) = {}; store ÷ (b) = {}.\n",
            verdict(over_plain, TARGET_OVER_PLAIN),
            verdict(over_peer, TARGET_OVER_PEER),
        ))
    }

    fn machine_note(&self) -> String {
        let machine = &self.machine;
        let mut note = format!(
            "Machine: {} CPUs, benchmark and database on the same host; {} s per run after a {} s \
             warm-up, variants taking turns at each writer count, every run on a fresh database, \
             pools of writers + 1 connections.",
            machine.cpus, self.seconds, self.warmup_seconds
        );
        if let Some(m) = &machine.mariadb {
            let _ = write!(
                note,
                " MariaDB {}: innodb_flush_log_at_trx_commit = {}, log_bin = {}, sync_binlog = {}.",
                m.version, m.innodb_flush_log_at_trx_commit, m.log_bin, m.sync_binlog
            );
        }
        if let Some(s) = &machine.sqlite {
            let _ = write!(
                note,
                " SQLite {}: journal_mode = {}, synchronous = {}.",
                s.version, s.journal_mode, s.synchronous
            );
        }
        note.push('\n');
        note
    }
}
