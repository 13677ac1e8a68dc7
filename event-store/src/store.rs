//! Appends through one writer task per process that commits queued appends together (group
//! commit), and reads that never skip a committed event.
//!
//! Why no event is ever skipped: every write transaction first locks the head row, takes the next
//! positions after the head, and moves the head before it commits. Positions are therefore dense
//! and become visible strictly in order, in every process. A reader that resumes after position
//! `p` and sees `p + 2` but not `p + 1` has found a deleted event, never a late commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};
use uuid::Uuid;

use crate::db::{decode_event, Backend, Database, PoolSettings, EVENT_COLUMNS};
use crate::error::{Result, StoreError};
use crate::hash::{canonical_json, event_hash};
use crate::model::{
    format_timestamp, now_micros, AppendRequest, Appended, RecordedEvent, StreamId,
};
use crate::personal::{self, KeyState, Open, ToSeal};

/// What the store needs to know of the domain's event types: how to bring a stored payload of an
/// older schema version up to the current one, and which payload fields hold personal data.
pub trait Upcaster: Send + Sync {
    fn upcast(
        &self,
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> std::result::Result<(u32, Value), String>;

    /// Payload fields of `event_type` sealed with the key of the event's data subject.
    fn personal_fields(&self, _event_type: &str) -> &'static [&'static str] {
        &[]
    }

    /// Payload fields of `event_type` that hold secrets: kept as stored, shown as `REDACTED` by
    /// `EventStore::redact_secrets` in every view of the history given out.
    fn secret_fields(&self, _event_type: &str) -> &'static [&'static str] {
        &[]
    }

    /// Whether storing an event of `event_type` destroys its data subject's key, in the same
    /// transaction.
    fn erases_personal_data(&self, _event_type: &str) -> bool {
        false
    }
}

impl<F> Upcaster for F
where
    F: Fn(&str, u32, Value) -> std::result::Result<(u32, Value), String> + Send + Sync,
{
    fn upcast(
        &self,
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> std::result::Result<(u32, Value), String> {
        self(event_type, schema_version, payload)
    }
}

/// For stores whose payloads have only ever had one version.
pub fn no_upcasting(
    _event_type: &str,
    schema_version: u32,
    payload: Value,
) -> std::result::Result<(u32, Value), String> {
    Ok((schema_version, payload))
}

/// The most appends one transaction carries; more wait for the next one.
const MAX_BATCH: usize = 256;
/// Writer tasks per store on MySQL: while one holds the head lock and commits, the next reads
/// its streams' tips and queues for the lock, so the lock is never idle between batches. SQLite
/// has one writer at a time anyway, and its busy handler sleeps, so there it is one task.
const MYSQL_WRITERS: usize = 2;
/// Appends to the same stream retried after losing a race to another writer.
const RACE_RETRIES: usize = 3;
/// Rows per INSERT statement, well under SQLite's limit on bound parameters.
const ROWS_PER_INSERT: usize = 64;

struct PendingAppend {
    request: AppendRequest,
    reply: oneshot::Sender<Result<Appended>>,
}

/// Which events a query wants; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub after_position: i64,
    pub aggregate_id: Option<String>,
    pub aggregate_type: Option<String>,
    pub event_types: Vec<String>,
    pub recorded_from: Option<chrono::DateTime<chrono::Utc>>,
    pub recorded_to: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: u32,
}

/// The event store: cheap to clone, shared by everything in a process.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    writer: mpsc::Sender<PendingAppend>,
    upcaster: Arc<dyn Upcaster>,
    /// The last position this process committed: in-process readers wait on it instead of polling.
    committed: watch::Sender<i64>,
}

impl EventStore {
    /// Connects to `database_url` (sqlite:// or mysql://), applies the migrations and starts the writer.
    pub async fn open(
        database_url: &str,
        settings: PoolSettings,
        upcaster: Arc<dyn Upcaster>,
    ) -> Result<Self> {
        let db = Database::connect(database_url, settings).await?;
        db.migrate().await?;
        Self::with_database(db, upcaster).await
    }

    /// Starts a store on a database whose migrations have been applied.
    pub async fn with_database(db: Database, upcaster: Arc<dyn Upcaster>) -> Result<Self> {
        let (writer, queue) = mpsc::channel(4 * MAX_BATCH);
        let (committed, _) = watch::channel(0);
        let store = Self {
            inner: Arc::new(Inner {
                db,
                writer,
                upcaster,
                committed,
            }),
        };
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let writers = match store.inner.db.backend() {
            Backend::MySql => MYSQL_WRITERS,
            Backend::Sqlite => 1,
        };
        for _ in 0..writers {
            tokio::spawn(run_writer(
                store.inner.db.clone(),
                Arc::clone(&store.inner.upcaster),
                Arc::clone(&queue),
                store.inner.committed.clone(),
            ));
        }
        Ok(store)
    }

    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Changes whenever this process commits events; its value is the last position committed here.
    /// Appends by other processes do not show here: readers that must see them also poll.
    pub fn commits(&self) -> watch::Receiver<i64> {
        self.inner.committed.subscribe()
    }

    /// Appends one command's events to one stream, atomically, if the stream is still at
    /// `expected_version`; a stale version fails with `VersionConflict` and writes nothing.
    pub async fn append(&self, request: AppendRequest) -> Result<Appended> {
        if request.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        self.check_subjects(&request)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .writer
            .send(PendingAppend { request, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// The last committed position in the store, from every process.
    pub async fn head(&self) -> Result<i64> {
        read_head(&self.inner.db).await
    }

    /// Personal data must say whose it is: nobody's key could protect it otherwise.
    fn check_subjects(&self, request: &AppendRequest) -> Result<()> {
        let metadata = serde_json::to_value(&request.metadata).unwrap_or(Value::Null);
        for event in &request.events {
            let to_seal = ToSeal {
                payload_fields: self.inner.upcaster.personal_fields(&event.event_type),
            };
            personal::check_subjects(
                &to_seal,
                event.data_subject.as_deref(),
                &event.payload,
                &metadata,
            )?;
        }
        Ok(())
    }

    /// A stream's events after `after_sequence`, personal fields opened, upcast to their current
    /// schema versions.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        after_sequence: i64,
    ) -> Result<Vec<RecordedEvent>> {
        self.read_stream_opening(stream, after_sequence, Open::All)
            .await
    }

    /// `read_stream` opening only the payload: what loading an aggregate needs.
    pub(crate) async fn read_stream_opening(
        &self,
        stream: &StreamId,
        after_sequence: i64,
        parts: Open,
    ) -> Result<Vec<RecordedEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE aggregate_type = ? AND aggregate_id = ? AND sequence > ? ORDER BY sequence"
        );
        let rows = sqlx::query(&sql)
            .bind(&stream.aggregate_type)
            .bind(&stream.aggregate_id)
            .bind(after_sequence)
            .fetch_all(self.inner.db.pool())
            .await?;
        self.open_upcast(&rows, parts).await
    }

    /// The next events of the global log after `after_position`, in order and without gaps, so a
    /// reader that checkpoints the last position it handled never skips or repeats an event.
    /// Personal fields opened, payloads upcast.
    pub async fn read_all(&self, after_position: i64, limit: u32) -> Result<Vec<RecordedEvent>> {
        let mut events = self.read_contiguous_raw(after_position, limit).await?;
        personal::open_events(&self.inner.db, &mut events, Open::All).await?;
        events.into_iter().map(|e| self.upcast(e)).collect()
    }

    /// `read_all` as stored: personal fields sealed, payloads not upcast. What leaves the
    /// database for the bus, so that no copy of personal data outlives its key.
    pub async fn read_all_stored(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>> {
        self.read_contiguous_raw(after_position, limit).await
    }

    /// Raw events after `after_position`, refusing a page with a hole in it.
    pub(crate) async fn read_contiguous_raw(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>> {
        let events = self.read_raw(after_position, limit).await?;
        for (expected, event) in (after_position + 1..).zip(&events) {
            if event.position != expected {
                return Err(StoreError::Gap {
                    after: expected - 1,
                    missing: expected,
                });
            }
        }
        Ok(events)
    }

    /// Events as stored, not upcast: what the hash chains cover.
    pub async fn read_raw(&self, after_position: i64, limit: u32) -> Result<Vec<RecordedEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(after_position)
            .bind(i64::from(limit))
            .fetch_all(self.inner.db.pool())
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// Events matching `query`, in position order, upcast.
    pub async fn query(&self, query: &EventQuery) -> Result<Vec<RecordedEvent>> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ?");
        if query.aggregate_id.is_some() {
            sql.push_str(" AND aggregate_id = ?");
        }
        if query.aggregate_type.is_some() {
            sql.push_str(" AND aggregate_type = ?");
        }
        if !query.event_types.is_empty() {
            let marks = vec!["?"; query.event_types.len()].join(", ");
            sql.push_str(&format!(" AND event_type IN ({marks})"));
        }
        if query.recorded_from.is_some() {
            sql.push_str(" AND recorded_at >= ?");
        }
        if query.recorded_to.is_some() {
            sql.push_str(" AND recorded_at < ?");
        }
        sql.push_str(" ORDER BY position LIMIT ?");
        let mut statement = sqlx::query(&sql).bind(query.after_position);
        if let Some(id) = &query.aggregate_id {
            statement = statement.bind(id);
        }
        if let Some(kind) = &query.aggregate_type {
            statement = statement.bind(kind);
        }
        for event_type in &query.event_types {
            statement = statement.bind(event_type);
        }
        if let Some(from) = query.recorded_from {
            statement = statement.bind(format_timestamp(from));
        }
        if let Some(to) = query.recorded_to {
            statement = statement.bind(format_timestamp(to));
        }
        let rows = statement
            .bind(i64::from(query.limit))
            .fetch_all(self.inner.db.pool())
            .await?;
        self.open_upcast(&rows, Open::All).await
    }

    /// Decodes rows, opens their personal fields (one key query for them all) and upcasts.
    async fn open_upcast(
        &self,
        rows: &[sqlx::any::AnyRow],
        parts: Open,
    ) -> Result<Vec<RecordedEvent>> {
        let mut events = rows.iter().map(decode_event).collect::<Result<Vec<_>>>()?;
        personal::open_events(&self.inner.db, &mut events, parts).await?;
        events.into_iter().map(|e| self.upcast(e)).collect()
    }

    /// `event` as it may leave the store: its secret payload fields (`Upcaster::secret_fields`)
    /// read as `REDACTED`. Every outward view calls it (GraphQL `events` and `eventAppended`,
    /// the export, the relay's messages); aggregates, projectors and the ledger read the stored
    /// values.
    pub fn redact_secrets(&self, event: &mut RecordedEvent) {
        crate::redact::redact(
            &mut event.payload,
            self.inner.upcaster.secret_fields(&event.event_type),
        );
    }

    pub(crate) fn upcast(&self, mut event: RecordedEvent) -> Result<RecordedEvent> {
        let payload = std::mem::take(&mut event.payload);
        let (version, payload) = self
            .inner
            .upcaster
            .upcast(&event.event_type, event.schema_version, payload)
            .map_err(|reason| StoreError::Upcast {
                position: event.position,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                reason,
            })?;
        event.schema_version = version;
        event.payload = payload;
        Ok(event)
    }
}

pub(crate) async fn read_head(db: &Database) -> Result<i64> {
    Ok(
        sqlx::query("SELECT last_position FROM event_store_head WHERE id = 1")
            .fetch_one(db.pool())
            .await?
            .try_get(0)?,
    )
}

async fn run_writer(
    db: Database,
    schema: Arc<dyn Upcaster>,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<PendingAppend>>>,
    committed: watch::Sender<i64>,
) {
    loop {
        // Everything queued while other batches were committing goes into this one.
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        let (requests, replies): (Vec<AppendRequest>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        let outcomes = match commit_batch(&db, &*schema, &requests, TipsOf::ExistingStreams).await {
            Ok(outcomes) => outcomes,
            // Retrying one by one would make the last append wait one acquire timeout per
            // neighbour: with the database gone, every append is answered at once instead.
            Err(error) if unreachable(&error).is_some() => {
                warn!(%error, appends = requests.len(), "the database is unreachable; the batch fails");
                requests
                    .iter()
                    .filter_map(|_| unreachable(&error))
                    .map(Err)
                    .collect()
            }
            Err(error) => {
                // One bad or racing append must not fail its neighbours: retry each on its own.
                if requests.len() > 1 {
                    debug!(%error, appends = requests.len(), "group commit failed; retrying one by one");
                }
                let mut outcomes = Vec::with_capacity(requests.len());
                for request in &requests {
                    outcomes.push(commit_one(&db, &*schema, request).await);
                }
                outcomes
            }
        };
        debug!(appends = requests.len(), "group commit");
        if let Some(last) = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok())
            .map(|appended| appended.last_position)
            .max()
        {
            committed.send_if_modified(|head| {
                let moved = last > *head;
                *head = (*head).max(last);
                moved
            });
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that gave up waiting is no reason to stop the writer.
            let _ = reply.send(outcome);
        }
    }
}

/// A fresh copy of `error` when it says the database cannot be reached (no connection within
/// the pool's acquire timeout, a connection that broke), as opposed to a statement it refused.
fn unreachable(error: &StoreError) -> Option<StoreError> {
    let StoreError::Database(error) = error else {
        return None;
    };
    let copy = match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(e) => sqlx::Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        _ => return None,
    };
    Some(StoreError::Database(copy))
}

/// Commits one append, re-reading its stream when another writer took the next sequence first.
async fn commit_one(
    db: &Database,
    schema: &dyn Upcaster,
    request: &AppendRequest,
) -> Result<Appended> {
    let mut attempt = 1;
    loop {
        match commit_batch(
            db,
            schema,
            std::slice::from_ref(request),
            TipsOf::AllStreams,
        )
        .await
        {
            Ok(mut single) => return single.remove(0),
            Err(StoreError::Database(sqlx::Error::Database(e)))
                if e.is_unique_violation() && attempt < RACE_RETRIES =>
            {
                attempt += 1;
            }
            Err(error) => {
                warn!(%error, stream = %request.stream, "append failed");
                return Err(error);
            }
        }
    }
}

/// The tip of a stream: its version and the hash of its last event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamTip {
    pub version: u64,
    pub hash: Option<String>,
}

/// Commits a batch of appends in one transaction; each append succeeds or conflicts on its own.
///
/// The tips are read before the lock, to keep the lock short. That is safe: a tip only ever
/// grows, and a stream that grew meanwhile makes our INSERT hit the unique (stream, sequence)
/// key, failing the batch so that `commit_one` re-reads and answers each append. The lock and
/// the reservation of positions are one statement: BEGIN, reserve, INSERT, COMMIT.
///
/// Personal data keys are read (and missing ones created) under the head lock, so that a key is
/// never created twice nor used after another transaction destroyed it; an erasure event destroys
/// its subject's key in the same transaction.
async fn commit_batch(
    db: &Database,
    schema: &dyn Upcaster,
    requests: &[AppendRequest],
    tips_of: TipsOf,
) -> Result<Vec<Result<Appended>>> {
    let mut tips = stream_tips(db, requests, tips_of).await?;
    // Plan once to learn how many positions to take, then again at the real head.
    let dry_run = plan_batch(0, &mut tips.clone(), requests, now_micros(), None)?;
    let count = dry_run.new_head;
    if count == 0 {
        return Ok(dry_run.outcomes);
    }
    let _turn = db.write_turn().await;
    let mut tx = db.begin_write().await?;
    let head = db.reserve_positions(&mut tx, count).await?;
    let keys = personal::keys_for_writing(&mut tx, subjects_to_seal(schema, requests)).await?;
    let sealing = Sealing { schema, keys };
    let plan = plan_batch(head, &mut tips, requests, now_micros(), Some(&sealing))?;
    for chunk in plan.rows.chunks(ROWS_PER_INSERT) {
        insert_events(&mut tx, chunk).await?;
    }
    let erasing = plan
        .rows
        .iter()
        .filter(|row| schema.erases_personal_data(&row.event_type))
        .filter_map(|row| row.data_subject.as_deref());
    for subject in erasing {
        personal::destroy_key(&mut tx, db.backend(), subject).await?;
    }
    tx.commit().await?;
    Ok(plan.outcomes)
}

/// The subjects whose keys a batch's personal fields need.
fn subjects_to_seal(schema: &dyn Upcaster, requests: &[AppendRequest]) -> HashSet<String> {
    let mut subjects = HashSet::new();
    for request in requests {
        let metadata = serde_json::to_value(&request.metadata).unwrap_or(Value::Null);
        for event in &request.events {
            let to_seal = ToSeal {
                payload_fields: schema.personal_fields(&event.event_type),
            };
            personal::subjects_to_seal(
                &to_seal,
                event.data_subject.as_deref(),
                &event.payload,
                &metadata,
                &mut subjects,
            );
        }
    }
    subjects
}

/// The keys a batch seals its personal fields with.
pub(crate) struct Sealing<'a> {
    schema: &'a dyn Upcaster,
    keys: HashMap<String, KeyState>,
}

/// Which streams' tips a batch reads before it writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TipsOf {
    /// Only streams expected to exist: a stream expected to be new that exists after all makes
    /// the INSERT hit the unique key at sequence 1, which fails the batch.
    ExistingStreams,
    /// Every stream, so that a single append learns of its conflict instead of failing.
    AllStreams,
}

async fn stream_tips(
    db: &Database,
    requests: &[AppendRequest],
    tips_of: TipsOf,
) -> Result<HashMap<StreamId, StreamTip>> {
    let mut streams: Vec<&StreamId> = requests
        .iter()
        .filter(|r| tips_of == TipsOf::AllStreams || r.expected_version > 0)
        .map(|r| &r.stream)
        .collect();
    if streams.is_empty() {
        return Ok(HashMap::new());
    }
    streams.sort();
    streams.dedup();
    // Padding to a power of two keeps the number of distinct statements (and so of prepared
    // statements each connection caches) small.
    if let Some(&last) = streams.last() {
        streams.resize(streams.len().next_power_of_two(), last);
    }
    let one = "SELECT * FROM (SELECT aggregate_type, aggregate_id, sequence, hash FROM events \
               WHERE aggregate_type = ? AND aggregate_id = ? ORDER BY sequence DESC LIMIT 1) AS tip";
    let sql = vec![one; streams.len()].join(" UNION ALL ");
    let mut statement = sqlx::query(&sql);
    for stream in &streams {
        statement = statement
            .bind(&stream.aggregate_type)
            .bind(&stream.aggregate_id);
    }
    let mut tips = HashMap::new();
    for row in statement.fetch_all(db.pool()).await? {
        let sequence: i64 = row.try_get(2)?;
        tips.insert(
            StreamId::new(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?),
            StreamTip {
                version: u64::try_from(sequence).unwrap_or_default(),
                hash: Some(row.try_get(3)?),
            },
        );
    }
    Ok(tips)
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rows: &[RecordedEvent],
) -> Result<()> {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
    let sql = format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES {values}");
    let mut statement = sqlx::query(&sql);
    for event in rows {
        statement = statement
            .bind(event.position)
            .bind(event.event_id.to_string())
            .bind(&event.aggregate_type)
            .bind(&event.aggregate_id)
            .bind(event.sequence)
            .bind(&event.event_type)
            .bind(i64::from(event.schema_version))
            .bind(canonical_json(&event.payload))
            .bind(canonical_json(&event.metadata))
            .bind(&event.data_subject)
            .bind(format_timestamp(event.recorded_at))
            .bind(&event.prev_hash)
            .bind(&event.hash);
    }
    statement.execute(&mut **tx).await?;
    Ok(())
}

/// What one transaction will write and answer.
pub(crate) struct BatchPlan {
    pub rows: Vec<RecordedEvent>,
    pub outcomes: Vec<Result<Appended>>,
    pub new_head: i64,
}

/// Decides, without I/O, which appends of a batch go in and what positions, sequences and
/// hashes their events get. Appends to the same stream in one batch chain one after another.
/// With `sealing`, personal fields are sealed before hashing: the chains cover what is stored.
pub(crate) fn plan_batch(
    head: i64,
    tips: &mut HashMap<StreamId, StreamTip>,
    requests: &[AppendRequest],
    recorded_at: chrono::DateTime<chrono::Utc>,
    sealing: Option<&Sealing<'_>>,
) -> Result<BatchPlan> {
    let mut rows = Vec::new();
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut position = head;
    for request in requests {
        let tip = tips.entry(request.stream.clone()).or_insert(StreamTip {
            version: 0,
            hash: None,
        });
        if request.events.is_empty() {
            outcomes.push(Err(StoreError::EmptyAppend));
            continue;
        }
        if tip.version != request.expected_version {
            outcomes.push(Err(StoreError::VersionConflict {
                stream: request.stream.clone(),
                expected: request.expected_version,
                actual: tip.version,
            }));
            continue;
        }
        let plain_metadata = serde_json::to_value(&request.metadata).unwrap_or(Value::Null);
        let mut written = Vec::with_capacity(request.events.len());
        for new in &request.events {
            position += 1;
            tip.version += 1;
            let mut payload = new.payload.clone();
            let mut metadata = plain_metadata.clone();
            if let Some(sealing) = sealing {
                let to_seal = ToSeal {
                    payload_fields: sealing.schema.personal_fields(&new.event_type),
                };
                personal::seal_event(
                    &sealing.keys,
                    &to_seal,
                    new.data_subject.as_deref(),
                    &mut payload,
                    &mut metadata,
                )?;
            }
            let mut event = RecordedEvent {
                position,
                event_id: Uuid::new_v4(),
                aggregate_type: request.stream.aggregate_type.clone(),
                aggregate_id: request.stream.aggregate_id.clone(),
                sequence: i64::try_from(tip.version).unwrap_or(i64::MAX),
                event_type: new.event_type.clone(),
                schema_version: new.schema_version,
                payload,
                metadata,
                data_subject: new.data_subject.clone(),
                recorded_at,
                prev_hash: tip.hash.clone(),
                hash: String::new(),
            };
            event.hash = event_hash(event.prev_hash.as_deref(), &event);
            tip.hash = Some(event.hash.clone());
            // The caller gets the event as readers will see it, with the hash of what is stored.
            written.push(RecordedEvent {
                payload: new.payload.clone(),
                metadata: plain_metadata.clone(),
                ..event.clone()
            });
            rows.push(event);
        }
        outcomes.push(Ok(Appended {
            version: tip.version,
            first_position: written[0].position,
            last_position: position,
            events: written,
        }));
    }
    Ok(BatchPlan {
        rows,
        outcomes,
        new_head: position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventMetadata, NewEvent};
    use proptest::prelude::*;
    use serde_json::json;

    fn request(id: &str, expected: u64, events: usize) -> AppendRequest {
        AppendRequest {
            stream: StreamId::new("Movie", id),
            expected_version: expected,
            events: (0..events)
                .map(|i| NewEvent {
                    event_type: "MovieAdded".into(),
                    schema_version: 2,
                    payload: json!({ "n": i }),
                    data_subject: None,
                })
                .collect(),
            metadata: EventMetadata::system("test"),
        }
    }

    #[test]
    fn appends_to_one_stream_in_a_batch_chain_in_order() {
        let mut tips = HashMap::new();
        let plan = plan_batch(
            10,
            &mut tips,
            &[request("a", 0, 2), request("a", 2, 1)],
            now_micros(),
            None,
        )
        .unwrap();
        assert_eq!(plan.new_head, 13);
        let sequences: Vec<_> = plan.rows.iter().map(|e| (e.position, e.sequence)).collect();
        assert_eq!(sequences, vec![(11, 1), (12, 2), (13, 3)]);
        assert_eq!(
            plan.rows[2].prev_hash.as_deref(),
            Some(plan.rows[1].hash.as_str())
        );
        assert!(plan.outcomes.iter().all(|o| o.is_ok()));
    }

    #[test]
    fn a_stale_append_conflicts_without_touching_its_neighbours() {
        let mut tips = HashMap::new();
        tips.insert(
            StreamId::new("Movie", "a"),
            StreamTip {
                version: 3,
                hash: Some("ab".repeat(32)),
            },
        );
        let plan = plan_batch(
            5,
            &mut tips,
            &[request("a", 2, 1), request("b", 0, 1)],
            now_micros(),
            None,
        )
        .unwrap();
        assert!(matches!(
            plan.outcomes[0],
            Err(StoreError::VersionConflict {
                expected: 2,
                actual: 3,
                ..
            })
        ));
        let appended = plan.outcomes[1].as_ref().unwrap();
        assert_eq!((appended.first_position, appended.version), (6, 1));
        assert_eq!(plan.new_head, 6);
    }

    proptest! {
        /// Whatever mix of fresh and stale appends, positions stay dense from the head and every
        /// stream's sequences stay dense from its tip.
        #[test]
        fn positions_and_sequences_stay_dense(
            head in 0i64..1000,
            appends in prop::collection::vec((0usize..4, 0u64..3, 1usize..4), 1..20),
        ) {
            let mut tips = HashMap::new();
            let requests: Vec<_> = appends
                .iter()
                .map(|(stream, expected, count)| request(&stream.to_string(), *expected, *count))
                .collect();
            let plan = plan_batch(head, &mut tips, &requests, now_micros(), None).unwrap();
            for (offset, row) in plan.rows.iter().enumerate() {
                prop_assert_eq!(row.position, head + 1 + offset as i64);
            }
            let mut last: HashMap<String, i64> = HashMap::new();
            for row in &plan.rows {
                let previous = last.insert(row.aggregate_id.clone(), row.sequence).unwrap_or(0);
                prop_assert_eq!(row.sequence, previous + 1);
            }
            prop_assert_eq!(plan.new_head, head + plan.rows.len() as i64);
        }
    }
}
