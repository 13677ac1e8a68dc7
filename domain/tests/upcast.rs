use domain::{current_version, upcast, MovieEvent, UpcastError};
use serde_json::{json, Value};

const EVENT_TYPES: [&str; 12] = [
    "UserRegistered",
    "PasswordLoginSucceeded",
    "LoginFailed",
    "PasskeyRegistered",
    "PasskeyLoginSucceeded",
    "AccountLocked",
    "AccountUnlocked",
    "RoleGranted",
    "MovieAdded",
    "MovieDetailsUpdated",
    "PosterAttached",
    "MovieRemoved",
];

fn flask_movie_added(genre: Value) -> Value {
    json!({
        "movie_id": "00000000-0000-0000-0000-000000001111",
        "title": "Heat",
        "year": 1995,
        "director": "Michael Mann",
        "genre": genre,
        "description": "",
        "added_by": "00000000-0000-0000-0000-0000000a11ce",
        "at": "2019-05-01T08:30:00Z",
    })
}

fn genres_after_upcast(genre: Value) -> Vec<String> {
    let (version, payload) = upcast("MovieAdded", 1, flask_movie_added(genre)).unwrap();
    assert_eq!(version, 2);
    assert!(payload.get("genre").is_none());
    let MovieEvent::MovieAdded(added) = MovieEvent::from_payload("MovieAdded", payload).unwrap()
    else {
        panic!("expected MovieAdded");
    };
    added
        .genres
        .as_slice()
        .iter()
        .map(|genre| genre.as_str().to_owned())
        .collect()
}

#[test]
fn every_contract_event_type_has_a_current_version() {
    for event_type in EVENT_TYPES {
        let expected = if event_type == "MovieAdded" { 2 } else { 1 };
        assert_eq!(current_version(event_type), Some(expected), "{event_type}");
    }
    assert_eq!(current_version("MovieRenamed"), None);
}

#[test]
fn current_payloads_pass_through_unchanged() {
    for event_type in EVENT_TYPES {
        let version = current_version(event_type).unwrap();
        let payload = json!({"anything": [1, 2, 3]});
        assert_eq!(
            upcast(event_type, version, payload.clone()),
            Ok((version, payload))
        );
    }
}

#[test]
fn flask_era_movie_added_gets_a_genre_list() {
    assert_eq!(genres_after_upcast(json!("Drama")), ["Drama"]);
    assert_eq!(genres_after_upcast(json!(" Film noir ")), ["Film noir"]);
}

#[test]
fn flask_era_movie_added_without_a_genre_gets_an_empty_list() {
    assert!(genres_after_upcast(json!("")).is_empty());
    assert!(genres_after_upcast(json!("   ")).is_empty());
    assert!(genres_after_upcast(Value::Null).is_empty());

    let mut missing = flask_movie_added(Value::Null);
    missing.as_object_mut().unwrap().remove("genre");
    let (_, payload) = upcast("MovieAdded", 1, missing).unwrap();
    assert_eq!(payload["genres"], json!([]));
}

#[test]
fn malformed_flask_payloads_are_reported() {
    assert_eq!(
        upcast("MovieAdded", 1, flask_movie_added(json!(["Drama"]))),
        Err(UpcastError::MalformedPayload {
            event_type: "MovieAdded".to_owned(),
            version: 1,
            reason: "\"genre\" must be a string, found [\"Drama\"]".to_owned(),
        })
    );
    let error = upcast("MovieAdded", 1, json!("Heat")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "MovieAdded schema version 1 payload is malformed: expected a JSON object"
    );
}

#[test]
fn future_versions_are_refused() {
    assert_eq!(
        upcast("MovieAdded", 3, json!({})),
        Err(UpcastError::FutureVersion {
            event_type: "MovieAdded".to_owned(),
            version: 3,
            current: 2,
        })
    );
    let error = upcast("LoginFailed", 2, json!({})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "LoginFailed schema version 2 is newer than this build understands (newest is 1)"
    );
}

#[test]
fn versions_without_an_upcaster_are_refused() {
    assert_eq!(
        upcast("MovieAdded", 0, json!({})),
        Err(UpcastError::NoUpcaster {
            event_type: "MovieAdded".to_owned(),
            version: 0,
        })
    );
    assert!(upcast("RoleGranted", 0, json!({})).is_err());
}

#[test]
fn unknown_event_types_are_refused() {
    assert_eq!(
        upcast("MovieRenamed", 1, json!({})),
        Err(UpcastError::UnknownEventType {
            event_type: "MovieRenamed".to_owned()
        })
    );
}
