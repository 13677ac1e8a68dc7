//! The event store's conformance suite: every test runs against SQLite and against MariaDB.

use std::collections::BTreeSet;
use std::time::Duration;

use domain::{Movie, MovieChanges, MovieCommand, MovieError, Title};
use event_store::{
    event_hash, CommandContext, EventMetadata, EventQuery, ExecuteError, ExportFormat,
    RecordedEvent, StoreError, StreamId,
};
use marquee_tests::fixtures::{
    add_movie, append, movie_added, movie_retitled, movie_stream, new_movie_id, some_user,
};
use marquee_tests::{on_both_backends, TestDatabase};
use serde_json::json;

on_both_backends!(
    appends_and_reads_back_a_stream,
    a_stale_expected_version_conflicts_and_writes_nothing,
    concurrent_writers_never_duplicate_a_sequence,
    one_commands_events_commit_together,
    the_log_refuses_update_and_delete,
    a_tailing_reader_never_skips_or_repeats_an_event,
    old_payload_versions_are_upcast_on_every_read_path,
    commands_run_through_the_domain,
    checkpoints_seal_new_ranges_only,
    queries_filter_by_aggregate_type_and_time,
);

async fn appends_and_reads_back_a_stream(db: TestDatabase) {
    let store = db.store().await;
    let id = new_movie_id();
    let stream = movie_stream(id);
    let request = append(&stream, 0, vec![movie_added(id, "The Matrix")]);
    let first = store.append(request.clone()).await.unwrap();
    let second = store
        .append(append(
            &stream,
            1,
            vec![movie_retitled("The Matrix Reloaded")],
        ))
        .await
        .unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    assert_eq!(first.first_position, 1);
    assert_eq!(second.last_position, 2);

    let events = store.read_stream(&stream, 0).await.unwrap();
    assert_eq!(events, [first.events, second.events].concat());
    let [added, retitled] = &events[..] else {
        panic!("two events")
    };
    assert_eq!((added.sequence, retitled.sequence), (1, 2));
    assert_eq!(added.prev_hash, None);
    assert_eq!(retitled.prev_hash.as_deref(), Some(added.hash.as_str()));
    // The hash covers the stored form, personal fields sealed.
    let stored = store.read_all_stored(0, 10).await.unwrap();
    assert_eq!(added.hash, event_hash(None, &stored[0]));
    assert_eq!(retitled.hash, event_hash(Some(&added.hash), &stored[1]));
    assert_eq!(added.event_type, "MovieAdded");
    assert_eq!(added.schema_version, 2);
    assert_eq!(
        added.metadata["correlationId"],
        json!(request.metadata.correlation_id)
    );
    assert_eq!(added.metadata["actor"], json!("tester"));
    assert_eq!(added.metadata["clientIp"], json!("127.0.0.1"));
    assert_eq!(added.metadata["userAgent"], json!("marquee-tests"));
    assert_eq!(store.head().await.unwrap(), 2);
    assert_eq!(
        store.read_stream(&stream, 1).await.unwrap(),
        vec![retitled.clone()]
    );
}

async fn a_stale_expected_version_conflicts_and_writes_nothing(db: TestDatabase) {
    let store = db.store().await;
    let id = new_movie_id();
    let stream = movie_stream(id);
    store
        .append(append(&stream, 0, vec![movie_added(id, "Heat")]))
        .await
        .unwrap();
    let stale = store
        .append(append(&stream, 0, vec![movie_added(id, "Heat again")]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            StoreError::VersionConflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{stale:?}"
    );
    let ahead = store
        .append(append(&stream, 5, vec![movie_retitled("Heat 2")]))
        .await
        .unwrap_err();
    assert!(ahead.is_conflict());
    assert_eq!(store.read_stream(&stream, 0).await.unwrap().len(), 1);
    assert_eq!(store.head().await.unwrap(), 1);
}

/// Several stores on one database behave like several processes: only the database orders them.
async fn concurrent_writers_never_duplicate_a_sequence(db: TestDatabase) {
    let stores = db.stores(4).await;
    let id = new_movie_id();
    let stream = movie_stream(id);
    let racers = (0..12).map(|i| {
        let store = stores[i % stores.len()].clone();
        let request = append(&stream, 0, vec![movie_added(id, "Alien")]);
        tokio::spawn(async move { store.append(request).await })
    });
    let results = futures::future::join_all(racers).await;
    let winners = results
        .iter()
        .filter(|r| r.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(winners, 1, "exactly one creator wins");

    // Then everyone retries on fresh state until their edit lands.
    let editors = (0..16).map(|i| {
        let store = stores[i % stores.len()].clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            loop {
                let version = store.read_stream(&stream, 0).await.unwrap().len() as u64;
                let request = append(
                    &stream,
                    version,
                    vec![movie_retitled(&format!("Alien {i}"))],
                );
                match store.append(request).await {
                    Ok(appended) => return appended.version,
                    Err(e) if e.is_conflict() => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    });
    let versions: BTreeSet<u64> = futures::future::join_all(editors)
        .await
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(versions, (2..=17).collect());
    let sequences: Vec<i64> = stores[0]
        .read_stream(&stream, 0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(sequences, (1..=17).collect::<Vec<_>>());
}

async fn one_commands_events_commit_together(db: TestDatabase) {
    let store = db.store().await;
    let id = new_movie_id();
    let stream = movie_stream(id);
    let events = vec![
        movie_added(id, "Ran"),
        movie_retitled("Ran (1985)"),
        movie_retitled("Ran, restored"),
    ];
    let appended = store
        .append(append(&stream, 0, events.clone()))
        .await
        .unwrap();
    assert_eq!((appended.first_position, appended.last_position), (1, 3));
    assert_eq!(appended.version, 3);
    let stored = store.read_stream(&stream, 0).await.unwrap();
    assert!(stored.iter().all(|e| e.metadata == stored[0].metadata));

    // A conflicting batch leaves no trace, not even its first event.
    let conflict = store.append(append(&stream, 1, events)).await.unwrap_err();
    assert!(conflict.is_conflict());
    assert_eq!(store.head().await.unwrap(), 3);
    assert_eq!(store.read_stream(&stream, 0).await.unwrap(), stored);
    assert!(matches!(
        store.append(append(&stream, 3, vec![])).await,
        Err(StoreError::EmptyAppend)
    ));
}

async fn the_log_refuses_update_and_delete(db: TestDatabase) {
    let store = db.store().await;
    let id = new_movie_id();
    store
        .append(append(&movie_stream(id), 0, vec![movie_added(id, "Ikiru")]))
        .await
        .unwrap();
    store
        .seal_checkpoint()
        .await
        .unwrap()
        .expect("a checkpoint");
    let pool = store.database().pool();
    for statement in [
        "UPDATE events SET payload = '{}' WHERE position = 1",
        "DELETE FROM events WHERE position = 1",
        "UPDATE ledger_checkpoints SET running_hash = 'x'",
        "DELETE FROM ledger_checkpoints",
    ] {
        let error = sqlx::query(statement).execute(pool).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    assert!(store.verify().await.unwrap().intact);
}

/// Many writers in several "processes" while a reader tails the global log by position: the
/// reader must see every committed event exactly once, in order.
async fn a_tailing_reader_never_skips_or_repeats_an_event(db: TestDatabase) {
    const WRITERS: usize = 24;
    const APPENDS_PER_WRITER: usize = 20;
    let stores = db.stores(6).await;
    let reader_store = db.store().await;
    let total_events = WRITERS * APPENDS_PER_WRITER * 2;

    let reader = tokio::spawn(async move {
        let mut seen: Vec<RecordedEvent> = Vec::new();
        let mut checkpoint = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while seen.len() < total_events {
            assert!(tokio::time::Instant::now() < deadline, "the reader stalled");
            let page = reader_store.read_all(checkpoint, 37).await.unwrap();
            match page.last() {
                Some(last) => checkpoint = last.position,
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
            seen.extend(page);
        }
        seen
    });
    let writers = (0..WRITERS).map(|w| {
        let store = stores[w % stores.len()].clone();
        tokio::spawn(async move {
            for _ in 0..APPENDS_PER_WRITER {
                let id = new_movie_id();
                let events = vec![movie_added(id, "Stalker"), movie_retitled("Stalker (1979)")];
                store
                    .append(append(&movie_stream(id), 0, events))
                    .await
                    .unwrap();
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    let seen = reader.await.unwrap();

    let positions: Vec<i64> = seen.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=total_events as i64).collect::<Vec<_>>());
    let stored = stores[0]
        .query(&EventQuery {
            limit: u32::MAX,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let ids = |events: &[RecordedEvent]| events.iter().map(|e| e.event_id).collect::<BTreeSet<_>>();
    assert_eq!(ids(&seen), ids(&stored));
    assert_eq!(seen.len(), stored.len());
    assert!(stores[0].verify().await.unwrap().intact);
}

/// A row as the Flask-era importer wrote it: MovieAdded v1 with one `genre` string.
async fn old_payload_versions_are_upcast_on_every_read_path(db: TestDatabase) {
    let store = db.store().await;
    let id = new_movie_id();
    let mut legacy = RecordedEvent {
        position: 1,
        event_id: uuid::Uuid::new_v4(),
        aggregate_type: "Movie".into(),
        aggregate_id: id.to_string(),
        sequence: 1,
        event_type: "MovieAdded".into(),
        schema_version: 1,
        payload: json!({
            "movie_id": id.to_string(),
            "title": "Casablanca",
            "year": 1942,
            "director": "Michael Curtiz",
            "genre": "Drama",
            "description": "",
            "added_by": some_user().to_string(),
            "at": "2019-05-01T10:00:00Z",
        }),
        metadata: json!({ "correlationId": "import-2019" }),
        data_subject: None,
        recorded_at: event_store::parse_timestamp("2019-05-01T10:00:00.000000Z").unwrap(),
        prev_hash: None,
        hash: String::new(),
    };
    legacy.hash = event_hash(None, &legacy);
    db.execute(&format!(
        "INSERT INTO events (position, event_id, aggregate_type, aggregate_id, sequence, event_type, \
         schema_version, payload, metadata, data_subject, recorded_at, prev_hash, hash) VALUES \
         (1, '{}', 'Movie', '{id}', 1, 'MovieAdded', 1, '{}', '{}', NULL, '2019-05-01T10:00:00.000000Z', NULL, '{}')",
        legacy.event_id,
        event_store::canonical_json(&legacy.payload),
        event_store::canonical_json(&legacy.metadata),
        legacy.hash,
    ))
    .await;
    db.execute("UPDATE event_store_head SET last_position = 1 WHERE id = 1")
        .await;

    let current = |event: &RecordedEvent| {
        assert_eq!(event.schema_version, 2);
        assert_eq!(event.payload["genres"], json!(["Drama"]));
        assert!(event.payload.get("genre").is_none());
    };
    current(&store.read_stream(&movie_stream(id), 0).await.unwrap()[0]);
    current(&store.read_all(0, 10).await.unwrap()[0]);
    let query = EventQuery {
        aggregate_id: Some(id.to_string()),
        limit: 10,
        ..EventQuery::default()
    };
    current(&store.query(&query).await.unwrap()[0]);
    let mut exported = Vec::new();
    store
        .export(&query, ExportFormat::JsonLines, &mut exported)
        .await
        .unwrap();
    let line: serde_json::Value = serde_json::from_slice(&exported).unwrap();
    assert_eq!(line["payload"]["genres"], json!(["Drama"]));

    let (movie, version) = store.load::<Movie>(&id.to_string()).await.unwrap();
    assert_eq!(version, 1);
    let state = movie.state().unwrap();
    assert_eq!(state.title.as_str(), "Casablanca");
    assert_eq!(state.genres.as_slice()[0].as_str(), "Drama");
    // The hash covers the stored v1 bytes, so the ledger still holds.
    assert!(store.verify().await.unwrap().intact);
}

async fn commands_run_through_the_domain(db: TestDatabase) {
    let store = db.store().await;
    let id = new_movie_id();
    let context = CommandContext {
        metadata: EventMetadata::system("tester"),
        data_subject: None,
    };
    let added = store
        .execute::<Movie>(&id.to_string(), add_movie(id, "Vertigo"), &(), &context)
        .await
        .unwrap();
    assert_eq!((added.version, added.position()), (1, Some(1)));
    // A command for a new stream skips loading; a stream that exists after all conflicts.
    let again = store
        .execute_new::<Movie>(&id.to_string(), add_movie(id, "Vertigo"), &(), &context)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            ExecuteError::Store(StoreError::VersionConflict { .. })
        ),
        "{again:?}"
    );

    let retitle = |expected_version| MovieCommand::UpdateDetails {
        changes: MovieChanges {
            title: Some(Title::parse("Vertigo (1958)").unwrap()),
            ..MovieChanges::default()
        },
        expected_version: Some(expected_version),
        by: some_user(),
        at: chrono::Utc::now(),
    };
    let updated = store
        .execute::<Movie>(&id.to_string(), retitle(1), &(), &context)
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    let stale = store
        .execute::<Movie>(&id.to_string(), retitle(1), &(), &context)
        .await
        .unwrap_err();
    assert!(matches!(
        stale,
        ExecuteError::Domain(MovieError::VersionConflict {
            expected: 1,
            actual: 2
        })
    ));
    assert_eq!(store.head().await.unwrap(), 2);
}

async fn checkpoints_seal_new_ranges_only(db: TestDatabase) {
    let store = db.store().await;
    assert_eq!(store.seal_checkpoint().await.unwrap(), None);
    for title in ["Tokyo Story", "Late Spring"] {
        let id = new_movie_id();
        store
            .append(append(&movie_stream(id), 0, vec![movie_added(id, title)]))
            .await
            .unwrap();
    }
    let first = store.seal_checkpoint().await.unwrap().unwrap();
    assert_eq!((first.from_position, first.to_position), (1, 2));
    assert_eq!(store.seal_checkpoint().await.unwrap(), None);
    let id = new_movie_id();
    store
        .append(append(
            &movie_stream(id),
            0,
            vec![movie_added(id, "Floating Weeds")],
        ))
        .await
        .unwrap();
    let second = store.seal_checkpoint().await.unwrap().unwrap();
    assert_eq!((second.from_position, second.to_position), (3, 3));
    assert_ne!(first.running_hash, second.running_hash);
    let report = store.verify().await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.last_checkpoint, Some(3));
    assert_eq!(report.checked_events, 3);
}

async fn queries_filter_by_aggregate_type_and_time(db: TestDatabase) {
    let store = db.store().await;
    let before = event_store::now_micros();
    let id = new_movie_id();
    store
        .append(append(
            &movie_stream(id),
            0,
            vec![movie_added(id, "Seven Samurai")],
        ))
        .await
        .unwrap();
    let other = new_movie_id();
    store
        .append(append(
            &movie_stream(other),
            0,
            vec![movie_added(other, "Rashomon")],
        ))
        .await
        .unwrap();
    store
        .append(append(
            &movie_stream(other),
            1,
            vec![movie_retitled("Rashomon (1950)")],
        ))
        .await
        .unwrap();
    let query = |query: EventQuery| {
        let store = store.clone();
        async move {
            store
                .query(&EventQuery {
                    limit: 100,
                    ..query
                })
                .await
                .unwrap()
                .iter()
                .map(|e| e.position)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(query(EventQuery::default()).await, vec![1, 2, 3]);
    assert_eq!(
        query(EventQuery {
            aggregate_id: Some(other.to_string()),
            ..EventQuery::default()
        })
        .await,
        vec![2, 3]
    );
    assert_eq!(
        query(EventQuery {
            event_types: vec!["MovieDetailsUpdated".into()],
            ..EventQuery::default()
        })
        .await,
        vec![3]
    );
    assert_eq!(
        query(EventQuery {
            aggregate_type: Some("User".into()),
            ..EventQuery::default()
        })
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        query(EventQuery {
            recorded_from: Some(before),
            after_position: 1,
            ..EventQuery::default()
        })
        .await,
        vec![2, 3]
    );
    assert_eq!(
        query(EventQuery {
            recorded_to: Some(before),
            ..EventQuery::default()
        })
        .await,
        Vec::<i64>::new()
    );
    let unknown = StreamId::new("Movie", "no-such-movie");
    assert!(store.read_stream(&unknown, 0).await.unwrap().is_empty());
}
