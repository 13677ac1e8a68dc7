//! Effects written in the projection's transaction and sent after it commits.
//!
//! A row per event and effect (`effect_key`), inserted idempotently, so a redelivered event
//! finds its effect already there. A sender claims a batch in a transaction of its own that
//! commits before the remote call (concurrent senders skip locked rows, so two never claim the
//! same one), calls, and then settles the rows by their outcome, one statement per outcome (a
//! PublishBatch answers per entry). No database lock or write turn is held across the call.
//!
//! The claim decides what a crash or a timeout can do. A row is sent again only when it is known
//! not to have left: its call failed before reaching the service (connection refused, connect
//! timeout) or the service refused it; its claim is then released. A row whose call may have
//! reached the service (it timed out, the connection broke, the sender stopped during the call)
//! keeps its claim and is never sent again by itself: sending it twice is the worse mistake for
//! a count or an e-mail. The window in which such a row was in fact never delivered is the one
//! between the claim's commit and the request leaving the process; maintenance alerts on the
//! rows left in doubt.
//!
//! The crash failpoint waits for the calls in flight in its process (`quiesce`) before it aborts,
//! so that it crashes a projector after its commit, as it says, and not, by chance, another
//! projector of the same process inside a remote call: that is the window above, which no
//! design closes and no test of it could pass.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use event_store::{format_timestamp, text_column, Backend, Database};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;
use tokio::sync::{RwLock, RwLockWriteGuard};
use tracing::warn;

use crate::error::{ProjectorError, Result};
use crate::sql::{self, insert_rows, placeholders, OnConflict, Tx, Value};

/// How long a claim may stay unresolved before its row counts as in doubt: far longer than one
/// call may take (a 3 s connect and a 5 s attempt, never retried by the SDK).
pub(crate) const CLAIM_LEASE: TimeDelta = TimeDelta::minutes(1);

/// Held shared by every send of this process from its claim to its settlement.
static CALLS: RwLock<()> = RwLock::const_new(());

/// Waits until no send of this process is between its claim and its settlement, and keeps new
/// ones from claiming while the guard lives.
pub(crate) async fn quiesce() -> RwLockWriteGuard<'static, ()> {
    CALLS.write().await
}

#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    channel: &'static str,
}

/// How a send ended, for the rows it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Settled {
    /// Delivered: marked sent.
    Sent,
    /// Known not to have taken effect: the claim is released and the next drain sends again.
    Released,
    /// May have taken effect: the claim stays, and the row is not sent again.
    InDoubt,
}

impl Settled {
    fn of(outcome: &Result<()>) -> Self {
        match outcome {
            Ok(()) => Self::Sent,
            Err(ProjectorError::InDoubt { .. }) => Self::InDoubt,
            Err(_) => Self::Released,
        }
    }
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

    /// Sends pending effects, `batch` at a time, oldest first, until none is left or a send
    /// fails. `send` answers one outcome per effect, in order (a call that fails as a whole gives
    /// each of its effects the same failure, see `each`); each row is settled by its own (see
    /// the module for what is sent again), and the first failure ends the drain. Returns how
    /// many were sent.
    pub async fn drain<T, F, Fut>(&self, db: &Database, batch: usize, send: F) -> Result<usize>
    where
        T: DeserializeOwned,
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<Result<()>>>,
    {
        let mut sent = 0;
        loop {
            let in_flight = CALLS.read().await;
            let (keys, effects) = self.claim::<T>(db, batch).await?;
            if keys.is_empty() {
                return Ok(sent);
            }
            let mut outcomes = send(effects).await.into_iter();
            let mut settled: BTreeMap<(Settled, Option<String>), Vec<String>> = BTreeMap::new();
            let mut first_error = None;
            for key in keys {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    Err(ProjectorError::InDoubt {
                        service: self.channel,
                        message: "the sender reported no outcome".into(),
                    })
                });
                let how = Settled::of(&outcome);
                let error = outcome.as_ref().err().map(ToString::to_string);
                settled.entry((how, error)).or_default().push(key);
                if let Err(error) = outcome {
                    first_error.get_or_insert(error);
                }
            }
            for ((how, error), keys) in &settled {
                self.settle(db, keys, *how, error.as_deref()).await?;
                match how {
                    Settled::Sent => sent += keys.len(),
                    Settled::InDoubt => warn!(
                        channel = self.channel,
                        effects = keys.len(),
                        error = error.as_deref(),
                        "effects in doubt: they may have arrived and are not sent again"
                    ),
                    Settled::Released => {}
                }
            }
            drop(in_flight);
            if let Some(error) = first_error {
                return Err(error);
            }
        }
    }

    /// Claims up to `batch` pending rows in a transaction that commits before they are sent.
    /// A row that cannot be decoded fails the claim and stays pending, with nothing claimed.
    async fn claim<T: DeserializeOwned>(
        &self,
        db: &Database,
        batch: usize,
    ) -> Result<(Vec<String>, Vec<T>)> {
        let turn = db.write_turn().await;
        let mut tx = db.begin_write().await?;
        let skip_locked = match db.backend() {
            Backend::MySql => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "SELECT effect_key, payload FROM outbox \
             WHERE channel = ? AND sent_at IS NULL AND claimed_at IS NULL \
             ORDER BY created_at, effect_key LIMIT ?{skip_locked}"
        ))
        .bind(self.channel)
        .bind(batch as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        let mut effects = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push(text_column(row, 0)?.unwrap_or_default());
            let payload = text_column(row, 1)?.unwrap_or_default();
            effects.push(serde_json::from_str::<T>(&payload).map_err(|e| {
                ProjectorError::Undecodable {
                    position: 0,
                    event_type: format!("{} outbox row", self.channel),
                    reason: e.to_string(),
                }
            })?);
        }
        let now = format_timestamp(Utc::now());
        self.update(
            &mut tx,
            "claimed_at = ?, attempts = attempts + 1",
            &[Value::from(now)],
            &keys,
        )
        .await?;
        tx.commit().await?;
        drop(turn);
        Ok((keys, effects))
    }

    /// Records how the send of `keys` ended.
    async fn settle(
        &self,
        db: &Database,
        keys: &[String],
        settled: Settled,
        error: Option<&str>,
    ) -> Result<()> {
        let error: Option<String> = error.map(|e| e.chars().take(1000).collect());
        let (set, values) = match settled {
            Settled::Sent => (
                "sent_at = ?, last_error = NULL",
                vec![Value::from(format_timestamp(Utc::now()))],
            ),
            Settled::Released => (
                "claimed_at = NULL, last_error = ?",
                vec![Value::from(error)],
            ),
            Settled::InDoubt => ("last_error = ?", vec![Value::from(error)]),
        };
        let turn = db.write_turn().await;
        let mut tx = db.begin_write().await?;
        self.update(&mut tx, set, &values, keys).await?;
        tx.commit().await?;
        drop(turn);
        Ok(())
    }

    /// `UPDATE outbox SET {set}` for the rows `keys` of this channel: one statement per few
    /// hundred keys.
    async fn update(
        &self,
        tx: &mut Tx,
        set: &str,
        values: &[Value],
        keys: &[String],
    ) -> Result<()> {
        for chunk in sql::key_chunks(keys) {
            let statement = format!(
                "UPDATE outbox SET {set} WHERE channel = ? AND effect_key IN ({})",
                placeholders(chunk.len())
            );
            let mut bound = values.to_vec();
            bound.push(Value::from(self.channel));
            bound.extend(chunk.iter().map(|key| Value::from(key.as_str())));
            sql::bind_all(sqlx::query(&statement), &bound)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// How many effects wait to be sent (unclaimed).
    pub async fn pending(&self, db: &Database) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM outbox \
             WHERE channel = ? AND sent_at IS NULL AND claimed_at IS NULL",
        )
        .bind(self.channel)
        .fetch_one(db.pool())
        .await?;
        Ok(row.try_get(0)?)
    }
}

/// The outcome of a call that carried `count` effects, for each of them.
pub(crate) fn each(count: usize, outcome: Result<()>) -> Vec<Result<()>> {
    match outcome {
        Ok(()) => (0..count).map(|_| Ok(())).collect(),
        Err(error) => (0..count).map(|_| Err(error.again())).collect(),
    }
}

/// Per channel, how many effects were claimed before `now - CLAIM_LEASE` and never confirmed:
/// they may or may not have arrived, and are not sent again.
pub(crate) async fn in_doubt(db: &Database, now: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT channel, COUNT(*) FROM outbox \
         WHERE sent_at IS NULL AND claimed_at IS NOT NULL AND claimed_at < ? \
         GROUP BY channel ORDER BY channel",
    )
    .bind(format_timestamp(now - CLAIM_LEASE))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| Ok((text_column(row, 0)?.unwrap_or_default(), row.try_get(1)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_that_may_have_arrived_keeps_its_claim() {
        assert_eq!(Settled::of(&Ok(())), Settled::Sent);
        let refused = ProjectorError::aws("SNS", "connection refused");
        assert_eq!(Settled::of(&Err(refused)), Settled::Released);
        let timed_out = ProjectorError::InDoubt {
            service: "CloudWatch",
            message: "operation attempt timeout".into(),
        };
        assert_eq!(Settled::of(&Err(timed_out)), Settled::InDoubt);
    }

    #[test]
    fn a_call_that_fails_as_a_whole_fails_each_of_its_effects_alike() {
        let timed_out = ProjectorError::InDoubt {
            service: "CloudWatch",
            message: "operation attempt timeout".into(),
        };
        let outcomes = each(3, Err(timed_out));
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes.iter().all(|o| Settled::of(o) == Settled::InDoubt));
        let refused = each(2, Err(ProjectorError::aws("SNS", "connection refused")));
        assert!(refused.iter().all(|o| Settled::of(o) == Settled::Released));
        assert!(each(2, Ok(())).iter().all(Result::is_ok));
    }
}
