use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One aggregate's stream: events of one aggregate instance, numbered 1, 2, 3…
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamId {
    pub aggregate_type: String,
    pub aggregate_id: String,
}

impl StreamId {
    pub fn new(aggregate_type: impl Into<String>, aggregate_id: impl Into<String>) -> Self {
        Self {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

/// An event about to be appended; the store gives it its position, sequence, time and hash.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    /// The person whose key will protect this event's personal fields (crypto-shredding).
    pub data_subject: Option<String>,
}

/// Who and what caused a command: copied into every event the command appends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The actor's data subject (user id): their key seals `client_ip` and `user_agent`. Without
    /// it, the event's own data subject's key does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl EventMetadata {
    /// Metadata for work that no request caused (operator commands, schedules), with a fresh correlation id.
    pub fn system(actor: impl Into<String>) -> Self {
        Self {
            correlation_id: Uuid::new_v4().to_string(),
            actor: Some(actor.into()),
            ..Self::default()
        }
    }
}

/// The events of one command for one stream, appended atomically if the stream is still at
/// `expected_version` (0 for a stream that must not exist yet).
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: StreamId,
    pub expected_version: u64,
    pub events: Vec<NewEvent>,
    pub metadata: EventMetadata,
}

/// An event as stored: the envelope every reader, exporter and verifier sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    pub metadata: Value,
    pub data_subject: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: Option<String>,
    pub hash: String,
}

impl RecordedEvent {
    pub fn stream(&self) -> StreamId {
        StreamId::new(&self.aggregate_type, &self.aggregate_id)
    }
}

/// What a successful append wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The stream's version after the append (its last sequence).
    pub version: u64,
    pub first_position: i64,
    pub last_position: i64,
    /// As readers see them (personal fields open), with the hashes of the stored form.
    pub events: Vec<RecordedEvent>,
}

/// A signed-off range of the global log: the running hash over every event hash up to `to_position`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub from_position: i64,
    pub to_position: i64,
    pub running_hash: String,
    pub sealed_at: DateTime<Utc>,
}

/// The one text form of a timestamp in the store: UTC, microseconds, so that it sorts as text and
/// round-trips exactly through both databases and the hash.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Truncates to what the store keeps, so the in-memory event equals the one read back.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    parse_timestamp(&format_timestamp(now)).unwrap_or(now)
}
