//! Streaming the whole log, for rebuilds: `read_all`'s events without its pages.
//!
//! On MySQL one native connection (`Database::connect_native`) streams every row of one SELECT:
//! sqlx's `Any` driver copies each value into an `AnyValue` and each row into an `AnyRow` first,
//! which costs more than decoding the event itself. A task reads and decodes while the caller
//! works on the batch before, so a rebuild's fold runs beside the read on another core.

use std::str::FromStr;

use futures::stream::BoxStream;
use futures::TryStreamExt;
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::Row;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::db::EVENT_COLUMNS;
use crate::error::{Result, StoreError};
use crate::model::{parse_timestamp, RecordedEvent};
use crate::personal::{self, Open};
use crate::store::EventStore;

/// Events per batch handed over.
const BATCH: usize = 1_000;
/// Batches decoded ahead of the caller.
const AHEAD: usize = 8;
/// Events per `read_all` page where there is no native stream (SQLite).
const PAGE: u32 = 10_000;

/// The log after a position, in order and without gaps, in batches; see `EventStore::stream_all`.
/// Dropping it stops the read.
pub struct EventBatches {
    batches: mpsc::Receiver<Result<Vec<RecordedEvent>>>,
    reader: JoinHandle<()>,
}

impl EventBatches {
    /// The next batch, or `None` at the end of the log (or after an error was returned).
    pub async fn next(&mut self) -> Option<Result<Vec<RecordedEvent>>> {
        self.batches.recv().await
    }

    /// `next` for a blocking thread (never inside the runtime's own threads).
    pub fn blocking_next(&mut self) -> Option<Result<Vec<RecordedEvent>>> {
        self.batches.blocking_recv()
    }
}

impl Drop for EventBatches {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl EventStore {
    /// Every event after `after_position`, as `read_all` gives them (in position order, a gap
    /// is an error, personal fields opened, payloads upcast), in batches decoded ahead of the
    /// caller. On MySQL one SELECT over a native connection: the events committed when it
    /// starts. On SQLite pages of `read_all` until one comes back short.
    pub fn stream_all(&self, after_position: i64) -> EventBatches {
        let (sender, batches) = mpsc::channel(AHEAD);
        let store = self.clone();
        let reader = tokio::spawn(async move {
            let read = stream_into(&store, after_position, &sender).await;
            if let Err(error) = read {
                let _ = sender.send(Err(error)).await;
            }
        });
        EventBatches { batches, reader }
    }
}

type Sender = mpsc::Sender<Result<Vec<RecordedEvent>>>;

async fn stream_into(store: &EventStore, after_position: i64, sender: &Sender) -> Result<()> {
    match store.database().connect_native().await? {
        Some(mut conn) => stream_native(store, &mut conn, after_position, sender).await,
        None => stream_pages(store, after_position, sender).await,
    }
}

async fn stream_pages(store: &EventStore, mut after: i64, sender: &Sender) -> Result<()> {
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            return Ok(());
        };
        let full = page.len() == PAGE as usize;
        after = last;
        if sender.send(Ok(page)).await.is_err() || !full {
            return Ok(());
        }
    }
}

async fn stream_native(
    store: &EventStore,
    conn: &mut MySqlConnection,
    after_position: i64,
    sender: &Sender,
) -> Result<()> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position");
    let mut rows = rows_after(conn, &sql, after_position);
    let mut expected = after_position + 1;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(row) = rows.try_next().await? {
        let event = decode_native(&row)?;
        if event.position != expected {
            return Err(StoreError::Gap {
                after: expected - 1,
                missing: expected,
            });
        }
        expected += 1;
        batch.push(event);
        if batch.len() == BATCH {
            let events = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if sender.send(Ok(open(store, events).await?)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = sender.send(Ok(open(store, batch).await?)).await;
    }
    Ok(())
}

/// Boxed, so that the task holding it is `Send` (the borrow of the connection otherwise trips
/// the compiler's higher-ranked lifetime check).
fn rows_after<'c>(
    conn: &'c mut MySqlConnection,
    sql: &'c str,
    after_position: i64,
) -> BoxStream<'c, std::result::Result<MySqlRow, sqlx::Error>> {
    sqlx::query(sql).bind(after_position).fetch(conn)
}

/// Personal fields opened (one key query for the batch), payloads upcast: as `read_all`.
async fn open(store: &EventStore, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>> {
    personal::open_events(store.database(), &mut events, Open::All).await?;
    events.into_iter().map(|e| store.upcast(e)).collect()
}

/// `decode_event` for a native row. The store's tables use a binary collation, which MySQL
/// reports as binary strings; they hold UTF-8, checked here, so the text is read unchecked.
fn decode_native(row: &MySqlRow) -> Result<RecordedEvent> {
    let position: i64 = row.try_get(0)?;
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let schema_version: i64 = row.try_get(6)?;
    let recorded_at = text(row, 10, position)?;
    Ok(RecordedEvent {
        position,
        event_id: uuid::Uuid::from_str(text(row, 1, position)?)
            .map_err(|e| corrupt(format!("event id: {e}")))?,
        aggregate_type: text(row, 2, position)?.to_owned(),
        aggregate_id: text(row, 3, position)?.to_owned(),
        sequence: row.try_get(4)?,
        event_type: text(row, 5, position)?.to_owned(),
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema version {schema_version}")))?,
        payload: serde_json::from_str(text(row, 7, position)?)
            .map_err(|e| corrupt(format!("payload: {e}")))?,
        metadata: serde_json::from_str(text(row, 8, position)?)
            .map_err(|e| corrupt(format!("metadata: {e}")))?,
        data_subject: maybe_text(row, 9)?.map(str::to_owned),
        recorded_at: parse_timestamp(recorded_at)
            .ok_or_else(|| corrupt(format!("recorded_at {recorded_at:?}")))?,
        prev_hash: maybe_text(row, 11)?.map(str::to_owned),
        hash: text(row, 12, position)?.to_owned(),
    })
}

fn maybe_text(row: &MySqlRow, index: usize) -> Result<Option<&str>> {
    Ok(row.try_get_unchecked::<Option<&str>, _>(index)?)
}

fn text(row: &MySqlRow, index: usize, position: i64) -> Result<&str> {
    maybe_text(row, index)?.ok_or_else(|| StoreError::Corrupt {
        position,
        reason: format!("column {index} is NULL"),
    })
}
