//! Runs cqrs-es aggregates against the store: load the stream, handle the command, append the
//! events with the version that was loaded. Unlike cqrs-es's own framework this answers with the
//! stored positions, which the API hands back to clients for read-your-writes.

use cqrs_es::{Aggregate, DomainEvent};
use serde_json::{json, Value};

use crate::error::StoreError;
use crate::model::{AppendRequest, Appended, EventMetadata, NewEvent, StreamId};
use crate::personal::Open;
use crate::store::EventStore;

/// How often a command is re-run on fresh state when another writer got there first.
const ATTEMPTS: usize = 3;

/// Who asked, and whose personal data the events' payloads hold (the data subject, whose key
/// seals them; the metadata's client IP and user agent are sealed with the actor's key).
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    pub metadata: EventMetadata,
    pub data_subject: Option<String>,
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    pub aggregate: A,
    pub events: Vec<A::Event>,
    /// The stream's version after the command.
    pub version: u64,
    /// Where the events were stored; `None` when the command had nothing to record.
    pub appended: Option<Appended>,
}

impl<A: Aggregate> Executed<A> {
    /// The global position of the command's last event.
    pub fn position(&self) -> Option<i64> {
        self.appended.as_ref().map(|a| a.last_position)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    #[error(transparent)]
    Domain(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EventStore {
    /// Replays an aggregate's stream; returns its state and version (0 if it has no events).
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<(A, u64), StoreError> {
        let stream = StreamId::new(A::aggregate_type(), aggregate_id);
        let mut aggregate = A::default();
        let mut version = 0;
        for recorded in self.read_stream_opening(&stream, 0, Open::Payload).await? {
            aggregate.apply(decode_event::<A::Event>(
                &recorded.event_type,
                recorded.payload,
                recorded.position,
            )?);
            version = u64::try_from(recorded.sequence).unwrap_or_default();
        }
        Ok((aggregate, version))
    }

    /// Handles a command that starts a new stream (its id was just minted, so there is nothing to
    /// load): saves the read a command on an existing aggregate needs. Should the stream exist
    /// after all, the append fails with `VersionConflict` and writes nothing.
    pub async fn execute_new<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>>
    where
        A: Aggregate,
    {
        let aggregate = A::default();
        let events = aggregate
            .handle(command, services)
            .await
            .map_err(ExecuteError::Domain)?;
        Ok(self
            .append_handled(aggregate_id, aggregate, 0, events, context)
            .await?)
    }

    /// Handles `command` on the aggregate and appends its events atomically.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        context: &CommandContext,
    ) -> Result<Executed<A>, ExecuteError<A::Error>>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        let mut attempt = 1;
        loop {
            let (aggregate, version) = self.load::<A>(aggregate_id).await?;
            let events = aggregate
                .handle(command.clone(), services)
                .await
                .map_err(ExecuteError::Domain)?;
            match self
                .append_handled(aggregate_id, aggregate, version, events, context)
                .await
            {
                Err(conflict) if conflict.is_conflict() && attempt < ATTEMPTS => attempt += 1,
                outcome => return Ok(outcome?),
            }
        }
    }

    /// Appends the events a command produced on an aggregate loaded at `version`.
    async fn append_handled<A: Aggregate>(
        &self,
        aggregate_id: &str,
        mut aggregate: A,
        version: u64,
        events: Vec<A::Event>,
        context: &CommandContext,
    ) -> Result<Executed<A>, StoreError> {
        if events.is_empty() {
            return Ok(Executed {
                aggregate,
                events,
                version,
                appended: None,
            });
        }
        let request = AppendRequest {
            stream: StreamId::new(A::aggregate_type(), aggregate_id),
            expected_version: version,
            events: events
                .iter()
                .map(|event| encode_event(event, context.data_subject.clone()))
                .collect::<Result<_, _>>()?,
            metadata: context.metadata.clone(),
        };
        let appended = self.append(request).await?;
        for event in &events {
            aggregate.apply(event.clone());
        }
        Ok(Executed {
            aggregate,
            events,
            version: appended.version,
            appended: Some(appended),
        })
    }
}

/// Events are stored as their bare payload: the event type lives in its own column, so the
/// enum's `{"Variant": {...}}` wrapper is taken off on the way in and put back on the way out.
pub fn encode_event<E: DomainEvent>(
    event: &E,
    data_subject: Option<String>,
) -> Result<NewEvent, StoreError> {
    let event_type = event.event_type();
    let schema_version = event.event_version();
    let invalid = |reason: String| StoreError::Corrupt {
        position: 0,
        reason: format!("cannot encode {event_type}: {reason}"),
    };
    let schema_version = schema_version
        .parse()
        .map_err(|_| invalid(format!("schema version {schema_version:?} is not a number")))?;
    let payload = match serde_json::to_value(event).map_err(|e| invalid(e.to_string()))? {
        Value::Object(mut wrapper) if wrapper.len() == 1 && wrapper.contains_key(&event_type) => {
            wrapper.remove(&event_type).unwrap_or_default()
        }
        other => {
            return Err(invalid(format!(
                "expected {{\"{event_type}\": ...}}, got {other}"
            )))
        }
    };
    Ok(NewEvent {
        event_type,
        schema_version,
        payload,
        data_subject,
    })
}

pub fn decode_event<E: DomainEvent>(
    event_type: &str,
    payload: Value,
    position: i64,
) -> Result<E, StoreError> {
    serde_json::from_value(json!({ event_type: payload })).map_err(|e| StoreError::Corrupt {
        position,
        reason: format!("{event_type} does not decode: {e}"),
    })
}
