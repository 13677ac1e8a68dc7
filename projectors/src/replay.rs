//! Rebuilding a projection from the store, and checking a live one against a rebuild.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use event_store::{format_timestamp, Backend, EventStore};
use sqlx::Row;

use crate::engine::{guard_key, lock_status, write_guards, Projector, Rebuild};
use crate::error::{ProjectorError, Result};
use crate::facts::fact;
use crate::read_models::{Difference, ReadModel, READ_MODELS};
use crate::sql::{OnConflict, Value};

/// Events per read while rebuilding.
const REPLAY_PAGE: u32 = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub projection: &'static str,
    pub events: usize,
    pub elapsed: Duration,
}

/// Rebuilds the projection from the whole log: folds every event in memory, then, in one
/// transaction, empties its tables and checkpoints and writes each row and stream guard once.
///
/// Safe beside a running projector: the log is folded up to its head first, without locks; the
/// transaction then takes the projection's status row (live applies wait for it), folds what
/// arrived meanwhile and swaps the rows. Readers see the old rows until the commit.
pub async fn replay(projector: &Projector) -> Result<ReplayReport> {
    let name = projector.name();
    let mut fold = Fold {
        rebuild: projector
            .projection()
            .rebuild()
            .ok_or(ProjectorError::NotReplayable(name))?,
        guards: HashMap::new(),
        position: 0,
        events: 0,
    };
    let started = Instant::now();
    let store = projector.store();
    fold.read_to_head(store).await?;
    let db = store.database();
    let turn = db.write_turn().await;
    let mut tx = db.begin_write().await?;
    lock_status(&mut tx, db.backend(), name).await?;
    fold.read_to_head(store).await?;
    for table in fold.rebuild.tables() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM projection_streams WHERE projection = ?")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    fold.rebuild.write(&mut tx, db.backend()).await?;
    let guards: Vec<Vec<Value>> = fold
        .guards
        .into_iter()
        .map(|(stream, sequence)| {
            vec![
                Value::from(name),
                Value::from(stream),
                Value::from(sequence),
            ]
        })
        .collect();
    write_guards(&mut tx, db.backend(), OnConflict::Fail, &guards).await?;
    sqlx::query(
        "UPDATE projection_status SET position = ?, last_error = NULL, updated_at = ? WHERE name = ?",
    )
    .bind(fold.position)
    .bind(format_timestamp(Utc::now()))
    .bind(name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    drop(turn);
    Ok(ReplayReport {
        projection: name,
        events: fold.events,
        elapsed: started.elapsed(),
    })
}

/// A rebuild in progress with the last sequence folded per stream.
struct Fold {
    rebuild: Box<dyn Rebuild>,
    guards: HashMap<String, i64>,
    position: i64,
    events: usize,
}

impl Fold {
    /// Folds every event after the current position, reading the next page while one is folded.
    async fn read_to_head(&mut self, store: &EventStore) -> Result<()> {
        let (pages, mut next_page) = tokio::sync::mpsc::channel(2);
        let reader = {
            let store = store.clone();
            let mut after = self.position;
            tokio::spawn(async move {
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
            })
        };
        while let Some(page) = next_page.recv().await {
            for event in page? {
                self.rebuild.apply(&event)?;
                self.guards
                    .insert(guard_key(&event.stream()), event.sequence);
                self.position = event.position;
                self.events += 1;
            }
        }
        reader.await?;
        Ok(())
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
