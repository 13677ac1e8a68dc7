//! The periodic work: the EventBridge-scheduled Lambda in aws, a task inside `serve` in embedded.
//! Every step is safe to repeat: the store sweep applies only what the guards have not seen,
//! alerts and the digest carry once-only keys, unlocking is a command that does nothing when the
//! lock is already lifted.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, NaiveTime, TimeDelta, Utc};
use domain::{PasswordVerifier, User, UserCommand, UserServices};
use event_store::{format_timestamp, text_column, CommandContext, EventMetadata, EventStore};
use sqlx::Row;
use tracing::{info, warn};

use crate::engine::{statuses, Projector};
use crate::error::Result;
use crate::metrics::{MetricDatum, MetricSink, PROJECTION_LAG_EVENTS};
use crate::notifications::{raise_alert, Notification, Topic};
use crate::outbox;
use crate::read_models::READ_MODELS;
use crate::{METRICS, NOTIFICATIONS};

/// How many messages wait in each projector's dead-letter queue.
#[async_trait]
pub trait DeadLetterProbe: Send + Sync {
    async fn depths(&self) -> Result<Vec<(String, i64)>>;
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaintenanceReport {
    pub checkpoint: Option<i64>,
    /// Events the store sweep applied because the bus had not delivered them.
    pub swept: usize,
    pub unlocked: Vec<String>,
    pub lag: i64,
    pub dead_letters: Vec<(String, i64)>,
    /// Per outbox channel, effects whose sending may or may not have arrived.
    pub in_doubt: Vec<(String, i64)>,
}

pub struct Maintenance {
    store: EventStore,
    projectors: Vec<Projector>,
    metrics: Arc<dyn MetricSink>,
    dead_letters: Option<Arc<dyn DeadLetterProbe>>,
    /// Lag, in events, above which admins are alerted.
    lag_alert: i64,
}

/// Unlocking never checks a password.
struct NoPasswords;

impl PasswordVerifier for NoPasswords {
    fn verify(&self, _password: &str, _password_hash: &str) -> bool {
        false
    }
}

impl Maintenance {
    pub fn new(
        store: EventStore,
        projectors: Vec<Projector>,
        metrics: Arc<dyn MetricSink>,
        dead_letters: Option<Arc<dyn DeadLetterProbe>>,
        lag_alert: i64,
    ) -> Self {
        Self {
            store,
            projectors,
            metrics,
            dead_letters,
            lag_alert,
        }
    }

    /// Runs every job; a failing job is logged and the others still run. Fails only if all did.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        let mut last_error = None;
        match self.store.seal_checkpoint().await {
            Ok(sealed) => report.checkpoint = sealed.map(|c| c.to_position),
            Err(error) => last_error = Some(error.into()),
        }
        for projector in &self.projectors {
            match projector.sweep(now).await {
                Ok(swept) => report.swept += swept.applied,
                Err(error) => {
                    projector.record_error(&error.to_string()).await;
                    last_error = Some(error);
                }
            }
        }
        match self.unlock_expired(now).await {
            Ok(unlocked) => report.unlocked = unlocked,
            Err(error) => last_error = Some(error),
        }
        match self.measure_lag(now).await {
            Ok(lag) => report.lag = lag,
            Err(error) => last_error = Some(error),
        }
        match self.check_dead_letters(now).await {
            Ok(depths) => report.dead_letters = depths,
            Err(error) => last_error = Some(error),
        }
        match self.check_in_doubt(now).await {
            Ok(in_doubt) => report.in_doubt = in_doubt,
            Err(error) => last_error = Some(error),
        }
        if let Err(error) = self.daily_digest(now).await {
            last_error = Some(error);
        }
        // Effects whose first sending failed go out now.
        for projector in &self.projectors {
            projector.deliver().await;
        }
        info!(?report, "maintenance done");
        match last_error {
            Some(error) if report == MaintenanceReport::default() => Err(error),
            Some(error) => {
                warn!(%error, "a maintenance job failed");
                Ok(report)
            }
            None => Ok(report),
        }
    }

    async fn unlock_expired(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id, username FROM rm_users WHERE locked_until IS NOT NULL AND locked_until <= ?",
        )
        .bind(format_timestamp(now))
        .fetch_all(self.store.database().pool())
        .await?;
        let services = UserServices {
            passwords: Arc::new(NoPasswords),
        };
        let context = CommandContext {
            metadata: EventMetadata::system("scheduler"),
            data_subject: None,
        };
        let mut unlocked = Vec::new();
        for row in rows {
            let id = text_column(&row, 0)?.unwrap_or_default();
            let username = text_column(&row, 1)?.unwrap_or_default();
            let command = UserCommand::UnlockIfExpired { at: now };
            match self
                .store
                .execute::<User>(&id, command, &services, &context)
                .await
            {
                Ok(done) if !done.events.is_empty() => unlocked.push(username),
                Ok(_) => {}
                Err(error) => warn!(%error, %username, "could not lift an expired lockout"),
            }
        }
        Ok(unlocked)
    }

    /// The largest lag of the projectors, put as `ProjectionLagEvents`; an alert above the threshold.
    async fn measure_lag(&self, now: DateTime<Utc>) -> Result<i64> {
        let lag = statuses(&self.store)
            .await?
            .into_iter()
            .filter(|s| [READ_MODELS, METRICS, NOTIFICATIONS].contains(&s.name.as_str()))
            .map(|s| s.lag)
            .max()
            .unwrap_or(0);
        let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let db = self.store.database();
        let turn = db.write_turn().await;
        let mut tx = db.begin_write().await?;
        let datum = MetricDatum::gauge(PROJECTION_LAG_EVENTS, minute, lag as f64);
        self.metrics
            .record(
                &mut tx,
                db.backend(),
                &[(format!("lag:{}", format_timestamp(minute)), datum)],
            )
            .await?;
        tx.commit().await?;
        drop(turn);
        self.metrics.flush(db).await?;
        if lag > self.lag_alert {
            let window = now.duration_trunc(TimeDelta::minutes(15)).unwrap_or(now);
            let alert = Notification {
                topic: Topic::Alerts,
                subject: "Marquee: projections are falling behind".into(),
                message: format!(
                    "The read models are {lag} events behind the event store (alert threshold {}).",
                    self.lag_alert
                ),
                username: None,
            };
            raise_alert(db, format!("lag:{}", format_timestamp(window)), alert).await?;
        }
        Ok(lag)
    }

    async fn check_dead_letters(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        let Some(probe) = &self.dead_letters else {
            return Ok(Vec::new());
        };
        let depths = probe.depths().await?;
        let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
        for (queue, depth) in depths.iter().filter(|(_, depth)| *depth > 0) {
            let alert = Notification {
                topic: Topic::Alerts,
                subject: "Marquee: messages in a dead-letter queue".into(),
                message: format!("{depth} message(s) wait in {queue}: a projector could not apply them. Inspect and redrive them (docs/deploy.md)."),
                username: None,
            };
            // Once per queue, depth and hour: a growing queue alerts again, a stuck one hourly.
            let key = format!("dead-letters:{queue}:{depth}:{}", format_timestamp(hour));
            raise_alert(self.store.database(), key, alert).await?;
        }
        Ok(depths)
    }

    /// Alerts on effects left in doubt: their sender timed out or stopped during the call.
    async fn check_in_doubt(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        let db = self.store.database();
        let in_doubt = outbox::in_doubt(db, now).await?;
        let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
        for (channel, count) in &in_doubt {
            let alert = Notification {
                topic: Topic::Alerts,
                subject: "Marquee: effects that may not have arrived".into(),
                message: format!("{count} {channel} effect(s) may or may not have arrived: their sending timed out or its process stopped during the call. They are not sent again, so that nothing arrives twice; their outbox rows are claimed and have no sent_at."),
                username: None,
            };
            // Once per channel, count and hour, as for dead letters.
            let key = format!("in-doubt:{channel}:{count}:{}", format_timestamp(hour));
            raise_alert(db, key, alert).await?;
        }
        Ok(in_doubt)
    }

    /// Yesterday in numbers, to `alerts`, once per day.
    async fn daily_digest(&self, now: DateTime<Utc>) -> Result<()> {
        let today = now.date_naive();
        let Some(yesterday) = today.pred_opt() else {
            return Ok(());
        };
        let start = format_timestamp(yesterday.and_time(NaiveTime::MIN).and_utc());
        let end = format_timestamp(today.and_time(NaiveTime::MIN).and_utc());
        let pool = self.store.database().pool();
        let count = |sql: &'static str| {
            let (start, end) = (start.clone(), end.clone());
            async move {
                let row = sqlx::query(sql)
                    .bind(start)
                    .bind(end)
                    .fetch_one(pool)
                    .await?;
                Ok::<i64, crate::ProjectorError>(row.try_get(0)?)
            }
        };
        let added =
            count("SELECT COUNT(*) FROM rm_movies WHERE added_at >= ? AND added_at < ?").await?;
        let registered =
            count("SELECT COUNT(*) FROM rm_users WHERE registered_at >= ? AND registered_at < ?")
                .await?;
        let signed_in =
            count("SELECT COUNT(*) FROM rm_logins WHERE succeeded = 1 AND at >= ? AND at < ?")
                .await?;
        let failed =
            count("SELECT COUNT(*) FROM rm_logins WHERE succeeded = 0 AND at >= ? AND at < ?")
                .await?;
        let digest = Notification {
            topic: Topic::Alerts,
            subject: format!("Marquee daily digest for {yesterday}"),
            message: format!(
                "On {yesterday}: {added} movie(s) added, {registered} user(s) registered, \
                 {signed_in} successful and {failed} failed sign-in(s)."
            ),
            username: None,
        };
        raise_alert(self.store.database(), format!("digest:{yesterday}"), digest).await
    }
}
