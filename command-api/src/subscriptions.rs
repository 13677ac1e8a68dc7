//! Admins' notification subscriptions: who hears about alerts, new movies and sign-ins, by
//! e-mail or SMS. Kept in SNS in the aws profile, in a table when embedded.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use domain::{Email, Role};
use event_store::format_timestamp;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::auth::SignedIn;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

/// The SNS topics people can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    Alerts,
    Movies,
    Logins,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Alerts, Topic::Movies, Topic::Logins];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Alerts => "alerts",
            Topic::Movies => "movies",
            Topic::Logins => "logins",
        }
    }
}

impl FromStr for Topic {
    type Err = ApiError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Topic::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| invalid("topic", "topic must be one of: alerts, movies, logins"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Email,
    Sms,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Email => "email",
            Protocol::Sms => "sms",
        }
    }
}

impl FromStr for Protocol {
    type Err = ApiError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "email" => Ok(Protocol::Email),
            "sms" => Ok(Protocol::Sms),
            _ => Err(invalid("protocol", "protocol must be email or sms")),
        }
    }
}

fn invalid(field: &'static str, message: &str) -> ApiError {
    ApiError::InvalidField {
        field,
        message: message.to_string(),
    }
}

/// A validated endpoint: an e-mail address, or a phone number in E.164 form (`+` and 8 to 15 digits).
fn parse_endpoint(protocol: Protocol, endpoint: &str) -> Result<String, ApiError> {
    match protocol {
        Protocol::Email => Ok(Email::parse(endpoint)
            .map_err(|e| invalid("endpoint", &e.to_string()))?
            .to_string()),
        Protocol::Sms => {
            let digits = endpoint.strip_prefix('+').unwrap_or_default();
            if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(endpoint.to_string())
            } else {
                Err(invalid(
                    "endpoint",
                    "an SMS endpoint must be a phone number in E.164 form, such as +14155550123",
                ))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub topic: Topic,
    pub protocol: Protocol,
    pub endpoint: String,
    /// Confirmation pending: SNS e-mail subscriptions wait for the recipient to confirm.
    pub pending: bool,
}

#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub topic: Topic,
    pub protocol: Protocol,
    pub endpoint: String,
}

/// Where subscriptions live; one implementation per profile, chosen at start-up.
#[async_trait]
pub trait SubscriptionDirectory: Send + Sync {
    async fn subscribe(&self, subscription: NewSubscription) -> Result<Subscription, ApiError>;
    async fn list(&self) -> Result<Vec<Subscription>, ApiError>;
    /// `false` when there was no such subscription.
    async fn unsubscribe(&self, id: &str) -> Result<bool, ApiError>;
    /// Readiness: the service behind the directory answers (the database is checked apart).
    async fn reachable(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The embedded profile's subscriptions: a table the notification projector reads.
pub struct TableSubscriptions {
    pool: AnyPool,
}

impl TableSubscriptions {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SubscriptionDirectory for TableSubscriptions {
    async fn subscribe(&self, new: NewSubscription) -> Result<Subscription, ApiError> {
        let id = uuid::Uuid::new_v4().to_string();
        let inserted = sqlx::query(
            "INSERT INTO subscriptions (id, topic, protocol, endpoint, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(new.topic.as_str())
        .bind(new.protocol.as_str())
        .bind(&new.endpoint)
        .bind(format_timestamp(Utc::now()))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(Subscription {
                id,
                topic: new.topic,
                protocol: new.protocol,
                endpoint: new.endpoint,
                pending: false,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ApiError::Conflict(
                "subscription_exists",
                "this endpoint is already subscribed to this topic".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self) -> Result<Vec<Subscription>, ApiError> {
        let rows = sqlx::query(
            "SELECT id, topic, protocol, endpoint FROM subscriptions ORDER BY topic, endpoint",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let topic: String = row.try_get(1)?;
                let protocol: String = row.try_get(2)?;
                Ok(Subscription {
                    id: row.try_get(0)?,
                    topic: topic.parse()?,
                    protocol: protocol.parse()?,
                    endpoint: row.try_get(3)?,
                    pending: false,
                })
            })
            .collect()
    }

    async fn unsubscribe(&self, id: &str) -> Result<bool, ApiError> {
        let deleted = sqlx::query("DELETE FROM subscriptions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }
}

/// The aws profile's subscriptions: SNS itself, on the topics `{prefix}alerts`, `…movies`, `…logins`.
pub struct SnsSubscriptions {
    client: aws_sdk_sns::Client,
    topics: Vec<(Topic, String)>,
}

/// How long readiness waits for SNS: a hung endpoint fails the probe instead of stalling it.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

impl SnsSubscriptions {
    /// Finds the three topics' ARNs once at start-up (CreateTopic returns an existing topic's ARN).
    pub async fn connect(
        config: &aws_config::SdkConfig,
        topic_prefix: &str,
    ) -> Result<Self, aws_sdk_sns::Error> {
        let client = aws_sdk_sns::Client::new(config);
        let mut topics = Vec::new();
        for topic in Topic::ALL {
            let created = client
                .create_topic()
                .name(format!("{topic_prefix}{}", topic.as_str()))
                .send()
                .await?;
            topics.push((topic, created.topic_arn().unwrap_or_default().to_string()));
        }
        Ok(Self { client, topics })
    }

    fn arn(&self, topic: Topic) -> &str {
        self.topics
            .iter()
            .find(|(t, _)| *t == topic)
            .map_or("", |(_, arn)| arn.as_str())
    }
}

fn sns_error(error: impl Into<aws_sdk_sns::Error>) -> ApiError {
    ApiError::Unavailable(format!("SNS: {}", error.into()))
}

#[async_trait]
impl SubscriptionDirectory for SnsSubscriptions {
    async fn subscribe(&self, new: NewSubscription) -> Result<Subscription, ApiError> {
        let subscribed = self
            .client
            .subscribe()
            .topic_arn(self.arn(new.topic))
            .protocol(new.protocol.as_str())
            .endpoint(&new.endpoint)
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(sns_error)?;
        Ok(Subscription {
            id: subscribed
                .subscription_arn()
                .unwrap_or_default()
                .to_string(),
            topic: new.topic,
            protocol: new.protocol,
            endpoint: new.endpoint,
            pending: false,
        })
    }

    async fn list(&self) -> Result<Vec<Subscription>, ApiError> {
        let mut all = Vec::new();
        for (topic, arn) in &self.topics {
            let mut pages = self
                .client
                .list_subscriptions_by_topic()
                .topic_arn(arn)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for found in page.map_err(sns_error)?.subscriptions() {
                    let Ok(protocol) = found.protocol().unwrap_or_default().parse() else {
                        continue;
                    };
                    let id = found.subscription_arn().unwrap_or_default().to_string();
                    all.push(Subscription {
                        pending: !id.starts_with("arn:"),
                        id,
                        topic: *topic,
                        protocol,
                        endpoint: found.endpoint().unwrap_or_default().to_string(),
                    });
                }
            }
        }
        Ok(all)
    }

    async fn unsubscribe(&self, id: &str) -> Result<bool, ApiError> {
        // Only subscriptions on our own topics may be removed through Marquee.
        let ours = self
            .topics
            .iter()
            .any(|(_, arn)| id.starts_with(&format!("{arn}:")));
        if !ours || !self.list().await?.iter().any(|s| s.id == id) {
            return Ok(false);
        }
        self.client
            .unsubscribe()
            .subscription_arn(id)
            .send()
            .await
            .map_err(sns_error)?;
        Ok(true)
    }

    /// SNS answers for the alerts topic, with this server's credentials.
    async fn reachable(&self) -> Result<(), ApiError> {
        let probe = self
            .client
            .get_topic_attributes()
            .topic_arn(self.arn(Topic::Alerts))
            .send();
        match tokio::time::timeout(READINESS_TIMEOUT, probe).await {
            Ok(answer) => answer.map(drop).map_err(sns_error),
            Err(_) => Err(ApiError::Unavailable(format!(
                "SNS did not answer within {READINESS_TIMEOUT:?}"
            ))),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    #[schema(value_type = Topic)]
    topic: String,
    #[schema(value_type = Protocol)]
    protocol: String,
    /// An e-mail address, or a phone number in E.164 form (`+14155550123`) for SMS.
    endpoint: String,
}

/// Subscribes an endpoint to a topic (admin only).
#[utoipa::path(
    post,
    path = "/api/admin/subscriptions",
    tag = "subscriptions",
    params(crate::openapi::IdempotencyKey),
    request_body = SubscriptionRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Subscribed", body = Subscription),
        (status = 400, description = "Malformed JSON (`malformed_json`) or a bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The endpoint is subscribed to the topic already, or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown topic or protocol or a bad endpoint (`validation_failed` with `field`), a body of the wrong shape, or a reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database or SNS is unavailable", body = crate::openapi::ErrorBody),
    )
)]

pub async fn create(
    State(state): State<AppState>,
    SignedIn(admin): SignedIn,
    ApiJson(body): ApiJson<SubscriptionRequest>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    admin.require(Role::Admin)?;
    let topic: Topic = body.topic.parse()?;
    let protocol: Protocol = body.protocol.parse()?;
    let endpoint = parse_endpoint(protocol, body.endpoint.trim())?;
    let created = state
        .subscriptions
        .subscribe(NewSubscription {
            topic,
            protocol,
            endpoint,
        })
        .await?;
    tracing::info!(topic = topic.as_str(), protocol = protocol.as_str(), by = %admin.username, "subscription created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// Every subscription (admin only).
#[utoipa::path(
    get,
    path = "/api/admin/subscriptions",
    tag = "subscriptions",
    params(crate::openapi::IdempotencyKey),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The subscriptions", body = Vec<Subscription>),
        (status = 400, description = "A bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database or SNS is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    SignedIn(admin): SignedIn,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    admin.require(Role::Admin)?;
    Ok(Json(state.subscriptions.list().await?))
}

/// Ends a subscription (admin only).
#[utoipa::path(
    delete,
    path = "/api/admin/subscriptions/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id"), crate::openapi::IdempotencyKey),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Unsubscribed"),
        (status = 400, description = "A bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "A request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 422, description = "A reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database or SNS is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    SignedIn(admin): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require(Role::Admin)?;
    if state.subscriptions.unsubscribe(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("subscription".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_for_their_protocol() {
        assert_eq!(
            parse_endpoint(Protocol::Email, "Ops@Example.COM").unwrap(),
            "Ops@example.com"
        );
        assert!(parse_endpoint(Protocol::Email, "+14155550123").is_err());
        assert_eq!(
            parse_endpoint(Protocol::Sms, "+14155550123").unwrap(),
            "+14155550123"
        );
        for bad in ["14155550123", "+1415", "+1415555012x", "ops@example.com"] {
            assert!(parse_endpoint(Protocol::Sms, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_and_protocols_parse_from_their_names() {
        assert_eq!("logins".parse::<Topic>().unwrap(), Topic::Logins);
        assert!("billing".parse::<Topic>().is_err());
        assert_eq!("sms".parse::<Protocol>().unwrap(), Protocol::Sms);
        assert!("pager".parse::<Protocol>().is_err());
    }
}
