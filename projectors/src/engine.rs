//! The guarded apply every projector runs, whatever delivered the events: the store itself
//! (embedded tailing, replay) or the bus (SQS, at least once, in any order).
//!
//! Per projection and stream, `projection_streams` holds the last sequence applied. In one
//! transaction the engine locks those rows, drops what was applied before, reads from the store
//! whatever a stream is missing before a delivered event, applies the rest in stream order and
//! moves the rows on. A duplicate therefore changes nothing, a gap is filled, and an effect is
//! written exactly once per event.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use event_store::{
    format_timestamp, text_column, Backend, Database, EventStore, RecordedEvent, StreamId,
};
use sqlx::Row;
use tracing::{debug, error, warn};

use crate::error::{ProjectorError, Result};
use crate::outbox;
use crate::pipeline::Failpoint;
use crate::sql::{self, insert_rows, placeholders, OnConflict, Tx, Value};
use crate::status;

/// One consumer of the event log with its own tables and checkpoints.
#[async_trait]
pub trait Projection: Send + Sync {
    fn name(&self) -> &'static str;

    /// Applies `events` (in position order, each exactly once) inside `tx`.
    async fn apply(&self, tx: &mut Tx, backend: Backend, events: &[RecordedEvent]) -> Result<()>;

    /// Sends what `apply` left in the outbox; runs after each commit and on every schedule.
    async fn deliver(&self, _db: &Database) -> Result<()> {
        Ok(())
    }

    /// An empty in-memory fold for rebuilding this projection from the whole log, or `None` when
    /// replaying would repeat effects people or other systems already received.
    fn rebuild(&self) -> Option<Box<dyn Rebuild>>;
}

/// A projection folded in memory from the whole log, then written once into its emptied tables:
/// no row is read back or written twice, whatever the number of events that touch it.
#[async_trait]
pub trait Rebuild: Send {
    /// The tables a replay empties and fills.
    fn tables(&self) -> &'static [&'static str];

    /// Folds one event (in position order, each once).
    fn apply(&mut self, event: &RecordedEvent) -> Result<()>;

    /// Inserts every row of the fold into the emptied tables.
    async fn write(&self, tx: &mut Tx, backend: Backend) -> Result<()>;
}

/// Where a projection stands: the highest position applied, how far behind the head, its last error.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: i64,
    pub lag: i64,
    pub last_error: Option<String>,
    pub updated_at: Option<String>,
}

/// What one guarded apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    pub duplicates: usize,
    /// Events read from the store because a stream had a gap before a delivered event.
    pub filled: usize,
    pub last_position: Option<i64>,
}

/// A projection bound to the store it reads missing events from.
#[derive(Clone)]
pub struct Projector {
    store: EventStore,
    projection: Arc<dyn Projection>,
    failpoint: Option<Failpoint>,
}

/// Where delivered events come from: the store is trusted as it is; a bus message is checked
/// against the store, so a forged or garbled message cannot put anything into a read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Store,
    Bus,
}

impl Projector {
    pub fn new(store: EventStore, projection: Arc<dyn Projection>) -> Self {
        Self {
            store,
            projection,
            failpoint: None,
        }
    }

    /// Arms a crash test's failpoint.
    pub fn with_failpoint(mut self, failpoint: Option<Failpoint>) -> Self {
        self.failpoint = failpoint;
        self
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn projection(&self) -> &Arc<dyn Projection> {
        &self.projection
    }

    /// Applies delivered events once each, in stream order, filling gaps from the store, then
    /// sends the effects that left in the outbox.
    pub async fn apply(&self, delivered: Vec<RecordedEvent>, source: Source) -> Result<Applied> {
        let outcome = self.apply_durably(delivered, source).await?;
        if outcome.applied > 0 {
            self.deliver().await;
        }
        Ok(outcome)
    }

    /// `apply` up to its commit: the effects wait in the outbox for the caller's `deliver`.
    pub(crate) async fn apply_durably(
        &self,
        delivered: Vec<RecordedEvent>,
        source: Source,
    ) -> Result<Applied> {
        if delivered.is_empty() {
            return Ok(Applied::default());
        }
        let db = self.store.database();
        let turn = db.write_turn().await;
        let mut tx = db.begin_write().await?;
        if let Some(since) = lock_status(&mut tx, db.backend(), self.name()).await? {
            return Err(ProjectorError::ReplaySwapping {
                projection: self.name(),
                since,
            });
        }
        let mut streams: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
        for event in delivered {
            streams
                .entry(guard_key(&event.stream()))
                .or_default()
                .push(event);
        }
        let keys: Vec<String> = streams.keys().cloned().collect();
        let guards = self.lock_guards(&mut tx, db.backend(), &keys).await?;
        let mut outcome = Applied::default();
        let mut to_apply = Vec::new();
        let mut moved = Vec::new();
        for (key, mut events) in streams {
            events.sort_by_key(|e| e.sequence);
            events.dedup_by_key(|e| e.sequence);
            let last = guards.get(&key).copied().unwrap_or(0);
            let delivered_count = events.len();
            events.retain(|e| e.sequence > last);
            outcome.duplicates += delivered_count - events.len();
            let Some(newest) = events.last().map(|e| e.sequence) else {
                continue;
            };
            let contiguous = events
                .iter()
                .zip(last + 1..)
                .all(|(event, expected)| event.sequence == expected);
            if source == Source::Bus || !contiguous {
                let stream = events[0].stream();
                let stored: Vec<RecordedEvent> = self
                    .store
                    .read_stream(&stream, last)
                    .await?
                    .into_iter()
                    .take_while(|e| e.sequence <= newest)
                    .collect();
                for event in &events {
                    let matches = stored
                        .iter()
                        .any(|s| s.sequence == event.sequence && s.hash == event.hash);
                    if !matches {
                        return Err(ProjectorError::Poison {
                            message_id: event.event_id.to_string(),
                            reason: format!(
                                "{stream} has no event {} with hash {}",
                                event.sequence, event.hash
                            ),
                        });
                    }
                }
                outcome.filled += stored.len() - events.len();
                events = stored;
            }
            moved.push(vec![
                Value::from(self.name()),
                Value::from(key),
                Value::from(newest),
            ]);
            to_apply.extend(events);
        }
        to_apply.sort_by_key(|e| e.position);
        outcome.applied = to_apply.len();
        outcome.last_position = to_apply.last().map(|e| e.position);
        if !to_apply.is_empty() {
            self.projection
                .apply(&mut tx, db.backend(), &to_apply)
                .await?;
            write_guards(
                &mut tx,
                db.backend(),
                OnConflict::Replace(&["last_sequence"]),
                &moved,
            )
            .await?;
        }
        if let Some(position) = outcome.last_position {
            status::advance(&mut *tx, db.backend(), self.name(), position).await?;
        }
        tx.commit().await?;
        drop(turn);
        if outcome.applied > 0 {
            self.crash_if_armed().await;
        }
        debug!(
            projection = self.name(),
            applied = outcome.applied,
            duplicates = outcome.duplicates,
            filled = outcome.filled,
            "events projected"
        );
        Ok(outcome)
    }

    pub(crate) fn failpoint(&self) -> Option<Failpoint> {
        self.failpoint
    }

    /// The failpoint `projector-after-apply`: the transaction is in, nothing after it happened.
    /// Other projectors of the process are stopped wherever they are, except inside a remote
    /// call of their outbox, which it lets finish first (see `outbox`).
    async fn crash_if_armed(&self) {
        let Some(Failpoint::ProjectorAfterApply { projection }) = self.failpoint else {
            return;
        };
        if projection.is_none_or(|name| name == self.name()) {
            let _quiet = outbox::quiesce().await;
            error!(
                projection = self.name(),
                "failpoint projector-after-apply: aborting after the commit"
            );
            std::process::abort();
        }
    }

    /// Sends pending effects; a failure stays in the outbox for the next attempt.
    pub async fn deliver(&self) {
        if let Err(error) = self.projection.deliver(self.store.database()).await {
            warn!(projection = self.name(), %error, "effects not delivered yet; they stay in the outbox");
            self.record_error(&error.to_string()).await;
        }
    }

    /// Applies the store's next events after this projection's position; returns how many.
    pub async fn catch_up(&self, page: u32) -> Result<usize> {
        let position = self.position().await?;
        let events = self.store.read_all(position, page).await?;
        let count = events.len();
        self.apply(events, Source::Store).await?;
        Ok(count)
    }

    /// The highest position applied so far.
    pub async fn position(&self) -> Result<i64> {
        status::position(self.store.database(), self.name()).await
    }

    /// Keeps the latest failure where operators (and the `projections` query) see it.
    pub async fn record_error(&self, error: &str) {
        status::record_error(self.store.database(), self.name(), error).await;
    }

    async fn lock_guards(
        &self,
        tx: &mut Tx,
        backend: Backend,
        keys: &[String],
    ) -> Result<BTreeMap<String, i64>> {
        // Create missing rows first so that the locking read below has rows to lock (a locking
        // read of absent rows takes gap locks on MySQL, which deadlock between consumers).
        let fresh: Vec<Vec<Value>> = keys
            .iter()
            .map(|key| {
                vec![
                    Value::from(self.name()),
                    Value::from(key.as_str()),
                    Value::Int(0),
                ]
            })
            .collect();
        write_guards(tx, backend, OnConflict::Ignore, &fresh).await?;
        let lock = match backend {
            Backend::MySql => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let mut guards = BTreeMap::new();
        for chunk in sql::key_chunks(keys) {
            let sql_text = format!(
                "SELECT aggregate_id, last_sequence FROM projection_streams \
                 WHERE projection = ? AND aggregate_id IN ({}){lock}",
                placeholders(chunk.len())
            );
            let mut values = vec![Value::from(self.name())];
            values.extend(chunk.iter().map(|k| Value::from(k.as_str())));
            for row in sql::bind_all(sqlx::query(&sql_text), &values)
                .fetch_all(&mut **tx)
                .await?
            {
                let key = text_column(&row, 0)?.unwrap_or_default();
                guards.insert(key, row.try_get::<i64, _>(1)?);
            }
        }
        Ok(guards)
    }
}

/// Takes the projection's status row (creating it at position 0) for the transaction: applies to
/// one projection and its replay's reset then happen one after the other, never interleaved.
/// Takes the projection's status row for the transaction (created if missing) and returns when
/// a replay began swapping its tables in (`swapping_since`), if it has not finished.
pub(crate) async fn lock_status(
    tx: &mut Tx,
    backend: Backend,
    name: &str,
) -> Result<Option<String>> {
    // Lock first and create only when missing: INSERT IGNORE on an existing row takes a shared
    // lock, and two transactions upgrading theirs to exclusive deadlock on MySQL.
    let lock = match backend {
        Backend::MySql => "SELECT swapping_since FROM projection_status WHERE name = ? FOR UPDATE",
        Backend::Sqlite => "SELECT swapping_since FROM projection_status WHERE name = ?",
    };
    if let Some(row) = sqlx::query(lock)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
    {
        return Ok(text_column(&row, 0)?);
    }
    insert_rows(
        tx,
        backend,
        "projection_status",
        &["name", "position", "updated_at"],
        &["name"],
        OnConflict::Ignore,
        &[vec![
            Value::from(name),
            Value::Int(0),
            Value::from(format_timestamp(Utc::now())),
        ]],
    )
    .await?;
    let row = sqlx::query(lock).bind(name).fetch_one(&mut **tx).await?;
    Ok(text_column(&row, 0)?)
}

/// Writes `projection_streams` rows, each `[projection, stream key, last sequence]`.
pub(crate) async fn write_guards(
    tx: &mut Tx,
    backend: Backend,
    on_conflict: OnConflict<'_>,
    rows: &[Vec<Value>],
) -> Result<()> {
    insert_rows(
        tx,
        backend,
        "projection_streams",
        &["projection", "aggregate_id", "last_sequence"],
        &["projection", "aggregate_id"],
        on_conflict,
        rows,
    )
    .await?;
    Ok(())
}

/// The key of a stream in `projection_streams`.
pub(crate) fn guard_key(stream: &StreamId) -> String {
    stream.to_string()
}

/// Every projection's status, with its lag behind the store's head.
pub async fn statuses(store: &EventStore) -> Result<Vec<ProjectionStatus>> {
    let head = store.head().await?;
    let rows = sqlx::query(
        "SELECT name, position, last_error, updated_at FROM projection_status ORDER BY name",
    )
    .fetch_all(store.database().pool())
    .await?;
    rows.iter()
        .map(|row| {
            let position: i64 = row.try_get(1)?;
            Ok(ProjectionStatus {
                name: text_column(row, 0)?.unwrap_or_default(),
                position,
                lag: (head - position).max(0),
                last_error: text_column(row, 2)?,
                updated_at: text_column(row, 3)?,
            })
        })
        .collect()
}
