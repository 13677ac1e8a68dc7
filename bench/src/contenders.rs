//! The three ways of appending one new movie that the benchmark puts side by side, each on a
//! fresh database of its own.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chrono::{Datelike, Utc};
use cqrs_es::Aggregate;
use domain::{
    Description, Director, Genres, Movie, MovieCommand, MovieId, Title, UserId, Username, Year,
};
use event_store::{
    canonical_json, encode_event, event_hash, format_timestamp, now_micros, CommandContext,
    EventMetadata, EventStore, PoolSettings, RecordedEvent,
};
use mysql_es::MysqlCqrs;
use serde::Serialize;
use sqlx::migrate::MigrateDatabase;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, MySql};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Mariadb,
    Sqlite,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Mariadb => "MariaDB",
            Backend::Sqlite => "SQLite",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Marquee's event store executing the command.
    Store,
    /// Baseline (a), the limit: one single-row INSERT per transaction, no event-store logic.
    Plain,
    /// Baseline (b), the peer: cqrs-es with its stock mysql-es store executing the same command.
    Peer,
}

impl Variant {
    pub fn label(self) -> &'static str {
        match self {
            Variant::Store => "Marquee store",
            Variant::Plain => "(a) plain sqlx INSERT",
            Variant::Peer => "(b) cqrs-es + mysql-es",
        }
    }

    /// Why this variant cannot run on `backend`, if it cannot.
    pub fn not_applicable(self, backend: Backend) -> Option<&'static str> {
        (self == Variant::Peer && backend == Backend::Sqlite).then_some(
            "cqrs-es has no stock SQLite store: its family ships postgres-es, mysql-es and \
             dynamo-es only",
        )
    }

    fn database_name(self) -> &'static str {
        match self {
            Variant::Store => "marquee_bench_store",
            Variant::Plain => "marquee_bench_plain",
            Variant::Peer => "marquee_bench_peer",
        }
    }
}

/// Appends one new movie per call; the event is durable when the call returns.
#[async_trait]
pub trait Contender: Send + Sync {
    async fn append_one(&self) -> Result<()>;
    async fn close(&self);
}

/// Where each run gets its fresh database.
pub struct Databases {
    pub mysql_server: String,
    pub sqlite_dir: tempfile::TempDir,
}

impl Databases {
    /// Databases on the MariaDB server at `mysql_url`, and SQLite files in a new temporary
    /// directory.
    pub fn new(mysql_url: &str) -> Result<Self> {
        Ok(Self {
            mysql_server: mysql_url.trim_end_matches('/').to_string(),
            sqlite_dir: tempfile::tempdir().context("a temporary directory for SQLite")?,
        })
    }

    /// An empty database for one run: dropped and recreated on MariaDB, a new file on SQLite.
    async fn fresh(&self, backend: Backend, variant: Variant, writers: usize) -> Result<String> {
        let name = variant.database_name();
        match backend {
            Backend::Mariadb => {
                let url = format!("{}/{name}", self.mysql_server.trim_end_matches('/'));
                if MySql::database_exists(&url).await? {
                    MySql::drop_database(&url).await?;
                }
                MySql::create_database(&url).await?;
                Ok(url)
            }
            Backend::Sqlite => {
                let path = self.sqlite_dir.path().join(format!("{name}_{writers}.db"));
                Ok(format!("sqlite://{}", path.display()))
            }
        }
    }
}

/// Opens `variant` on a fresh database, with a pool big enough that no writer waits for a
/// connection: the one the store's group-commit writer holds comes on top of the writers'.
pub async fn open(
    databases: &Databases,
    backend: Backend,
    variant: Variant,
    writers: usize,
) -> Result<Arc<dyn Contender>> {
    let url = databases.fresh(backend, variant, writers).await?;
    let connections = u32::try_from(writers + 1).context("too many writers")?;
    Ok(match (variant, backend) {
        (Variant::Store, _) => Arc::new(MarqueeStore::open(&url, connections).await?),
        (Variant::Plain, Backend::Mariadb) => Arc::new(PlainMysql::open(&url, connections).await?),
        (Variant::Plain, Backend::Sqlite) => Arc::new(PlainSqlite::open(&url, connections).await?),
        (Variant::Peer, Backend::Mariadb) => Arc::new(MysqlEs::open(&url, connections).await?),
        (Variant::Peer, Backend::Sqlite) => {
            anyhow::bail!(
                "{}",
                Variant::Peer.not_applicable(backend).unwrap_or_default()
            )
        }
    })
}

/// The command every variant that runs commands executes: a new movie, as the API would send it.
fn add_movie(id: MovieId) -> Result<MovieCommand> {
    let now = Utc::now();
    Ok(MovieCommand::Add {
        id,
        title: Title::parse("The Matrix")?,
        year: Year::parse(1999, now.year())?,
        director: Director::parse("Lana Wachowski")?,
        genres: Genres::parse(["Science Fiction", "Action"])?,
        description: Description::parse("A hacker learns the truth.")?,
        added_by: UserId::for_username(&Username::parse("bench")?),
        at: now,
    })
}

/// What the API puts in a request's events: the actor's client IP and user agent, which the
/// store seals with the actor's key (crypto-shredding), so the benchmark pays for it too.
fn request_metadata() -> Result<EventMetadata> {
    Ok(EventMetadata {
        actor: Some("bench".into()),
        actor_id: Some(UserId::for_username(&Username::parse("bench")?).to_string()),
        client_ip: Some("192.0.2.10".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) marquee-bench".into()),
        ..EventMetadata::system("bench")
    })
}

fn new_movie_id() -> MovieId {
    MovieId::from(Uuid::new_v4())
}

struct MarqueeStore {
    store: EventStore,
}

impl MarqueeStore {
    async fn open(url: &str, connections: u32) -> Result<Self> {
        let settings = PoolSettings {
            max_connections: connections,
            ..PoolSettings::default()
        };
        let upcaster = Arc::new(
            |event_type: &str, version: u32, payload: serde_json::Value| {
                domain::upcast(event_type, version, payload).map_err(|e| e.to_string())
            },
        );
        let store = EventStore::open(url, settings, upcaster).await?;
        Ok(Self { store })
    }
}

#[async_trait]
impl Contender for MarqueeStore {
    async fn append_one(&self) -> Result<()> {
        let id = new_movie_id();
        let context = CommandContext {
            metadata: request_metadata()?,
            data_subject: None,
        };
        // The API's path for a new movie: its id was just minted, so nothing is loaded.
        self.store
            .execute_new::<Movie>(&id.to_string(), add_movie(id)?, &(), &context)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.store.database().close().await;
    }
}

/// A row of the store's `events` table holding the store's own MovieAdded event, so the
/// baseline writes rows of the same size.
struct EventRow {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    schema_version: i64,
    payload: String,
    metadata: String,
    recorded_at: String,
    hash: String,
}

impl EventRow {
    async fn movie_added() -> Result<Self> {
        let id = new_movie_id();
        let events = Movie::default().handle(add_movie(id)?, &()).await?;
        let event = encode_event(&events[0], None)?;
        let mut recorded = RecordedEvent {
            position: 1,
            event_id: Uuid::new_v4(),
            aggregate_type: Movie::aggregate_type(),
            aggregate_id: id.to_string(),
            sequence: 1,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
            metadata: serde_json::to_value(request_metadata()?)?,
            data_subject: None,
            recorded_at: now_micros(),
            prev_hash: None,
            hash: String::new(),
        };
        recorded.hash = event_hash(None, &recorded);
        Ok(Self {
            aggregate_type: recorded.aggregate_type,
            aggregate_id: recorded.aggregate_id,
            sequence: recorded.sequence,
            event_type: recorded.event_type,
            schema_version: i64::from(recorded.schema_version),
            payload: canonical_json(&recorded.payload),
            metadata: canonical_json(&recorded.metadata),
            recorded_at: format_timestamp(recorded.recorded_at),
            hash: recorded.hash,
        })
    }
}

/// The columns of the store's `events` table; the position comes from the database.
const INSERT_PLAIN: &str = "INSERT INTO plain_events (event_id, aggregate_type, aggregate_id, \
     sequence, event_type, schema_version, payload, metadata, recorded_at, hash) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Binds `row` with a fresh event id to `INSERT_PLAIN`; a macro because sqlx's query types differ
/// per database.
macro_rules! bind_row {
    ($row:expr) => {
        sqlx::query(INSERT_PLAIN)
            .bind(Uuid::new_v4().to_string())
            .bind(&$row.aggregate_type)
            .bind(&$row.aggregate_id)
            .bind($row.sequence)
            .bind(&$row.event_type)
            .bind($row.schema_version)
            .bind(&$row.payload)
            .bind(&$row.metadata)
            .bind(&$row.recorded_at)
            .bind(&$row.hash)
    };
}

/// The store's `events` columns with only a primary key: no stream index, no head row.
const PLAIN_TABLE_MYSQL: &str = "CREATE TABLE plain_events (
    position       BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id       CHAR(36)     NOT NULL,
    aggregate_type VARCHAR(64)  NOT NULL,
    aggregate_id   VARCHAR(128) NOT NULL,
    sequence       BIGINT       NOT NULL,
    event_type     VARCHAR(128) NOT NULL,
    schema_version BIGINT       NOT NULL,
    payload        LONGTEXT     NOT NULL CHECK (JSON_VALID(payload)),
    metadata       LONGTEXT     NOT NULL CHECK (JSON_VALID(metadata)),
    data_subject   VARCHAR(128) NULL,
    recorded_at    VARCHAR(32)  NOT NULL,
    prev_hash      CHAR(64)     NULL,
    hash           CHAR(64)     NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin";

const PLAIN_TABLE_SQLITE: &str = "CREATE TABLE plain_events (
    position       INTEGER NOT NULL PRIMARY KEY,
    event_id       TEXT    NOT NULL,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    metadata       TEXT    NOT NULL CHECK (json_valid(metadata)),
    data_subject   TEXT    NULL,
    recorded_at    TEXT    NOT NULL,
    prev_hash      TEXT    NULL,
    hash           TEXT    NOT NULL
)";

struct PlainMysql {
    pool: MySqlPool,
    row: EventRow,
}

impl PlainMysql {
    async fn open(url: &str, connections: u32) -> Result<Self> {
        let pool = MySqlPoolOptions::new()
            .max_connections(connections)
            .connect(url)
            .await?;
        pool.execute(PLAIN_TABLE_MYSQL).await?;
        Ok(Self {
            pool,
            row: EventRow::movie_added().await?,
        })
    }
}

#[async_trait]
impl Contender for PlainMysql {
    async fn append_one(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bind_row!(self.row).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

struct PlainSqlite {
    pool: SqlitePool,
    row: EventRow,
}

impl PlainSqlite {
    /// The store's SQLite settings: WAL, synchronous FULL, the same busy timeout.
    async fn open(url: &str, connections: u32) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await?;
        pool.execute(PLAIN_TABLE_SQLITE).await?;
        Ok(Self {
            pool,
            row: EventRow::movie_added().await?,
        })
    }
}

#[async_trait]
impl Contender for PlainSqlite {
    async fn append_one(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bind_row!(self.row).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// mysql-es 0.4.12's own schema (db/init.sql): its events and snapshots tables, with `NOT NULL`
/// moved before the column `CHECK`s, the only order MariaDB parses.
const MYSQL_ES_SCHEMA: [&str; 2] = [
    "CREATE TABLE events (
        aggregate_type varchar(255) NOT NULL,
        aggregate_id   varchar(255) NOT NULL,
        sequence       bigint       NOT NULL CHECK (sequence >= 0),
        event_type     text         NOT NULL,
        event_version  text         NOT NULL,
        payload        json         NOT NULL,
        metadata       json         NOT NULL,
        CONSTRAINT events_pk PRIMARY KEY (aggregate_type, aggregate_id, sequence)
    )",
    "CREATE TABLE snapshots (
        aggregate_type   varchar(255) NOT NULL,
        aggregate_id     varchar(255) NOT NULL,
        last_sequence    bigint       NOT NULL CHECK (last_sequence >= 0),
        current_snapshot bigint       NOT NULL CHECK (current_snapshot >= 0),
        payload          json         NOT NULL,
        CONSTRAINT snapshots_pk PRIMARY KEY (aggregate_type, aggregate_id)
    )",
];

struct MysqlEs {
    pool: MySqlPool,
    cqrs: MysqlCqrs<Movie>,
}

impl MysqlEs {
    async fn open(url: &str, connections: u32) -> Result<Self> {
        let pool = MySqlPoolOptions::new()
            .max_connections(connections)
            .connect(url)
            .await?;
        for table in MYSQL_ES_SCHEMA {
            pool.execute(table).await?;
        }
        let cqrs = mysql_es::mysql_cqrs(pool.clone(), vec![], ());
        Ok(Self { pool, cqrs })
    }
}

#[async_trait]
impl Contender for MysqlEs {
    async fn append_one(&self) -> Result<()> {
        let id = new_movie_id();
        self.cqrs.execute(&id.to_string(), add_movie(id)?).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
