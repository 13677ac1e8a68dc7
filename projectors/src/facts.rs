//! Stored events read back as the domain's own event types.

use domain::{MovieEvent, UserEvent};
use event_store::RecordedEvent;

use crate::error::{ProjectorError, Result};

/// What a projector learns from one stored event.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    Movie(MovieEvent),
    User(UserEvent),
}

/// Decodes an (already upcast) stored event into the domain event it records.
pub fn fact(event: &RecordedEvent) -> Result<Fact> {
    let payload = event.payload.clone();
    let decoded = match event.aggregate_type.as_str() {
        "Movie" => MovieEvent::from_payload(&event.event_type, payload).map(Fact::Movie),
        "User" => UserEvent::from_payload(&event.event_type, payload).map(Fact::User),
        other => {
            return Err(undecodable(
                event,
                format!("unknown aggregate type {other:?}"),
            ));
        }
    };
    decoded.map_err(|error| undecodable(event, error.to_string()))
}

fn undecodable(event: &RecordedEvent, reason: String) -> ProjectorError {
    ProjectorError::Undecodable {
        position: event.position,
        event_type: event.event_type.clone(),
        reason,
    }
}
