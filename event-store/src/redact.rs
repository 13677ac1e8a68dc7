//! Secret payload fields (the domain's `secret_fields`: password hashes). The store keeps them,
//! because the aggregates need them, and the ledger hashes them as stored; every view of the
//! history given out (GraphQL `events` and `eventAppended`, the export, the relay's messages)
//! shows `REDACTED` in their place, through `EventStore::redact_secrets`.

use serde_json::Value;

/// What a secret field reads as outside the store: `domain::REDACTED`'s text.
pub const REDACTED: &str = "[redacted]";

/// Replaces the value of each of `fields` that the object `payload` holds with `REDACTED`.
/// Every other field, and a payload that is not an object, stays as it is; no field is added,
/// and `null` stays null (it hides nothing). Redacting twice changes nothing more.
pub fn redact(payload: &mut Value, fields: &[&str]) {
    let Value::Object(object) = payload else {
        return;
    };
    for field in fields {
        if let Some(value) = object.get_mut(*field) {
            if !value.is_null() {
                *value = Value::String(REDACTED.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_password_hash_reads_as_the_marker_and_the_rest_is_untouched() {
        let mut payload = json!({
            "user_id": "u1",
            "username": "alice",
            "email": {"$pii": "v1:abc"},
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            "roles": ["user"],
        });
        redact(&mut payload, &["password_hash"]);
        assert_eq!(
            payload,
            json!({
                "user_id": "u1",
                "username": "alice",
                "email": {"$pii": "v1:abc"},
                "password_hash": REDACTED,
                "roles": ["user"],
            })
        );
    }

    #[test]
    fn absent_and_null_fields_and_other_shapes_are_left_alone() {
        let mut payload = json!({"a": null, "b": 1});
        redact(&mut payload, &["a", "missing"]);
        assert_eq!(payload, json!({"a": null, "b": 1}));
        for mut other in [
            json!("password_hash"),
            json!(["password_hash"]),
            json!(null),
        ] {
            let before = other.clone();
            redact(&mut other, &["password_hash"]);
            assert_eq!(other, before);
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,16}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-e_]{1,3}", inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    fn arbitrary_object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        prop::collection::btree_map("[a-e_]{1,3}", arbitrary_json(), 0..8)
            .prop_map(|fields| fields.into_iter().collect())
    }

    proptest! {
        #[test]
        fn redaction_touches_only_the_secret_fields_and_is_idempotent(
            object in arbitrary_object(),
            secrets in prop::collection::vec("[a-e_]{1,3}", 0..4),
        ) {
            let fields: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let mut payload = Value::Object(object.clone());
            redact(&mut payload, &fields);
            let redacted = payload.as_object().unwrap().clone();
            prop_assert_eq!(
                redacted.keys().collect::<Vec<_>>(),
                object.keys().collect::<Vec<_>>(),
                "no field added or removed"
            );
            for (name, before) in &object {
                let after = &redacted[name];
                if fields.contains(&name.as_str()) && !before.is_null() {
                    prop_assert_eq!(after, &json!(REDACTED));
                } else {
                    prop_assert_eq!(after, before);
                }
            }
            let mut again = payload.clone();
            redact(&mut again, &fields);
            prop_assert_eq!(again, payload);
        }

        #[test]
        fn a_payload_that_is_not_an_object_is_never_changed(
            value in arbitrary_json().prop_filter("not an object", |v| !v.is_object()),
            secrets in prop::collection::vec("[a-e_]{1,3}", 0..4),
        ) {
            let fields: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let mut redacted = value.clone();
            redact(&mut redacted, &fields);
            prop_assert_eq!(redacted, value);
        }
    }
}
