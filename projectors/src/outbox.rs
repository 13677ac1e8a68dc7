//! Effects written in the projection's transaction and sent after it commits.
//!
//! A row per event and effect (`effect_key`), inserted idempotently, so a redelivered event
//! finds its effect already there. Sending claims rows under a lock that concurrent senders skip,
//! and marks them sent in the same transaction: two senders never send the same row. A crash
//! between the remote call and that commit is the one window where a row can go out twice.

use std::future::Future;

use chrono::Utc;
use event_store::{format_timestamp, text_column, Backend, Database};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use crate::error::Result;
use crate::sql::{insert_rows, OnConflict, Tx, Value};

#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    channel: &'static str,
}

impl Outbox {
    pub const fn new(channel: &'static str) -> Self {
        Self { channel }
    }

    pub const fn channel(&self) -> &'static str {
        self.channel
    }

    /// Adds effects; one whose key is already there (from an earlier delivery) is left alone.
    pub async fn put<T: Serialize>(
        &self,
        tx: &mut Tx,
        backend: Backend,
        effects: &[(String, T)],
    ) -> Result<()> {
        let now = format_timestamp(Utc::now());
        let rows: Vec<Vec<Value>> = effects
            .iter()
            .map(|(key, effect)| {
                vec![
                    Value::from(self.channel),
                    Value::from(key.as_str()),
                    Value::from(serde_json::to_string(effect).unwrap_or_default()),
                    Value::from(now.as_str()),
                ]
            })
            .collect();
        insert_rows(
            tx,
            backend,
            "outbox",
            &["channel", "effect_key", "payload", "created_at"],
            &["channel", "effect_key"],
            OnConflict::Ignore,
            &rows,
        )
        .await?;
        Ok(())
    }

    /// Sends pending effects, `batch` at a time, oldest first, until none is left or `send`
    /// fails (the failed batch stays pending, with its error). Returns how many were sent.
    pub async fn drain<T, F, Fut>(&self, db: &Database, batch: usize, send: F) -> Result<usize>
    where
        T: DeserializeOwned,
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let mut sent = 0;
        loop {
            let _turn = db.write_turn().await;
            let mut tx = db.begin_write().await?;
            let skip_locked = match db.backend() {
                Backend::MySql => " FOR UPDATE SKIP LOCKED",
                Backend::Sqlite => "",
            };
            let rows = sqlx::query(&format!(
                "SELECT effect_key, payload FROM outbox WHERE channel = ? AND sent_at IS NULL \
                 ORDER BY created_at, effect_key LIMIT ?{skip_locked}"
            ))
            .bind(self.channel)
            .bind(batch as i64)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(sent);
            }
            let mut keys = Vec::with_capacity(rows.len());
            let mut effects = Vec::with_capacity(rows.len());
            for row in &rows {
                keys.push(text_column(row, 0)?.unwrap_or_default());
                let payload = text_column(row, 1)?.unwrap_or_default();
                effects.push(serde_json::from_str::<T>(&payload).map_err(|e| {
                    crate::ProjectorError::Undecodable {
                        position: 0,
                        event_type: format!("{} outbox row", self.channel),
                        reason: e.to_string(),
                    }
                })?);
            }
            let outcome = send(effects).await;
            let now = format_timestamp(Utc::now());
            for key in &keys {
                let update = match &outcome {
                    Ok(()) => sqlx::query(
                        "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL \
                         WHERE channel = ? AND effect_key = ?",
                    )
                    .bind(now.as_str()),
                    Err(error) => sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ? \
                         WHERE channel = ? AND effect_key = ?",
                    )
                    .bind(error.to_string().chars().take(1000).collect::<String>()),
                };
                update
                    .bind(self.channel)
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            outcome?;
            sent += keys.len();
        }
    }

    /// How many effects wait to be sent.
    pub async fn pending(&self, db: &Database) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE channel = ? AND sent_at IS NULL")
            .bind(self.channel)
            .fetch_one(db.pool())
            .await?;
        Ok(row.try_get(0)?)
    }
}
