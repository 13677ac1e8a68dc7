//! Stored events are read back from a database an attacker or a bug may have written to: any
//! payload under any type and version decodes to an event or to an error, never a panic, and
//! what decodes is what its own payload encodes again.

use cqrs_es::DomainEvent;
use domain::{upcast, MovieEvent, UserEvent};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const EVENT_TYPES: &[&str] = &[
    "UserRegistered",
    "PasswordLoginSucceeded",
    "LoginFailed",
    "PasskeyRegistered",
    "PasskeyLoginSucceeded",
    "AccountLocked",
    "AccountUnlocked",
    "RoleGranted",
    "PersonalDataErased",
    "MovieAdded",
    "MovieDetailsUpdated",
    "PosterAttached",
    "MovieRemoved",
    "NoSuchEvent",
];

/// Field names the real payloads use, so generated objects come close to decoding.
const FIELD_NAMES: &[&str] = &[
    "id",
    "username",
    "email",
    "password_hash",
    "at",
    "ip",
    "roles",
    "role",
    "title",
    "year",
    "director",
    "genre",
    "genres",
    "description",
    "added_by",
    "poster",
    "changes",
    "until",
    "credential",
    "reason",
    "by",
    "erased_by",
    "$pii",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        Just(json!("2026-12-04T01:02:03Z")),
        Just(json!("[erased]")),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELD_NAMES), inner), 0..8).prop_map(
                |fields| {
                    Value::Object(
                        fields
                            .into_iter()
                            .map(|(name, value)| (name.to_owned(), value))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

proptest! {
    #[test]
    fn any_stored_payload_decodes_or_is_refused(
        event_type in prop::sample::select(EVENT_TYPES),
        version in 0u32..5,
        payload in json_value(),
    ) {
        let Ok((current, payload)) = upcast(event_type, version, payload) else {
            return Ok(());
        };
        prop_assert_eq!(Some(current), domain::current_version(event_type));
        if let Ok(event) = MovieEvent::from_payload(event_type, payload.clone()) {
            prop_assert_eq!(event.event_type(), event_type);
            prop_assert_eq!(MovieEvent::from_payload(event_type, event.payload()).unwrap(), event);
        }
        if let Ok(event) = UserEvent::from_payload(event_type, payload) {
            prop_assert_eq!(event.event_type(), event_type);
            prop_assert_eq!(UserEvent::from_payload(event_type, event.payload()).unwrap(), event);
        }
    }
}
