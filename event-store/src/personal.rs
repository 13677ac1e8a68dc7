//! Crypto-shredding: personal fields are stored sealed with a key per person (the data subject),
//! kept in `personal_data_keys` outside the append-only log. Destroying the key erases the fields
//! wherever the log is copied, while the stored bytes, and so the hash chains, stay as they were.
//!
//! A sealed field is `{"$pii": "v1:<base64 of nonce ‖ ciphertext ‖ tag>"}`: AES-256-GCM with a
//! random 96-bit nonce over the field's canonical JSON, authenticated with the subject and the
//! field's name so that a ciphertext moved to another person or field fails to open.

use std::collections::{HashMap, HashSet};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{Map, Value};

use crate::db::{Backend, Database};
use crate::error::{Result, StoreError};
use crate::hash::canonical_json;
use crate::model::{format_timestamp, now_micros, RecordedEvent};

/// What a personal field reads as once its subject's key is destroyed.
pub const ERASED: &str = "[erased]";

const ENVELOPE: &str = "$pii";
const VERSION: &str = "v1:";
const TAG_LEN: usize = 16;
/// The metadata fields that hold personal data; their subject is the actor.
pub(crate) const METADATA_FIELDS: [&str; 2] = ["clientIp", "userAgent"];
/// The metadata field naming the actor's data subject.
const ACTOR_ID: &str = "actorId";

/// A 256-bit data key. Never printed: `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalKey([u8; 32]);

impl std::fmt::Debug for PersonalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonalKey(..)")
    }
}

impl PersonalKey {
    pub fn generate() -> Result<Self> {
        let mut bytes = [0; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::Crypto("no randomness"))?;
        Ok(Self(bytes))
    }

    fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        bytes.as_slice().try_into().ok().map(Self)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte key is an AES-256 key"),
        )
    }
}

/// A subject's key as `personal_data_keys` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    Live(PersonalKey),
    /// Destroyed: the subject's sealed fields read as erased, new ones are not kept.
    Erased,
}

/// What a sealed field failed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a v1 envelope")]
    Malformed,
    #[error("does not authenticate (tampered, or sealed for another subject or field)")]
    Forged,
}

fn aad(subject: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + subject.len() + field.len());
    aad.extend_from_slice(b"marquee-pii-v1\0");
    aad.extend_from_slice(subject.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// Seals `value` (any JSON) as `field` of `subject`.
pub fn seal(key: &PersonalKey, subject: &str, field: &str, value: &Value) -> Result<Value> {
    let mut nonce = [0; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| StoreError::Crypto("no randomness"))?;
    let mut sealed = canonical_json(value).into_bytes();
    key.aead()
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(subject, field)),
            &mut sealed,
        )
        .map_err(|_| StoreError::Crypto("sealing failed"))?;
    let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    let mut envelope = Map::with_capacity(1);
    envelope.insert(
        ENVELOPE.to_owned(),
        Value::String(format!("{VERSION}{}", BASE64.encode(bytes))),
    );
    Ok(Value::Object(envelope))
}

/// The sealed text if `value` is an envelope.
pub fn sealed_text(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get(ENVELOPE)?.as_str(),
        _ => None,
    }
}

/// Opens what `seal` made with the same key, subject and field.
pub fn open(
    key: &PersonalKey,
    subject: &str,
    field: &str,
    sealed: &str,
) -> Result<Value, OpenError> {
    let bytes = sealed
        .strip_prefix(VERSION)
        .and_then(|text| BASE64.decode(text).ok())
        .filter(|bytes| bytes.len() >= NONCE_LEN + TAG_LEN)
        .ok_or(OpenError::Malformed)?;
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
    let mut in_out = ciphertext.to_vec();
    let plain = key
        .aead()
        .open_in_place(nonce, Aad::from(aad(subject, field)), &mut in_out)
        .map_err(|_| OpenError::Forged)?;
    serde_json::from_slice(plain).map_err(|_| OpenError::Malformed)
}

/// Whose key protects the metadata's personal fields: the actor's, or for requests without a
/// signed-in actor, the event's own subject.
fn metadata_subject<'a>(metadata: &'a Value, data_subject: Option<&'a str>) -> Option<&'a str> {
    metadata
        .get(ACTOR_ID)
        .and_then(Value::as_str)
        .or(data_subject)
}

/// The fields of an event about to be stored that need a key, each with its subject.
pub(crate) struct ToSeal<'a> {
    pub payload_fields: &'a [&'static str],
}

/// Seals the personal fields of one event's payload and metadata with the keys in `keys`,
/// which must hold every subject `subjects_to_seal` named. A field whose subject's key is
/// destroyed is stored as erased.
pub(crate) fn seal_event(
    keys: &HashMap<String, KeyState>,
    to_seal: &ToSeal<'_>,
    data_subject: Option<&str>,
    payload: &mut Value,
    metadata: &mut Value,
) -> Result<()> {
    let seal_field =
        |object: &mut Value, name: &str, prefix: &str, subject: Option<&str>| -> Result<()> {
            let Some(value) = object.get_mut(name).filter(|v| !v.is_null()) else {
                return Ok(());
            };
            let subject = subject.ok_or_else(|| StoreError::NoDataSubject {
                field: format!("{prefix}.{name}"),
            })?;
            *value = match keys.get(subject) {
                Some(KeyState::Live(key)) => {
                    seal(key, subject, &format!("{prefix}.{name}"), value)?
                }
                Some(KeyState::Erased) | None => Value::String(ERASED.to_owned()),
            };
            Ok(())
        };
    for name in to_seal.payload_fields {
        seal_field(payload, name, "payload", data_subject)?;
    }
    let subject = metadata_subject(metadata, data_subject).map(str::to_owned);
    for name in METADATA_FIELDS {
        seal_field(metadata, name, "metadata", subject.as_deref())?;
    }
    Ok(())
}

/// Refuses personal fields that name no subject.
pub(crate) fn check_subjects(
    to_seal: &ToSeal<'_>,
    data_subject: Option<&str>,
    payload: &Value,
    metadata: &Value,
) -> Result<()> {
    let present = |object: &Value, name: &str| object.get(name).is_some_and(|v| !v.is_null());
    let orphan = |prefix: &str, name: &str| StoreError::NoDataSubject {
        field: format!("{prefix}.{name}"),
    };
    if data_subject.is_none() {
        if let Some(name) = to_seal.payload_fields.iter().find(|f| present(payload, f)) {
            return Err(orphan("payload", name));
        }
    }
    if metadata_subject(metadata, data_subject).is_none() {
        if let Some(name) = METADATA_FIELDS.iter().find(|f| present(metadata, f)) {
            return Err(orphan("metadata", name));
        }
    }
    Ok(())
}

/// The subjects whose keys sealing needs.
pub(crate) fn subjects_to_seal(
    to_seal: &ToSeal<'_>,
    data_subject: Option<&str>,
    payload: &Value,
    metadata: &Value,
    into: &mut HashSet<String>,
) {
    let present = |object: &Value, name: &str| object.get(name).is_some_and(|v| !v.is_null());
    if to_seal.payload_fields.iter().any(|f| present(payload, f)) {
        into.extend(data_subject.map(str::to_owned));
    }
    if METADATA_FIELDS.iter().any(|f| present(metadata, f)) {
        into.extend(metadata_subject(metadata, data_subject).map(str::to_owned));
    }
}

/// Which parts of read events to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Payload and metadata: what readers and exports see.
    All,
    /// The payload only: loading an aggregate needs no metadata.
    Payload,
}

/// Opens the sealed fields of `events` in place, reading every key they need in one query;
/// fields whose key is destroyed become `ERASED`.
pub(crate) async fn open_events(
    db: &Database,
    events: &mut [RecordedEvent],
    parts: Open,
) -> Result<()> {
    let mut subjects = HashSet::new();
    for event in events.iter() {
        let data_subject = event.data_subject.as_deref();
        if has_sealed(&event.payload) {
            subjects.extend(data_subject.map(str::to_owned));
        }
        if parts == Open::All && has_sealed(&event.metadata) {
            subjects.extend(metadata_subject(&event.metadata, data_subject).map(str::to_owned));
        }
    }
    if subjects.is_empty() {
        return Ok(());
    }
    let subjects: Vec<String> = subjects.into_iter().collect();
    let keys = load_keys(db.pool(), &subjects).await?;
    for event in events.iter_mut() {
        let data_subject = event.data_subject.clone();
        open_object(
            &keys,
            event.position,
            "payload",
            data_subject.as_deref(),
            &mut event.payload,
        )?;
        if parts == Open::All {
            let subject =
                metadata_subject(&event.metadata, data_subject.as_deref()).map(str::to_owned);
            open_object(
                &keys,
                event.position,
                "metadata",
                subject.as_deref(),
                &mut event.metadata,
            )?;
        }
    }
    Ok(())
}

fn has_sealed(object: &Value) -> bool {
    object
        .as_object()
        .is_some_and(|map| map.values().any(|v| sealed_text(v).is_some()))
}

fn open_object(
    keys: &HashMap<String, KeyState>,
    position: i64,
    prefix: &str,
    subject: Option<&str>,
    object: &mut Value,
) -> Result<()> {
    let Some(map) = object.as_object_mut() else {
        return Ok(());
    };
    for (name, value) in map.iter_mut() {
        let Some(sealed) = sealed_text(value) else {
            continue;
        };
        let field = format!("{prefix}.{name}");
        let opened = match subject.and_then(|s| keys.get(s).map(|k| (s, k))) {
            Some((subject, KeyState::Live(key))) => {
                open(key, subject, &field, sealed).map_err(|error| StoreError::Corrupt {
                    position,
                    reason: format!("personal field {field}: {error}"),
                })?
            }
            // A destroyed key, or none at all: nobody can read this field any more.
            _ => Value::String(ERASED.to_owned()),
        };
        *value = opened;
    }
    Ok(())
}

/// The keys of `subjects` that `personal_data_keys` holds, live or destroyed.
pub(crate) async fn load_keys<'e, E>(
    executor: E,
    subjects: &[String],
) -> Result<HashMap<String, KeyState>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut keys = HashMap::with_capacity(subjects.len());
    if subjects.is_empty() {
        return Ok(keys);
    }
    let marks = vec!["?"; subjects.len()].join(", ");
    let sql = format!("SELECT subject, secret FROM personal_data_keys WHERE subject IN ({marks})");
    let mut statement = sqlx::query(&sql);
    for subject in subjects {
        statement = statement.bind(subject);
    }
    for row in statement.fetch_all(executor).await? {
        let subject = crate::db::text_column(&row, 0)?.unwrap_or_default();
        let state = match crate::db::text_column(&row, 1)? {
            None => KeyState::Erased,
            Some(secret) => KeyState::Live(PersonalKey::from_hex(&secret).ok_or_else(|| {
                StoreError::Crypto("a stored personal data key is not 256 bits of hex")
            })?),
        };
        keys.insert(subject, state);
    }
    Ok(keys)
}

/// Reads the keys of `subjects` inside the write transaction and creates those that do not
/// exist yet. Runs under the head lock, so no other writer creates or destroys one meanwhile.
pub(crate) async fn keys_for_writing(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    subjects: HashSet<String>,
) -> Result<HashMap<String, KeyState>> {
    let subjects: Vec<String> = subjects.into_iter().collect();
    let mut keys = load_keys(&mut **tx, &subjects).await?;
    let now = format_timestamp(now_micros());
    for subject in subjects {
        if keys.contains_key(&subject) {
            continue;
        }
        let key = PersonalKey::generate()?;
        sqlx::query(
            "INSERT INTO personal_data_keys (subject, secret, created_at) VALUES (?, ?, ?)",
        )
        .bind(&subject)
        .bind(hex::encode(key.0))
        .bind(&now)
        .execute(&mut **tx)
        .await?;
        keys.insert(subject, KeyState::Live(key));
    }
    Ok(keys)
}

/// Destroys `subject`'s key for good; the row stays as a tombstone so that no key is ever made
/// for the subject again.
pub(crate) async fn destroy_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    subject: &str,
) -> Result<()> {
    let now = format_timestamp(now_micros());
    let upsert = match backend {
        Backend::Sqlite => {
            "INSERT INTO personal_data_keys (subject, secret, created_at, erased_at) \
             VALUES (?, NULL, ?, ?) \
             ON CONFLICT (subject) DO UPDATE SET secret = NULL, erased_at = excluded.erased_at"
        }
        Backend::MySql => {
            "INSERT INTO personal_data_keys (subject, secret, created_at, erased_at) \
             VALUES (?, NULL, ?, ?) \
             ON DUPLICATE KEY UPDATE secret = NULL, erased_at = VALUES(erased_at)"
        }
    };
    sqlx::query(upsert)
        .bind(subject)
        .bind(&now)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key() -> PersonalKey {
        PersonalKey::generate().unwrap()
    }

    #[test]
    fn sealed_fields_round_trip_and_hide_the_plaintext() {
        let key = key();
        let value = json!("alice@example.com");
        let sealed = seal(&key, "user-1", "payload.email", &value).unwrap();
        let text = sealed_text(&sealed).unwrap();
        assert!(text.starts_with("v1:"));
        assert!(!sealed.to_string().contains("alice"));
        assert_eq!(open(&key, "user-1", "payload.email", text), Ok(value));
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = key();
        let a = seal(&key, "s", "payload.ip", &json!("192.0.2.1")).unwrap();
        let b = seal(&key, "s", "payload.ip", &json!("192.0.2.1")).unwrap();
        assert_ne!(a, b, "a fresh nonce every time");
    }

    #[test]
    fn the_wrong_key_subject_or_field_does_not_open() {
        let key = key();
        let sealed = seal(&key, "user-1", "payload.email", &json!("a@b.c")).unwrap();
        let text = sealed_text(&sealed).unwrap();
        assert_eq!(
            open(
                &PersonalKey::generate().unwrap(),
                "user-1",
                "payload.email",
                text
            ),
            Err(OpenError::Forged)
        );
        assert_eq!(
            open(&key, "user-2", "payload.email", text),
            Err(OpenError::Forged)
        );
        assert_eq!(
            open(&key, "user-1", "metadata.clientIp", text),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn tampered_or_malformed_envelopes_do_not_open() {
        let key = key();
        let sealed = seal(&key, "s", "payload.ip", &json!("192.0.2.1")).unwrap();
        let text = sealed_text(&sealed).unwrap();
        let mut bytes = BASE64.decode(&text[3..]).unwrap();
        for index in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[index] ^= 1;
            let forged = format!("v1:{}", BASE64.encode(&bytes));
            assert_eq!(
                open(&key, "s", "payload.ip", &forged),
                Err(OpenError::Forged)
            );
            bytes[index] ^= 1;
        }
        let truncated = format!("v1:{}", BASE64.encode(&bytes[..NONCE_LEN + TAG_LEN - 1]));
        for bad in ["v2:AAAA", "v1:not base64!", truncated.as_str()] {
            assert_eq!(
                open(&key, "s", "payload.ip", bad),
                Err(OpenError::Malformed)
            );
        }
    }

    #[test]
    fn only_single_member_envelopes_count_as_sealed() {
        assert_eq!(sealed_text(&json!({"$pii": "v1:x"})), Some("v1:x"));
        assert_eq!(sealed_text(&json!({"$pii": "v1:x", "other": 1})), None);
        assert_eq!(sealed_text(&json!("v1:x")), None);
    }

    #[test]
    fn keys_are_never_printed() {
        assert_eq!(format!("{:?}", key()), "PersonalKey(..)");
    }

    #[test]
    fn events_are_sealed_with_the_subjects_keys_and_erased_without_them() {
        let alice = key();
        let keys = HashMap::from([
            ("alice".to_owned(), KeyState::Live(alice.clone())),
            ("bob".to_owned(), KeyState::Erased),
        ]);
        let to_seal = ToSeal {
            payload_fields: &["email", "ip"],
        };
        let mut payload = json!({"email": "a@b.c", "ip": null, "username": "alice"});
        let mut metadata = json!({"actorId": "bob", "clientIp": "192.0.2.1", "correlationId": "c"});
        seal_event(&keys, &to_seal, Some("alice"), &mut payload, &mut metadata).unwrap();
        assert_eq!(payload["ip"], Value::Null, "nothing to seal in a null");
        assert_eq!(payload["username"], json!("alice"));
        let email = sealed_text(&payload["email"]).unwrap();
        assert_eq!(
            open(&alice, "alice", "payload.email", email),
            Ok(json!("a@b.c"))
        );
        assert_eq!(
            metadata["clientIp"],
            json!(ERASED),
            "bob's key is destroyed"
        );
        let mut orphan = json!({"ip": "192.0.2.1"});
        let refused = seal_event(&keys, &to_seal, None, &mut orphan, &mut json!({}));
        assert!(matches!(refused, Err(StoreError::NoDataSubject { .. })));
    }

    proptest! {
        #[test]
        fn any_json_round_trips(
            text in ".{0,64}",
            number in any::<i64>(),
            subject in "[a-z0-9-]{1,36}",
            field in "[a-zA-Z.]{1,20}",
        ) {
            let key = key();
            for value in [json!(text.clone()), json!(number), json!({"nested": [text]})] {
                let sealed = seal(&key, &subject, &field, &value).unwrap();
                let opened = open(&key, &subject, &field, sealed_text(&sealed).unwrap());
                prop_assert_eq!(opened, Ok(value));
            }
        }
    }
}
