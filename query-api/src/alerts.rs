//! For admins: the alerts the pipeline sent (from the notifications outbox, on both profiles)
//! and the depth of each projector's dead-letter queue (aws; the embedded profile has none).

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};
use event_store::parse_timestamp;

use crate::auth::ADMIN;
use crate::error::{FieldResult, QueryError};
use crate::QueryApi;

/// The most alerts one `alerts` call returns.
const MAX_ALERTS: i32 = 100;

#[derive(Default)]
pub struct AlertsQuery;

#[Object]
impl AlertsQuery {
    /// The latest alerts sent to the `alerts` topic, newest first.
    #[graphql(guard = "ADMIN")]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
    ) -> FieldResult<Vec<Alert>> {
        let first = first.unwrap_or(20);
        if !(0..=MAX_ALERTS).contains(&first) {
            return Err(QueryError::BadInput(
                "page_size_exceeded",
                format!("first must be between 0 and {MAX_ALERTS}"),
            )
            .into());
        }
        let api = QueryApi::of(ctx);
        let alerts = projectors::recent_alerts(api.store.database(), first.into()).await?;
        Ok(alerts
            .into_iter()
            .map(|alert| Alert {
                at: parse_timestamp(&alert.created_at).unwrap_or_default(),
                subject: alert.notification.subject,
                message: alert.notification.message,
                sent_at: alert.sent_at.as_deref().and_then(parse_timestamp),
                attempts: alert.attempts,
                last_error: alert.last_error,
            })
            .collect())
    }

    /// Messages waiting in each projector's dead-letter queue; empty where there are no
    /// queues (the embedded profile, whose projectors stop at a failing event instead).
    #[graphql(guard = "ADMIN")]
    async fn dead_letters(&self, ctx: &Context<'_>) -> FieldResult<Vec<DeadLetterQueue>> {
        let Some(probe) = &QueryApi::of(ctx).dead_letters else {
            return Ok(Vec::new());
        };
        let depths = probe
            .depths()
            .await
            .map_err(|e| QueryError::Unavailable(format!("dead-letter queues: {e}")))?;
        Ok(depths
            .into_iter()
            .map(|(queue, messages)| DeadLetterQueue { queue, messages })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct Alert {
    /// When the pipeline raised it.
    pub at: DateTime<Utc>,
    pub subject: String,
    pub message: String,
    /// When it went out to the subscribers (SNS or the log); null while pending.
    pub sent_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    /// Why the last sending failed, if it did.
    pub last_error: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeadLetterQueue {
    pub queue: String,
    /// SQS's ApproximateNumberOfMessages.
    pub messages: i64,
}
