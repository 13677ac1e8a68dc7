//! The embedded profile's pipeline inside `marquee serve`: commands reach the read models, the
//! local metric series and the notification outbox without a broker, and `marquee replay`
//! rebuilds and checks them from the command line.

use marquee_tests::{eventually, Backend, TestDatabase};
use sqlx::Row;

async fn scalar(store: &event_store::EventStore, sql: &str) -> Option<f64> {
    let row = sqlx::query(sql)
        .fetch_one(store.database().pool())
        .await
        .ok()?;
    row.try_get::<f64, _>(0)
        .ok()
        .or_else(|| row.try_get::<i64, _>(0).ok().map(|v| v as f64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_reach_read_models_metrics_and_notifications() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = db.spawn_app().await;
    let store = app.app.store.clone();
    let token = app.signed_in("ann").await;
    let id = app.add_movie(&token, "2001: A Space Odyssey").await;
    let title: String = eventually("the movie in the catalogue", || {
        let store = store.clone();
        let id = id.clone();
        async move {
            let row = sqlx::query("SELECT title FROM rm_movies WHERE id = ?")
                .bind(id)
                .fetch_optional(store.database().pool())
                .await
                .unwrap()?;
            event_store::text_column(&row, 0).unwrap()
        }
    })
    .await;
    assert_eq!(title, "2001: A Space Odyssey");
    for (metric, expected) in [
        ("MoviesAdded", 1.0),
        ("UsersRegistered", 1.0),
        ("LoginSucceeded", 1.0),
    ] {
        let sql = format!("SELECT SUM(value) FROM metric_points WHERE name = '{metric}'");
        let value = eventually(metric, || async { scalar(&store, &sql).await }).await;
        assert_eq!(value, expected, "{metric}");
    }
    let sent = eventually("the new-movie notification", || async {
        scalar(&store, "SELECT COUNT(*) FROM outbox WHERE channel = 'notifications' AND sent_at IS NOT NULL AND payload LIKE '%\"movies\"%'")
            .await
            .filter(|count| *count > 0.0)
    })
    .await;
    assert_eq!(sent, 1.0);
    let statuses = eventually("every projection caught up", || {
        let store = store.clone();
        async move {
            let statuses = projectors::statuses(&store).await.unwrap();
            (statuses.len() == 3 && statuses.iter().all(|s| s.lag == 0)).then_some(statuses)
        }
    })
    .await;
    assert!(
        statuses.iter().all(|s| s.last_error.is_none()),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_from_another_process_are_projected() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = db.spawn_app().await;
    let store = app.app.store.clone();
    app.signed_in("bob").await;
    let granted = db.marquee(&["user", "grant-role", "bob", "admin"]);
    assert!(granted.status.success(), "{granted:?}");
    let roles: String = eventually("the role granted by the CLI", || {
        let store = store.clone();
        async move {
            let row = sqlx::query("SELECT roles FROM rm_users WHERE username = 'bob'")
                .fetch_optional(store.database().pool())
                .await
                .unwrap()?;
            event_store::text_column(&row, 0)
                .unwrap()
                .filter(|roles| roles.contains("admin"))
        }
    })
    .await;
    assert_eq!(roles, r#"["admin","user"]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_compare_reports_drift_and_replay_repairs_it() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = db.spawn_app().await;
    let store = app.app.store.clone();
    let token = app.signed_in("cat").await;
    let id = app.add_movie(&token, "Solaris").await;
    eventually("the movie in the catalogue", || {
        let store = store.clone();
        let id = id.clone();
        async move {
            sqlx::query("SELECT 1 FROM rm_movies WHERE id = ?")
                .bind(id)
                .fetch_optional(store.database().pool())
                .await
                .unwrap()
        }
    })
    .await;
    app.app.shutdown().await.unwrap();
    let clean = db.marquee(&["replay", "--compare"]);
    assert!(clean.status.success(), "{clean:?}");
    db.execute("UPDATE rm_movies SET title = 'Solyaris' WHERE title = 'Solaris'")
        .await;
    let drift = db.marquee(&["replay", "--compare"]);
    assert_eq!(drift.status.code(), Some(1), "{drift:?}");
    let printed = String::from_utf8_lossy(&drift.stdout);
    assert!(
        printed.contains("rm_movies") && printed.contains("Solyaris"),
        "{printed}"
    );
    let replayed = db.marquee(&["replay"]);
    assert!(replayed.status.success(), "{replayed:?}");
    let printed = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        printed.contains("read-models: 3 events replayed"),
        "{printed}"
    );
    assert!(db.marquee(&["replay", "--compare"]).status.success());
    let refused = db.marquee(&["replay", "--projection", "notifications"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
}
