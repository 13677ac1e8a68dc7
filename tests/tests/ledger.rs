//! `marquee verify` against a database an attacker has edited directly: each kind of tampering is
//! found, with exit 1 and the first broken position named. Runs on SQLite and MariaDB.

use event_store::{canonical_json, event_hash, EventStore};
use marquee_tests::fixtures::{append, movie_added, movie_retitled, movie_stream, new_movie_id};
use marquee_tests::{on_both_backends, TestDatabase};

on_both_backends!(
    an_untouched_ledger_verifies,
    an_altered_payload_is_found,
    a_deleted_event_is_found,
    a_reordered_event_is_found,
    a_forged_hash_is_found,
    a_forged_stream_tail_is_caught_by_its_checkpoint,
    a_deleted_last_event_is_found,
);

/// Three movies with three events each, interleaved so positions 1..=9 run A1 B1 C1 A2 B2 C2 A3
/// B3 C3; a checkpoint seals 1..=9; then A4 and B4 land at 10 and 11.
async fn ledger(db: &TestDatabase) -> EventStore {
    let store = db.store().await;
    let ids = [new_movie_id(), new_movie_id(), new_movie_id()];
    for round in 0..3u64 {
        for id in ids {
            let event = if round == 0 {
                movie_added(id, "Metropolis")
            } else {
                movie_retitled(&format!("Metropolis, cut {round}"))
            };
            store
                .append(append(&movie_stream(id), round, vec![event]))
                .await
                .unwrap();
        }
    }
    store
        .seal_checkpoint()
        .await
        .unwrap()
        .expect("1..=9 sealed");
    for id in &ids[..2] {
        store
            .append(append(
                &movie_stream(*id),
                3,
                vec![movie_retitled("Metropolis, final")],
            ))
            .await
            .unwrap();
    }
    store
}

/// Runs `marquee verify` and returns its exit code and what it printed.
fn verify(db: &TestDatabase) -> (i32, String) {
    let output = db.marquee(&["verify"]);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (
        output.status.code().expect("exit code"),
        format!("{stdout}{stderr}"),
    )
}

fn assert_broken_at(db: &TestDatabase, position: i64, kind: &str) {
    let (code, output) = verify(db);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(&format!("first broken position {position} ")),
        "expected position {position}:\n{output}"
    );
    assert!(output.contains(kind), "expected {kind}:\n{output}");
}

async fn an_untouched_ledger_verifies(db: TestDatabase) {
    ledger(&db).await;
    let (code, output) = verify(&db);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(
            "ledger intact: 11 events checked up to position 11, last checkpoint at position 9"
        ),
        "{output}"
    );
}

async fn an_altered_payload_is_found(db: TestDatabase) {
    ledger(&db).await;
    db.drop_append_only_triggers().await;
    db.execute(
        r#"UPDATE events SET payload = '{"by":"x","changes":{"title":"Tampered"},"at":"2020-01-01T00:00:00Z"}' WHERE position = 5"#,
    )
    .await;
    assert_broken_at(&db, 5, "hash_mismatch");
}

async fn a_deleted_event_is_found(db: TestDatabase) {
    ledger(&db).await;
    db.drop_append_only_triggers().await;
    db.execute("DELETE FROM events WHERE position = 4").await;
    assert_broken_at(&db, 4, "missing_event");
}

async fn a_reordered_event_is_found(db: TestDatabase) {
    ledger(&db).await;
    db.drop_append_only_triggers().await;
    // Swap C1 and C2: the stream's second event now comes first.
    db.execute("UPDATE events SET position = -3 WHERE position = 3")
        .await;
    db.execute("UPDATE events SET position = 3 WHERE position = 6")
        .await;
    db.execute("UPDATE events SET position = 6 WHERE position = -3")
        .await;
    assert_broken_at(&db, 3, "sequence_broken");
}

/// The attacker rewrites B2 and gives it a hash that matches the new content; B3 still links to
/// the genuine hash, so the chain names B2.
async fn a_forged_hash_is_found(db: TestDatabase) {
    let store = ledger(&db).await;
    forge(&db, &store, 5).await;
    assert_broken_at(&db, 5, "chain_broken");
}

/// C3 is the last event of its stream, so no later link covers it; the checkpoint over 1..=9 does.
async fn a_forged_stream_tail_is_caught_by_its_checkpoint(db: TestDatabase) {
    let store = ledger(&db).await;
    forge(&db, &store, 9).await;
    let (code, output) = verify(&db);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("checkpoint_mismatch"), "{output}");
    assert!(output.contains("checkpoint 1..=9"), "{output}");
}

/// Deleting the newest event leaves no hole in the positions, but the head still counts it.
async fn a_deleted_last_event_is_found(db: TestDatabase) {
    ledger(&db).await;
    db.drop_append_only_triggers().await;
    db.execute("DELETE FROM events WHERE position = 11").await;
    assert_broken_at(&db, 11, "missing_event");
}

/// Rewrites the title in the event at `position` and stores a hash that fits the new content.
async fn forge(db: &TestDatabase, store: &EventStore, position: i64) {
    let mut event = store.read_raw(position - 1, 1).await.unwrap().remove(0);
    event.payload["changes"]["title"] = "Forged".into();
    let forged_hash = event_hash(event.prev_hash.as_deref(), &event);
    db.drop_append_only_triggers().await;
    db.execute(&format!(
        "UPDATE events SET payload = '{}', hash = '{forged_hash}' WHERE position = {position}",
        canonical_json(&event.payload)
    ))
    .await;
}
