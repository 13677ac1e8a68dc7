//! Notifications to people: a user's own sign-ins (`logins`, with a `username` attribute that
//! subscription filter policies match), new movies (`movies`) and admin alerts (`alerts`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::{LoginMethod, MovieEvent, UserEvent};
use event_store::{format_timestamp, text_column, Backend, Database, RecordedEvent};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tracing::info;

use crate::engine::{Projection, Rebuild};
use crate::error::Result;
use crate::facts::{fact, Fact};
use crate::outbox::Outbox;
use crate::sql::{insert_rows, OnConflict, Tx, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    Alerts,
    Movies,
    Logins,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alerts => "alerts",
            Self::Movies => "movies",
            Self::Logins => "logins",
        }
    }
}

/// One message to the subscribers of a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub topic: Topic,
    pub subject: String,
    pub message: String,
    /// For `logins`: whose sign-in it was (an SNS message attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// Delivers notifications.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, notification: &Notification) -> Result<()>;

    /// Delivers up to `NOTIFICATIONS_PER_SEND` at once, answering one outcome per notification,
    /// in order: one the service refused fails alone.
    async fn send_all(&self, notifications: &[Notification]) -> Vec<Result<()>>;
}

/// Notifications claimed and sent together: SNS PublishBatch's most entries.
pub const NOTIFICATIONS_PER_SEND: usize = 10;

/// The embedded profile: a log line per notification (the outbox keeps the record).
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn send(&self, notification: &Notification) -> Result<()> {
        info!(
            topic = notification.topic.as_str(),
            subject = %notification.subject,
            username = notification.username.as_deref(),
            message = %notification.message,
            "notification"
        );
        Ok(())
    }

    async fn send_all(&self, notifications: &[Notification]) -> Vec<Result<()>> {
        let mut outcomes = Vec::with_capacity(notifications.len());
        for notification in notifications {
            outcomes.push(self.send(notification).await);
        }
        outcomes
    }
}

pub const NOTIFICATIONS_OUTBOX: Outbox = Outbox::new("notifications");

/// When the alerts go off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRules {
    /// Failed sign-ins, across all accounts, within `burst_window` that raise an alert.
    pub failed_sign_in_burst: i64,
    pub burst_window: TimeDelta,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            failed_sign_in_burst: 20,
            burst_window: TimeDelta::minutes(5),
        }
    }
}

/// The `notifications` projection.
pub struct Notifications {
    notifier: Arc<dyn Notifier>,
    rules: AlertRules,
}

pub const NOTIFICATIONS: &str = "notifications";

impl Notifications {
    pub fn new(notifier: Arc<dyn Notifier>, rules: AlertRules) -> Self {
        Self { notifier, rules }
    }

    async fn username(tx: &mut Tx, user_id: &str) -> Result<String> {
        let row = sqlx::query("SELECT username FROM notify_users WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(match row {
            Some(row) => text_column(&row, 0)?.unwrap_or_default(),
            None => user_id.to_owned(),
        })
    }

    /// The movie's latest title, from its own stream (a removal does not repeat it).
    async fn movie_title(tx: &mut Tx, movie_id: &str) -> Result<Option<String>> {
        let rows = sqlx::query(
            "SELECT payload FROM events WHERE aggregate_type = 'Movie' AND aggregate_id = ? \
             AND event_type IN ('MovieAdded', 'MovieDetailsUpdated') ORDER BY sequence",
        )
        .bind(movie_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut title = None;
        for row in rows {
            let payload: serde_json::Value =
                serde_json::from_str(&text_column(&row, 0)?.unwrap_or_default())
                    .unwrap_or_default();
            let found = payload
                .get("title")
                .or_else(|| payload.pointer("/changes/title"));
            if let Some(found) = found.and_then(|t| t.as_str()) {
                title = Some(found.to_owned());
            }
        }
        Ok(title)
    }

    /// Counts a failed sign-in; an alert when this one brings the window to the threshold.
    async fn failed_sign_in(
        &self,
        tx: &mut Tx,
        backend: Backend,
        at: DateTime<Utc>,
    ) -> Result<Option<(String, Notification)>> {
        let minute = at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at);
        insert_rows(
            tx,
            backend,
            "failed_sign_ins",
            &["minute", "failures"],
            &["minute"],
            OnConflict::Add("failures"),
            &[vec![Value::from(format_timestamp(minute)), Value::Int(1)]],
        )
        .await?;
        let window_start = minute - self.rules.burst_window + TimeDelta::minutes(1);
        // At most a window's worth of rows; summed here because MySQL's SUM is a DECIMAL.
        let rows =
            sqlx::query("SELECT failures FROM failed_sign_ins WHERE minute >= ? AND minute <= ?")
                .bind(format_timestamp(window_start))
                .bind(format_timestamp(minute))
                .fetch_all(&mut **tx)
                .await?;
        let mut failures = 0;
        for row in rows {
            failures += row.try_get::<i64, _>(0)?;
        }
        if failures != self.rules.failed_sign_in_burst {
            return Ok(None);
        }
        let minutes = self.rules.burst_window.num_minutes();
        Ok(Some((
            format!("burst:{}", format_timestamp(minute)),
            Notification {
                topic: Topic::Alerts,
                subject: "Marquee: a burst of failed sign-ins".into(),
                message: format!(
                    "{failures} failed sign-ins across accounts in the {minutes} minutes up to {}.",
                    format_timestamp(minute)
                ),
                username: None,
            },
        )))
    }
}

fn method_name(method: LoginMethod) -> &'static str {
    match method {
        LoginMethod::Password => "a password",
        LoginMethod::Passkey => "a passkey",
    }
}

#[async_trait]
impl Projection for Notifications {
    fn name(&self) -> &'static str {
        NOTIFICATIONS
    }

    async fn apply(&self, tx: &mut Tx, backend: Backend, events: &[RecordedEvent]) -> Result<()> {
        let mut effects: Vec<(String, Notification)> = Vec::new();
        for event in events {
            let key = |topic: Topic| format!("{}:{}", event.event_id, topic.as_str());
            match fact(event)? {
                Fact::User(UserEvent::UserRegistered(registered)) => {
                    insert_rows(
                        tx,
                        backend,
                        "notify_users",
                        &["user_id", "username"],
                        &["user_id"],
                        OnConflict::Replace(&["username"]),
                        &[vec![
                            Value::from(event.aggregate_id.as_str()),
                            Value::from(registered.username.to_string()),
                        ]],
                    )
                    .await?;
                }
                Fact::User(UserEvent::PasswordLoginSucceeded(ok)) => {
                    let username = Self::username(tx, &event.aggregate_id).await?;
                    effects.push((
                        key(Topic::Logins),
                        sign_in(&username, LoginMethod::Password, ok.at, ok.ip.as_deref()),
                    ));
                }
                Fact::User(UserEvent::PasskeyLoginSucceeded(ok)) => {
                    let username = Self::username(tx, &event.aggregate_id).await?;
                    effects.push((
                        key(Topic::Logins),
                        sign_in(&username, LoginMethod::Passkey, ok.at, ok.ip.as_deref()),
                    ));
                }
                Fact::User(UserEvent::LoginFailed(failed)) => {
                    if let Some(alert) = self.failed_sign_in(tx, backend, failed.at).await? {
                        effects.push(alert);
                    }
                }
                Fact::User(UserEvent::AccountLocked(locked)) => {
                    let username = Self::username(tx, &event.aggregate_id).await?;
                    effects.push((key(Topic::Alerts), Notification {
                        topic: Topic::Alerts,
                        subject: format!("Marquee: account {username} locked"),
                        message: format!("The account {username} was locked after {} failed sign-ins, until {}.", locked.failures, format_timestamp(locked.until)),
                        username: None,
                    }));
                }
                Fact::Movie(MovieEvent::MovieAdded(added)) => {
                    effects.push((
                        key(Topic::Movies),
                        Notification {
                            topic: Topic::Movies,
                            subject: format!("New on Marquee: {}", added.title),
                            message: format!(
                                "{} ({}), directed by {}, was added to the catalogue.",
                                added.title, added.year, added.director
                            ),
                            username: None,
                        },
                    ));
                }
                Fact::Movie(MovieEvent::MovieRemoved(removed)) => {
                    let title = Self::movie_title(tx, &event.aggregate_id)
                        .await?
                        .unwrap_or_else(|| event.aggregate_id.clone());
                    effects.push((key(Topic::Alerts), Notification {
                        topic: Topic::Alerts,
                        subject: format!("Marquee: movie removed: {title}"),
                        message: format!("{title} (id {}) was removed from the catalogue by user {} at {}. Its history is kept.", event.aggregate_id, removed.by, format_timestamp(removed.at)),
                        username: None,
                    }));
                }
                Fact::User(_) | Fact::Movie(_) => {}
            }
        }
        NOTIFICATIONS_OUTBOX.put(tx, backend, &effects).await
    }

    async fn deliver(&self, db: &Database) -> Result<()> {
        // Each notification is settled by its own outcome: one refused is retried alone.
        NOTIFICATIONS_OUTBOX
            .drain(
                db,
                NOTIFICATIONS_PER_SEND,
                |batch: Vec<Notification>| async move { self.notifier.send_all(&batch).await },
            )
            .await
            .map(|_| ())
    }

    fn rebuild(&self) -> Option<Box<dyn Rebuild>> {
        None
    }
}

fn sign_in(
    username: &str,
    method: LoginMethod,
    at: DateTime<Utc>,
    ip: Option<&str>,
) -> Notification {
    let from = ip.map(|ip| format!(" from {ip}")).unwrap_or_default();
    Notification {
        topic: Topic::Logins,
        subject: "Marquee: new sign-in to your account".into(),
        message: format!(
            "{username} signed in with {} at {}{from}. If this was not you, change your password.",
            method_name(method),
            format_timestamp(at)
        ),
        username: Some(username.to_owned()),
    }
}

/// Queues an alert that is not caused by one event (the scheduler's); `key` makes it once-only.
pub async fn raise_alert(db: &Database, key: String, alert: Notification) -> Result<()> {
    let _turn = db.write_turn().await;
    let mut tx = db.begin_write().await?;
    NOTIFICATIONS_OUTBOX
        .put(&mut tx, db.backend(), &[(key, alert)])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// An alert as the outbox holds it: what was said, when it was queued and whether it went out.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAlert {
    pub notification: Notification,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// The latest `limit` alerts, newest first, from the notifications outbox (both profiles queue
/// every notification there before sending it).
pub async fn recent_alerts(db: &Database, limit: i64) -> Result<Vec<RecordedAlert>> {
    // Serde writes `topic` first, so the prefix picks the alerts without parsing every row.
    let rows = sqlx::query(
        "SELECT payload, created_at, sent_at, attempts, last_error FROM outbox \
         WHERE channel = ? AND payload LIKE '{\"topic\":\"alerts\"%' \
         ORDER BY created_at DESC, effect_key DESC LIMIT ?",
    )
    .bind(NOTIFICATIONS_OUTBOX.channel())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut alerts = Vec::with_capacity(rows.len());
    for row in rows {
        let payload = text_column(&row, 0)?.unwrap_or_default();
        let notification = serde_json::from_str::<Notification>(&payload).map_err(|e| {
            crate::ProjectorError::Undecodable {
                position: 0,
                event_type: "notifications outbox row".into(),
                reason: e.to_string(),
            }
        })?;
        alerts.push(RecordedAlert {
            notification,
            created_at: text_column(&row, 1)?.unwrap_or_default(),
            sent_at: text_column(&row, 2)?,
            attempts: row.try_get(3)?,
            last_error: text_column(&row, 4)?,
        });
    }
    Ok(alerts)
}
