//! Rebuilding a projection from the store, and checking a live one against a rebuild.

mod swap;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use event_store::{format_timestamp, Backend, EventStore, RecordedEvent, StreamId};
use sqlx::Row;

use crate::engine::{guard_key, lock_status, write_guards, Projector, Rebuild};
use crate::error::{ProjectorError, Result};
use crate::facts::fact;
use crate::read_models::{Difference, ReadModel, READ_MODELS};
use crate::sql::{OnConflict, Tx, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub projection: &'static str,
    pub events: usize,
    pub elapsed: Duration,
    /// How the rows went in.
    pub method: ReplayMethod,
    /// Where the time went, in order.
    pub steps: Vec<ReplayStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMethod {
    /// Into the emptied live tables, in the transaction that holds the projection's status row.
    Transaction,
    /// Into new tables, indexed after loading, then swapped in by one `RENAME TABLE` (the read
    /// models on MySQL with DDL rights; see `swap`).
    Swap,
}

/// One step of a replay and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayStep {
    pub name: String,
    pub elapsed: Duration,
    /// Ran beside the other concurrent steps listed with it, inside the sequential step that
    /// follows them.
    pub concurrent: bool,
}

/// Rebuilds the projection from the whole log: folds every event in memory, then writes each
/// row and stream guard once.
///
/// Safe beside a running projector: the log is folded up to its head first, without locks; a
/// transaction then takes the projection's status row (live applies wait for it), folds what
/// arrived meanwhile and replaces the rows, guards and position. Readers see the old rows until
/// the new ones are in, all at once. The read models on MySQL (their fold is a `ReadModel`,
/// whose rows `swap` writes itself) are loaded into new tables and swapped in when the database
/// user may create, alter and drop tables; otherwise, and on SQLite, the live tables are emptied
/// and written in that one transaction, through the projection's own `Rebuild::write`.
pub async fn replay(projector: &Projector) -> Result<ReplayReport> {
    let name = projector.name();
    let rebuild = projector
        .projection()
        .rebuild()
        .ok_or(ProjectorError::NotReplayable(name))?;
    let mut steps = Steps::new();
    if name == READ_MODELS && projector.store().database().backend() == Backend::MySql {
        if let Some(report) = swap::replay(projector, &mut steps).await? {
            return Ok(report);
        }
    }
    in_one_transaction(projector, Fold::new(rebuild), steps).await
}

/// Folds the log, then empties the live tables and writes the fold in one transaction.
async fn in_one_transaction(
    projector: &Projector,
    fold: Fold<dyn Rebuild>,
    mut steps: Steps,
) -> Result<ReplayReport> {
    let name = projector.name();
    let store = projector.store();
    let fold = fold.read_to_head(store).await?;
    steps.done("fold the log (read beside)");
    let db = store.database();
    let turn = db.write_turn().await;
    let mut tx = db.begin_write().await?;
    // A swap left unfinished (`swapping_since`) is repaired here: tables, guards and position
    // are all replaced in this transaction, which clears the mark.
    lock_status(&mut tx, db.backend(), name).await?;
    let fold = fold.read_to_head(store).await?;
    steps.done("take the status row, fold what arrived");
    for table in fold.rebuild.tables() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    fold.rebuild.write(&mut tx, db.backend()).await?;
    steps.done("empty the tables, write the rows");
    write_position(
        &mut tx,
        db.backend(),
        name,
        &fold.guards,
        fold.position,
        None,
    )
    .await?;
    steps.done("write the guards and position");
    tx.commit().await?;
    drop(turn);
    steps.done("commit");
    Ok(steps.report(name, fold.events, ReplayMethod::Transaction))
}

/// A rebuild in progress with the last sequence folded per stream.
struct Fold<R: ?Sized> {
    rebuild: Box<R>,
    guards: Guards,
    position: i64,
    events: usize,
}

impl<R: Rebuild + ?Sized + 'static> Fold<R> {
    fn new(rebuild: Box<R>) -> Self {
        Self {
            rebuild,
            guards: Guards::default(),
            position: 0,
            events: 0,
        }
    }

    /// Folds every event after the current position, on a thread of its own, while the store
    /// reads and decodes the next events on another (`EventStore::stream_all`).
    async fn read_to_head(self, store: &EventStore) -> Result<Self> {
        let mut batches = store.stream_all(self.position);
        let mut fold = self;
        tokio::task::spawn_blocking(move || {
            while let Some(batch) = batches.blocking_next() {
                for event in batch? {
                    fold.rebuild.apply(&event)?;
                    fold.guards.record(&event);
                    fold.position = event.position;
                    fold.events += 1;
                }
            }
            Ok(fold)
        })
        .await?
    }
}

/// Replaces the projection's stream guards, moves its position and sets or clears its
/// `swapping_since` mark (the fold's, taken apart: a `Fold` of a `dyn Rebuild` is not `Sync`, so
/// no borrow of it may live across an await).
async fn write_position(
    tx: &mut Tx,
    backend: Backend,
    name: &'static str,
    guards: &Guards,
    position: i64,
    swapping_since: Option<&str>,
) -> Result<()> {
    sqlx::query("DELETE FROM projection_streams WHERE projection = ?")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    write_guards(tx, backend, OnConflict::Fail, &guards.rows(name)).await?;
    sqlx::query(
        "UPDATE projection_status SET position = ?, last_error = NULL, swapping_since = ?, \
         updated_at = ? WHERE name = ?",
    )
    .bind(position)
    .bind(swapping_since)
    .bind(format_timestamp(Utc::now()))
    .bind(name)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The last sequence folded per stream, by aggregate type and then id, so that folding an event
/// of a stream seen before allocates nothing.
#[derive(Default)]
struct Guards(HashMap<String, HashMap<String, i64>>);

impl Guards {
    fn record(&mut self, event: &RecordedEvent) {
        if !self.0.contains_key(event.aggregate_type.as_str()) {
            self.0.insert(event.aggregate_type.clone(), HashMap::new());
        }
        let Some(streams) = self.0.get_mut(event.aggregate_type.as_str()) else {
            return;
        };
        match streams.get_mut(event.aggregate_id.as_str()) {
            Some(sequence) => *sequence = event.sequence,
            None => {
                streams.insert(event.aggregate_id.clone(), event.sequence);
            }
        }
    }

    /// `projection_streams` rows: `[projection, stream key, last sequence]`.
    fn rows(&self, projection: &'static str) -> Vec<Vec<Value>> {
        self.0
            .iter()
            .flat_map(|(aggregate_type, streams)| {
                streams.iter().map(move |(aggregate_id, sequence)| {
                    let stream = StreamId::new(aggregate_type.as_str(), aggregate_id.as_str());
                    vec![
                        Value::from(projection),
                        Value::from(guard_key(&stream)),
                        Value::from(*sequence),
                    ]
                })
            })
            .collect()
    }
}

/// The steps of one replay, timed as they end.
struct Steps {
    started: Instant,
    last: Instant,
    list: Vec<ReplayStep>,
}

impl Steps {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
            list: Vec::new(),
        }
    }

    /// A sequential step ended now.
    fn done(&mut self, name: &str) {
        let now = Instant::now();
        self.list.push(ReplayStep {
            name: name.to_owned(),
            elapsed: now - self.last,
            concurrent: false,
        });
        self.last = now;
    }

    /// A step that ran beside others since the last sequential one.
    fn beside(&mut self, name: String, elapsed: Duration) {
        self.list.push(ReplayStep {
            name,
            elapsed,
            concurrent: true,
        });
    }

    fn report(
        &mut self,
        projection: &'static str,
        events: usize,
        method: ReplayMethod,
    ) -> ReplayReport {
        ReplayReport {
            projection,
            events,
            elapsed: self.started.elapsed(),
            method,
            steps: std::mem::take(&mut self.list),
        }
    }
}

/// Rebuilds the read models in memory from the events the live ones have applied and returns
/// every row that differs. Reads the live tables and their position in one snapshot, so a
/// projector running meanwhile causes no false drift.
pub async fn compare_read_models(store: &EventStore) -> Result<Vec<Difference>> {
    let db = store.database();
    let mut conn = db.pool().acquire().await?;
    if db.backend() == Backend::MySql {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *conn)
            .await?;
        sqlx::query("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .execute(&mut *conn)
            .await?;
    } else {
        sqlx::query("BEGIN").execute(&mut *conn).await?;
    }
    let position = sqlx::query("SELECT position FROM projection_status WHERE name = ?")
        .bind(READ_MODELS)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get::<i64, _>(0))
        .transpose()?
        .unwrap_or(0);
    let live = ReadModel::load_all(&mut conn).await;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    let live = live?;
    let mut replayed = ReadModel::default();
    if position > 0 {
        let mut batches = store.stream_all(0);
        'log: while let Some(batch) = batches.next().await {
            for event in batch? {
                if event.position > position {
                    break 'log;
                }
                replayed.apply(&event, &fact(&event)?);
            }
        }
    }
    Ok(live.differences(&replayed))
}
