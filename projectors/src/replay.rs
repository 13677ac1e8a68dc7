//! Rebuilding a projection from the store, and checking a live one against a rebuild.

use std::time::{Duration, Instant};

use event_store::{Backend, EventStore};
use sqlx::Row;

use crate::engine::{lock_status, Projector, Source};
use crate::error::{ProjectorError, Result};
use crate::facts::fact;
use crate::read_models::{Difference, ReadModel, READ_MODELS};

/// Events per transaction while rebuilding.
const REPLAY_PAGE: u32 = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub projection: &'static str,
    pub events: usize,
    pub elapsed: Duration,
}

/// Empties the projection's tables and checkpoints and applies the whole log again. Safe beside a
/// running projector: both go through the per-stream guards, so each event is applied once.
pub async fn replay(projector: &Projector) -> Result<ReplayReport> {
    let name = projector.name();
    let tables = projector
        .projection()
        .replay_tables()
        .ok_or(ProjectorError::NotReplayable(name))?;
    let started = Instant::now();
    let db = projector.store().database();
    let turn = db.write_turn().await;
    let mut tx = db.begin_write().await?;
    lock_status(&mut tx, db.backend(), name).await?;
    for table in tables {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM projection_streams WHERE projection = ?")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE projection_status SET position = 0, last_error = NULL WHERE name = ?")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    drop(turn);
    // The next page is read while this one is applied: reading and writing overlap.
    let (pages, mut next_page) = tokio::sync::mpsc::channel(2);
    let store = projector.store().clone();
    let reader = tokio::spawn(async move {
        let mut after = 0;
        loop {
            let page = store.read_all(after, REPLAY_PAGE).await;
            let last = page
                .as_ref()
                .ok()
                .and_then(|events| events.last().map(|e| e.position));
            let full = page
                .as_ref()
                .is_ok_and(|events| events.len() == REPLAY_PAGE as usize);
            if pages.send(page).await.is_err() || !full {
                return;
            }
            after = last.unwrap_or(after);
        }
    });
    let mut events = 0;
    while let Some(page) = next_page.recv().await {
        let page = page?;
        events += page.len();
        projector.apply(page, Source::Store).await?;
    }
    reader.await?;
    Ok(ReplayReport {
        projection: name,
        events,
        elapsed: started.elapsed(),
    })
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
    let mut after = 0;
    while after < position {
        let page = store
            .read_all(after, REPLAY_PAGE.min((position - after) as u32))
            .await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            replayed.apply(event, &fact(event)?);
        }
    }
    Ok(live.differences(&replayed))
}
