//! The hash chains: per stream, `hash = SHA-256(prev_hash ‖ canonical bytes of the event)`, and
//! across the global log, checkpoints keep `running = SHA-256(running ‖ hash)` over positions.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::model::{format_timestamp, RecordedEvent};

/// JSON with object keys sorted and no white space, written here rather than relying on
/// serde_json's map order, which a feature flag elsewhere in the build could change.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Everything stored about an event except its own hash fields, in canonical form.
pub fn canonical_event_bytes(event: &RecordedEvent) -> Vec<u8> {
    canonical_json(&envelope(event)).into_bytes()
}

/// The envelope as JSON, without `prevHash` and `hash`: what the hash covers, and what exports
/// show beside the hashes.
pub(crate) fn envelope(event: &RecordedEvent) -> Value {
    json!({
        "position": event.position,
        "eventId": event.event_id.to_string(),
        "aggregateType": event.aggregate_type,
        "aggregateId": event.aggregate_id,
        "sequence": event.sequence,
        "eventType": event.event_type,
        "schemaVersion": event.schema_version,
        "payload": event.payload,
        "metadata": event.metadata,
        "dataSubject": event.data_subject,
        "recordedAt": format_timestamp(event.recorded_at),
    })
}

/// The hash an event must carry, given the hash of the event before it in its stream.
pub fn event_hash(prev_hash: Option<&str>, event: &RecordedEvent) -> String {
    let mut hasher = Sha256::new();
    if let Some(prev) = prev_hash {
        hasher.update(decode_or_raw(prev));
    }
    hasher.update(canonical_event_bytes(event));
    hex::encode(hasher.finalize())
}

/// One step of a checkpoint's running hash over the global log.
pub fn running_hash(previous: Option<&str>, event_hash: &str) -> String {
    let mut hasher = Sha256::new();
    if let Some(prev) = previous {
        hasher.update(decode_or_raw(prev));
    }
    hasher.update(decode_or_raw(event_hash));
    hex::encode(hasher.finalize())
}

/// A stored hash is hex; a forged non-hex value still has to hash to something, and never to
/// what the genuine value would.
fn decode_or_raw(hash: &str) -> Vec<u8> {
    hex::decode(hash).unwrap_or_else(|_| hash.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": 1, "a": {"d": [true, null], "c": "x\"y"}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":"x\"y","d":[true,null]},"b":1}"#
        );
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_json_is_valid_json_that_round_trips(value in arbitrary_json()) {
            let text = canonical_json(&value);
            let parsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&parsed, &value);
            prop_assert_eq!(canonical_json(&parsed), text);
        }

        #[test]
        fn running_hash_depends_on_every_step(a in "[0-9a-f]{64}", b in "[0-9a-f]{64}") {
            prop_assume!(a != b);
            prop_assert_ne!(running_hash(None, &a), running_hash(None, &b));
            prop_assert_ne!(running_hash(Some(&a), &b), running_hash(Some(&b), &a));
        }
    }
}
