//! Upcasting: stored payloads keep the schema version they were written with and are brought up
//! to the current version on read, one version step at a time.

use serde_json::Value;

use crate::movie::MovieEvent;
use crate::user::UserEvent;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("unknown event type {event_type:?}")]
    UnknownEventType { event_type: String },
    #[error(
        "{event_type} schema version {version} is newer than this build understands \
         (newest is {current})"
    )]
    FutureVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("{event_type} schema version {version} cannot be upcast")]
    NoUpcaster { event_type: String, version: u32 },
    #[error("{event_type} schema version {version} payload is malformed: {reason}")]
    MalformedPayload {
        event_type: String,
        version: u32,
        reason: String,
    },
}

/// The schema version new events of `event_type` are written with, or `None` if the type is
/// not one of ours.
pub fn current_version(event_type: &str) -> Option<u32> {
    MovieEvent::current_version(event_type).or_else(|| UserEvent::current_version(event_type))
}

/// Brings a stored payload up to the current schema version of its event type, returning that
/// version and the payload to deserialise. Current payloads pass through unchanged.
pub fn upcast(
    event_type: &str,
    schema_version: u32,
    payload: Value,
) -> Result<(u32, Value), UpcastError> {
    let current = current_version(event_type).ok_or_else(|| UpcastError::UnknownEventType {
        event_type: event_type.to_owned(),
    })?;
    if schema_version > current {
        return Err(UpcastError::FutureVersion {
            event_type: event_type.to_owned(),
            version: schema_version,
            current,
        });
    }
    let mut version = schema_version;
    let mut payload = payload;
    while version < current {
        let step = match (event_type, version) {
            ("MovieAdded", 1) => movie_added_v1_to_v2,
            _ => {
                return Err(UpcastError::NoUpcaster {
                    event_type: event_type.to_owned(),
                    version,
                })
            }
        };
        payload = step(payload).map_err(|reason| UpcastError::MalformedPayload {
            event_type: event_type.to_owned(),
            version,
            reason,
        })?;
        version += 1;
    }
    Ok((version, payload))
}

/// The Flask-era `MovieAdded` had one free-text `genre`, possibly empty; v2 has a `genres` list.
fn movie_added_v1_to_v2(payload: Value) -> Result<Value, String> {
    let Value::Object(mut fields) = payload else {
        return Err("expected a JSON object".to_owned());
    };
    let genres = match fields.remove("genre") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(genre)) if genre.trim().is_empty() => Vec::new(),
        Some(Value::String(genre)) => vec![Value::String(genre)],
        Some(other) => return Err(format!("\"genre\" must be a string, found {other}")),
    };
    fields.insert("genres".to_owned(), Value::Array(genres));
    Ok(Value::Object(fields))
}
