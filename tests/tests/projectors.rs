//! The projectors' guarded apply on both backends: duplicates change nothing, out-of-order
//! delivery is filled from the store, forged messages are refused, effects go out once, and the
//! read models always equal a replay of the store.

use std::sync::Arc;

use event_store::{EventStore, RecordedEvent};
use marquee_tests::fixtures::{
    append, movie_added, movie_retitled, movie_stream, new_movie_id, register, register_passkey,
    sign_in, user_command,
};
use marquee_tests::{marquee_binary, on_both_backends, Backend, TestDatabase};
use projectors::{
    compare_read_models, projector, replay, Adapters, AlertRules, PipelineSettings, Projector,
    ProjectorError, ReplayMethod, Source, METRICS, NOTIFICATIONS, READ_MODELS,
};
use sqlx::Row;

on_both_backends!(
    a_redelivered_batch_changes_nothing,
    events_out_of_order_are_applied_in_stream_order,
    a_forged_event_is_refused_and_nothing_is_applied,
    metrics_count_each_event_once,
    notifications_are_queued_once_and_sent_once,
    a_burst_of_failed_sign_ins_raises_one_alert,
    compare_finds_drift_and_replay_repairs_it,
    a_replay_beside_a_live_projector_applies_each_event_once,
    a_read_models_replay_beside_a_live_projector_applies_each_event_once,
);

fn local(store: &EventStore, name: &str) -> Projector {
    projector(
        store,
        &Adapters::local(),
        &PipelineSettings::default(),
        name,
    )
    .unwrap()
}

/// Three movies, the first retitled twice: six events.
async fn catalogue(store: &EventStore) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    let first = new_movie_id();
    for (id, title) in [
        (first, "Alien"),
        (new_movie_id(), "Heat"),
        (new_movie_id(), "Ran"),
    ] {
        let stored = store
            .append(append(&movie_stream(id), 0, vec![movie_added(id, title)]))
            .await
            .unwrap();
        events.extend(stored.events);
    }
    for version in 1..3u64 {
        let retitle = movie_retitled(&format!("Alien, cut {version}"));
        let stored = store
            .append(append(&movie_stream(first), version, vec![retitle]))
            .await
            .unwrap();
        events.extend(stored.events);
    }
    events
}

async fn count(store: &EventStore, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.database().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn a_redelivered_batch_changes_nothing(db: TestDatabase) {
    let store = db.store().await;
    let events = catalogue(&store).await;
    let read_models = local(&store, READ_MODELS);
    let first = read_models
        .apply(events.clone(), Source::Bus)
        .await
        .unwrap();
    assert_eq!((first.applied, first.duplicates), (5, 0));
    let again = read_models.apply(events, Source::Bus).await.unwrap();
    assert_eq!((again.applied, again.duplicates), (0, 5));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM rm_movies").await, 3);
    assert_eq!(
        count(
            &store,
            "SELECT version FROM rm_movies WHERE title = 'Alien, cut 2'"
        )
        .await,
        3
    );
    assert!(compare_read_models(&store).await.unwrap().is_empty());
}

async fn events_out_of_order_are_applied_in_stream_order(db: TestDatabase) {
    let store = db.store().await;
    let events = catalogue(&store).await;
    let read_models = local(&store, READ_MODELS);
    // The last retitle arrives first: the two events before it are read from the store.
    let last = events.last().unwrap().clone();
    let early = read_models.apply(vec![last], Source::Bus).await.unwrap();
    assert_eq!((early.applied, early.filled), (3, 2));
    let rest = read_models.apply(events, Source::Bus).await.unwrap();
    assert_eq!((rest.applied, rest.duplicates), (2, 3));
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM rm_movies WHERE title = 'Alien, cut 2'"
        )
        .await,
        1
    );
    assert!(compare_read_models(&store).await.unwrap().is_empty());
}

async fn a_forged_event_is_refused_and_nothing_is_applied(db: TestDatabase) {
    let store = db.store().await;
    let mut events = catalogue(&store).await;
    events[1].payload["title"] = "Forged".into();
    events[1].hash = "0".repeat(64);
    let outcome = local(&store, READ_MODELS).apply(events, Source::Bus).await;
    assert!(
        matches!(outcome, Err(ProjectorError::Poison { .. })),
        "{outcome:?}"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM rm_movies").await, 0);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM projection_streams").await,
        0
    );
}

async fn metrics_count_each_event_once(db: TestDatabase) {
    let store = db.store().await;
    let events = catalogue(&store).await;
    let metrics = local(&store, METRICS);
    metrics.apply(events.clone(), Source::Bus).await.unwrap();
    metrics.apply(events.clone(), Source::Bus).await.unwrap();
    metrics
        .apply(events[2..].to_vec(), Source::Bus)
        .await
        .unwrap();
    let sum = |name: &'static str| {
        let store = store.clone();
        async move {
            let row = sqlx::query("SELECT SUM(value) FROM metric_points WHERE name = ?")
                .bind(name)
                .fetch_one(store.database().pool())
                .await
                .unwrap();
            row.try_get::<f64, _>(0).unwrap()
        }
    };
    assert_eq!(sum("MoviesAdded").await, 3.0);
    assert_eq!(sum("MoviesUpdated").await, 2.0);
}

async fn notifications_are_queued_once_and_sent_once(db: TestDatabase) {
    let store = db.store().await;
    let mut events = user_command(&store, "ada", register("ada")).await;
    events.extend(user_command(&store, "ada", sign_in("right")).await);
    events.extend(catalogue(&store).await);
    let notifications = local(&store, NOTIFICATIONS);
    notifications
        .apply(events.clone(), Source::Bus)
        .await
        .unwrap();
    notifications.apply(events, Source::Bus).await.unwrap();
    let rows = sqlx::query(
        "SELECT payload, sent_at FROM outbox WHERE channel = 'notifications' ORDER BY effect_key",
    )
    .fetch_all(store.database().pool())
    .await
    .unwrap();
    let payloads: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            assert!(event_store::text_column(row, 1).unwrap().is_some(), "sent");
            serde_json::from_str(&event_store::text_column(row, 0).unwrap().unwrap()).unwrap()
        })
        .collect();
    let topics: Vec<&str> = payloads
        .iter()
        .map(|p| p["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics.iter().filter(|t| **t == "movies").count(), 3);
    assert_eq!(topics.iter().filter(|t| **t == "logins").count(), 1);
    let login = payloads.iter().find(|p| p["topic"] == "logins").unwrap();
    assert_eq!(login["username"], "ada");
    assert!(login["message"].as_str().unwrap().contains("192.0.2.7"));
}

async fn a_burst_of_failed_sign_ins_raises_one_alert(db: TestDatabase) {
    let store = db.store().await;
    let settings = PipelineSettings {
        alert_rules: AlertRules {
            failed_sign_in_burst: 3,
            ..AlertRules::default()
        },
        ..PipelineSettings::default()
    };
    let notifications = projector(&store, &Adapters::local(), &settings, NOTIFICATIONS).unwrap();
    for name in ["bea", "cyd", "dov"] {
        let mut events = user_command(&store, name, register(name)).await;
        events.extend(user_command(&store, name, sign_in("wrong")).await);
        events.extend(user_command(&store, name, sign_in("wrong")).await);
        notifications.apply(events, Source::Store).await.unwrap();
    }
    let bursts = count(
        &store,
        "SELECT COUNT(*) FROM outbox WHERE channel = 'notifications' AND effect_key LIKE 'burst:%'",
    )
    .await;
    assert_eq!(bursts, 1, "six failures cross the threshold of three once");
}

async fn compare_finds_drift_and_replay_repairs_it(db: TestDatabase) {
    let store = db.store().await;
    catalogue(&store).await;
    user_command(&store, "eve", register("eve")).await;
    user_command(&store, "eve", sign_in("wrong")).await;
    let read_models = local(&store, READ_MODELS);
    read_models.catch_up(100).await.unwrap();
    assert!(compare_read_models(&store).await.unwrap().is_empty());
    db.execute("UPDATE rm_movies SET title = 'Tampered' WHERE title = 'Heat'")
        .await;
    db.execute("DELETE FROM rm_logins").await;
    let drift = compare_read_models(&store).await.unwrap();
    let tables: Vec<&str> = drift.iter().map(|d| d.table).collect();
    assert_eq!(tables, vec!["rm_movies", "rm_logins"], "{drift:?}");
    let report = replay(&read_models).await.unwrap();
    assert_eq!(report.events, 7);
    assert!(compare_read_models(&store).await.unwrap().is_empty());
    let refused = replay(&local(&store, NOTIFICATIONS)).await;
    assert!(matches!(refused, Err(ProjectorError::NotReplayable(_))));
}

async fn a_replay_beside_a_live_projector_applies_each_event_once(db: TestDatabase) {
    let store = db.store().await;
    for _ in 0..10 {
        catalogue(&store).await;
    }
    let live = local(&store, METRICS);
    let rebuild = Arc::new(local(&store, METRICS));
    let replaying = {
        let rebuild = Arc::clone(&rebuild);
        tokio::spawn(async move { replay(&rebuild).await.unwrap() })
    };
    while live.catch_up(7).await.unwrap() > 0 {}
    replaying.await.unwrap();
    while live.catch_up(7).await.unwrap() > 0 {}
    let row = sqlx::query("SELECT SUM(value) FROM metric_points WHERE name = 'MoviesAdded'")
        .fetch_one(store.database().pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<f64, _>(0).unwrap(), 30.0);
}

/// Applies the store's events until none are left; a live apply refused during a replay's swap
/// is tried again, as the tail and the bus do.
async fn drain(live: &Projector) {
    loop {
        match live.catch_up(7).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(ProjectorError::ReplaySwapping { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(error) => panic!("the live apply failed: {error}"),
        }
    }
}

/// A user with passkeys: their count in rm_users is a counter, so an event applied twice shows.
async fn user_with_passkeys(store: &EventStore, name: &str, passkeys: usize) {
    user_command(store, name, register(name)).await;
    for key in 0..passkeys {
        user_command(store, name, register_passkey(&format!("{name}-key-{key}"))).await;
    }
}

async fn passkeys_counted(store: &EventStore) -> i64 {
    sqlx::query("SELECT passkeys FROM rm_users")
        .fetch_all(store.database().pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<i64, _>(0).unwrap())
        .sum()
}

async fn a_read_models_replay_beside_a_live_projector_applies_each_event_once(db: TestDatabase) {
    let store = db.store().await;
    for n in 0..40 {
        catalogue(&store).await;
        user_with_passkeys(&store, &format!("early{n}"), 2).await;
    }
    let live = local(&store, READ_MODELS);
    let rebuild = Arc::new(local(&store, READ_MODELS));
    let replaying = {
        let rebuild = Arc::clone(&rebuild);
        tokio::spawn(async move { replay(&rebuild).await.unwrap() })
    };
    for n in 0..10 {
        catalogue(&store).await;
        user_with_passkeys(&store, &format!("late{n}"), 3).await;
        drain(&live).await;
    }
    replaying.await.unwrap();
    drain(&live).await;
    assert_eq!(passkeys_counted(&store).await, 40 * 2 + 10 * 3);
    assert!(compare_read_models(&store).await.unwrap().is_empty());
}

/// The swap on MySQL commits the new guards before it renames the new tables in: a replay that
/// dies between the two leaves live applies refusing, not applying twice, until it runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_swap_holds_live_applies_until_the_next_replay() {
    let db = TestDatabase::new(Backend::MySql).await;
    let store = db.store().await;
    catalogue(&store).await;
    user_with_passkeys(&store, "pat", 2).await;
    let live = local(&store, READ_MODELS);
    drain(&live).await;

    let crashed = std::process::Command::new(marquee_binary())
        .args(["replay", "--projection", READ_MODELS])
        .envs(db.env())
        .env("MARQUEE_FAILPOINT", "replay-before-swap")
        .output()
        .unwrap();
    assert_eq!(
        crashed.status.code(),
        None,
        "the replay aborts at the failpoint: {}",
        String::from_utf8_lossy(&crashed.stderr)
    );

    user_command(&store, "pat", register_passkey("pat-key-late")).await;
    let refused = live.catch_up(7).await;
    assert!(
        matches!(refused, Err(ProjectorError::ReplaySwapping { .. })),
        "{refused:?}"
    );
    assert_eq!(passkeys_counted(&store).await, 2, "nothing applied twice");

    let report = replay(&local(&store, READ_MODELS)).await.unwrap();
    assert_eq!(report.method, ReplayMethod::Swap);
    drain(&live).await;
    assert_eq!(passkeys_counted(&store).await, 3);
    assert!(compare_read_models(&store).await.unwrap().is_empty());
    let left_over = sqlx::query("SHOW TABLES LIKE 'rm\\_%\\_\\_%'")
        .fetch_all(store.database().pool())
        .await
        .unwrap();
    assert!(left_over.is_empty(), "no copies left behind");
}
