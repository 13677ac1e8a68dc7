//! Crypto-shredding (issue 8) on SQLite and MariaDB: personal fields are stored sealed, read back
//! opened, and once `marquee user forget` (or the admin route) destroys the user's key they read
//! as erased in the read models, GraphQL and exports, while the ledger still verifies, a replay
//! finds no drift and other users keep theirs.

use domain::{Role, UserId, Username, ERASED};
use event_store::{AppendRequest, EventMetadata, NewEvent, StoreError, StreamId};
use marquee_tests::{eventually, on_both_backends, TestApp, TestDatabase, PASSWORD};
use reqwest::Client;
use serde_json::{json, Value};

on_both_backends!(
    forgetting_erases_personal_data_everywhere_and_keeps_the_ledger,
    admins_forget_through_the_api,
    personal_data_without_an_owner_is_refused,
);

fn user_id(username: &str) -> String {
    UserId::for_username(&Username::parse(username).unwrap()).to_string()
}

/// Registers and signs in with `agent` as the browser; a wrong password first, so the history
/// holds a failed sign-in too. Returns the session token.
async fn sign_up_with_agent(app: &TestApp, username: &str, agent: &str) -> String {
    let client = Client::builder().user_agent(agent).build().unwrap();
    let registered = client
        .post(app.url("/api/users"))
        .json(&json!({
            "username": username,
            "email": format!("{username}@example.com"),
            "password": PASSWORD,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let wrong = client
        .post(app.url("/api/sessions"))
        .json(&json!({ "username": username, "password": "not the password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    sign_in_with_agent(app, username, agent).await
}

async fn sign_in_with_agent(app: &TestApp, username: &str, agent: &str) -> String {
    let response = Client::builder()
        .user_agent(agent)
        .build()
        .unwrap()
        .post(app.url("/api/sessions"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn add_movie_with_agent(app: &TestApp, token: &str, agent: &str, title: &str) -> String {
    let response = Client::builder()
        .user_agent(agent)
        .build()
        .unwrap()
        .post(app.url("/api/movies"))
        .bearer_auth(token)
        .json(&json!({
            "title": title,
            "year": 1982,
            "director": "Ridley Scott",
            "genres": ["Science Fiction"],
            "description": "Replicants.",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn gql(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let answer: Value = Client::new()
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"].clone()
}

/// Every stored payload and metadata as the database holds them.
async fn stored_event_text(db: &TestDatabase) -> String {
    let store = db.store().await;
    let rows = sqlx::query("SELECT payload, metadata FROM events ORDER BY position")
        .fetch_all(store.database().pool())
        .await
        .unwrap();
    let mut text = String::new();
    for row in rows {
        for index in 0..2 {
            text.push_str(&event_store::text_column(&row, index).unwrap().unwrap());
            text.push('\n');
        }
    }
    text
}

/// `(secret length in bytes, erased)` of a subject's row in `personal_data_keys`.
async fn key_row(db: &TestDatabase, subject: &str) -> Option<(Option<usize>, bool)> {
    let store = db.store().await;
    let row = sqlx::query("SELECT secret, erased_at FROM personal_data_keys WHERE subject = ?")
        .bind(subject)
        .fetch_optional(store.database().pool())
        .await
        .unwrap()?;
    let secret = event_store::text_column(&row, 0).unwrap();
    let erased_at = event_store::text_column(&row, 1).unwrap();
    Some((
        secret.map(|hex| hex::decode(hex).expect("a hex key").len()),
        erased_at.is_some(),
    ))
}

async fn read_model_user(db: &TestDatabase, username: &str) -> (String, Vec<Option<String>>) {
    let store = db.store().await;
    let pool = store.database().pool();
    let id = user_id(username);
    let email = sqlx::query("SELECT email FROM rm_users WHERE id = ?")
        .bind(&id)
        .fetch_optional(pool)
        .await
        .unwrap();
    let ips = sqlx::query("SELECT ip FROM rm_logins WHERE user_id = ? ORDER BY position")
        .bind(&id)
        .fetch_all(pool)
        .await
        .unwrap();
    (
        email
            .and_then(|row| event_store::text_column(&row, 0).unwrap())
            .unwrap_or_default(),
        ips.iter()
            .map(|row| event_store::text_column(row, 0).unwrap())
            .collect(),
    )
}

fn export(db: &TestDatabase, format: &str) -> String {
    let output = db.marquee(&["events", "--format", format]);
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

const EVENTS: &str = "query($id: ID) { events(first: 100, aggregateId: $id) {
    edges { node { eventType aggregateId payload metadata } } } }";

async fn events_of(app: &TestApp, auditor: &str, aggregate_id: &str) -> Vec<Value> {
    gql(app, auditor, EVENTS, json!({ "id": aggregate_id })).await["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

fn assert_exit(output: &std::process::Output, code: i32, stderr_has: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(stderr_has), "{stderr}");
}

async fn forgetting_erases_personal_data_everywhere_and_keeps_the_ledger(db: TestDatabase) {
    let app = db.spawn_app().await;
    app.project_in_process(&db).await;
    let auditor = app.signed_in_with_role("audra", Role::Auditor).await;
    let alice = sign_up_with_agent(&app, "alice", "AliceBrowser/1.0").await;
    let alices_movie = add_movie_with_agent(&app, &alice, "AliceBrowser/1.0", "Blade Runner").await;
    let bob = sign_up_with_agent(&app, "bob", "BobBrowser/2.0").await;
    let bobs_movie = add_movie_with_agent(&app, &bob, "BobBrowser/2.0", "Alien").await;
    let (alice_id, bob_id) = (user_id("alice"), user_id("bob"));

    // Nothing personal is stored in the clear, yet every reader sees it opened.
    let stored = stored_event_text(&db).await;
    for plain in [
        "alice@example.com",
        "bob@example.com",
        "127.0.0.1",
        "AliceBrowser",
        "BobBrowser",
    ] {
        assert!(!stored.contains(plain), "{plain} is stored in the clear");
    }
    assert!(stored.contains("\"$pii\":\"v1:"));
    assert_eq!(key_row(&db, &alice_id).await, Some((Some(32), false)));
    eventually("the sign-ins in the read models", || async {
        let alices = read_model_user(&db, "alice").await.1.len();
        let bobs = read_model_user(&db, "bob").await.1.len();
        (alices == 2 && bobs == 2).then_some(())
    })
    .await;
    let me = gql(
        &app,
        &alice,
        "{ me { email logins { ip succeeded } } }",
        json!({}),
    )
    .await;
    assert_eq!(me["me"]["email"], "alice@example.com");
    let logins = me["me"]["logins"].as_array().unwrap();
    assert_eq!(logins.len(), 2);
    assert!(logins.iter().all(|l| l["ip"] == "127.0.0.1"), "{logins:?}");
    let history = events_of(&app, &auditor, &alice_id).await;
    assert_eq!(history[0]["payload"]["email"], "alice@example.com");
    assert_eq!(history[0]["metadata"]["clientIp"], "127.0.0.1");
    assert_eq!(history[0]["metadata"]["userAgent"], "AliceBrowser/1.0");
    assert_eq!(history[1]["eventType"], "LoginFailed");
    assert_eq!(history[1]["payload"]["ip"], "127.0.0.1");
    let jsonl = export(&db, "jsonl");
    assert!(jsonl.contains("alice@example.com") && jsonl.contains("AliceBrowser/1.0"));

    let forgot = db.marquee(&["user", "forget", "alice"]);
    assert_exit(&forgot, 0, "");
    assert!(String::from_utf8_lossy(&forgot.stdout).contains("forgot alice"));
    assert_eq!(
        key_row(&db, &alice_id).await,
        Some((None, true)),
        "the key is destroyed"
    );

    // The read models follow the erasure event (live, in serve or the projector).
    let (email, ips) = eventually("alice's read model rows erased", || async {
        let (email, ips) = read_model_user(&db, "alice").await;
        (email == ERASED).then_some((email, ips))
    })
    .await;
    assert_eq!(email, ERASED);
    assert_eq!(ips, vec![Some(ERASED.to_owned()); 2]);
    assert_eq!(
        read_model_user(&db, "bob").await,
        (
            "bob@example.com".to_owned(),
            vec![Some("127.0.0.1".to_owned()); 2]
        )
    );

    // GraphQL: alice's history reads as erased, bob's is untouched; replaying a movie still works.
    for event in events_of(&app, &auditor, &alice_id).await {
        for field in ["email", "ip"] {
            if let Some(value) = event["payload"].get(field) {
                assert_eq!(value, ERASED, "{event}");
            }
        }
        if event["eventType"] != "PersonalDataErased" {
            assert_eq!(event["metadata"]["clientIp"], ERASED, "{event}");
            assert_eq!(event["metadata"]["userAgent"], ERASED, "{event}");
        }
    }
    let alices_added = &events_of(&app, &auditor, &alices_movie).await[0];
    assert_eq!(alices_added["metadata"]["userAgent"], ERASED);
    assert_eq!(alices_added["payload"]["title"], "Blade Runner");
    let bobs = events_of(&app, &auditor, &bob_id).await;
    assert_eq!(bobs[0]["payload"]["email"], "bob@example.com");
    assert_eq!(bobs[0]["metadata"]["userAgent"], "BobBrowser/2.0");
    let bobs_added = &events_of(&app, &auditor, &bobs_movie).await[0];
    assert_eq!(bobs_added["metadata"]["clientIp"], "127.0.0.1");
    let as_of = gql(
        &app,
        &auditor,
        "query($id: ID!) { movieAsOf(id: $id, version: 1) { title addedBy } }",
        json!({ "id": alices_movie }),
    )
    .await;
    assert_eq!(as_of["movieAsOf"]["title"], "Blade Runner");
    let bobs_me = gql(&app, &bob, "{ me { email logins { ip } } }", json!({})).await;
    assert_eq!(bobs_me["me"]["email"], "bob@example.com");

    // Exports: no trace of alice's data in either format; bob's still there.
    for format in ["jsonl", "csv"] {
        let exported = export(&db, format);
        for gone in ["alice@example.com", "AliceBrowser"] {
            assert!(!exported.contains(gone), "{format} still shows {gone}");
        }
        assert!(exported.contains(ERASED), "{format}");
        assert!(exported.contains("bob@example.com") && exported.contains("BobBrowser/2.0"));
        assert!(exported.contains("PersonalDataErased"));
    }

    // The ledger is intact, the read models match a replay, before and after rebuilding them.
    assert_exit(&db.marquee(&["verify"]), 0, "");
    assert_exit(&db.marquee(&["replay", "--compare"]), 0, "");
    assert_exit(&db.marquee(&["replay"]), 0, "");
    assert_exit(&db.marquee(&["replay", "--compare"]), 0, "");
    assert_eq!(read_model_user(&db, "alice").await.0, ERASED);

    // Alice is gone: her session ended, she cannot sign in, and she cannot be forgotten twice.
    let with_old_session = Client::new()
        .delete(app.url("/api/sessions"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(with_old_session.status(), 401);
    let sign_in = Client::new()
        .post(app.url("/api/sessions"))
        .json(&json!({ "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), 401);
    assert_eq!(
        sign_in.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_credentials"
    );
    sign_in_with_agent(&app, "bob", "BobBrowser/2.0").await;
    assert_exit(
        &db.marquee(&["user", "forget", "alice"]),
        1,
        "already erased",
    );
    assert_exit(
        &db.marquee(&["user", "forget", "nobody"]),
        1,
        "there is no user named nobody",
    );
    assert_exit(
        &db.marquee(&["user", "forget", "NO SUCH"]),
        1,
        "invalid username",
    );
    assert_exit(&db.marquee(&["verify"]), 0, "");
}

async fn admins_forget_through_the_api(db: TestDatabase) {
    let app = db.spawn_app().await;
    let admin = app.signed_in_with_role("root", Role::Admin).await;
    let carol = app.signed_in("carol").await;
    let forget = |token: &str, username: &str| {
        Client::new()
            .post(app.url(&format!("/api/users/{username}/forget")))
            .bearer_auth(token)
            .send()
    };
    let refused = forget(&carol, "carol").await.unwrap();
    assert_eq!(refused.status(), 403);
    let forgotten = forget(&admin, "carol").await.unwrap();
    assert_eq!(forgotten.status(), 200);
    let position = forgotten.json::<Value>().await.unwrap()["position"]
        .as_i64()
        .unwrap();
    assert_eq!(position, app.app.store.head().await.unwrap());
    let erasure = app
        .app
        .store
        .read_all(position - 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(erasure.event_type, "PersonalDataErased");
    assert_eq!(erasure.payload["erased_by"], user_id("root"));
    assert_eq!(
        erasure.metadata["clientIp"], "127.0.0.1",
        "the admin's own data stays"
    );
    assert_eq!(key_row(&db, &user_id("carol")).await, Some((None, true)));
    let again = forget(&admin, "carol").await.unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"]["code"],
        "already_forgotten"
    );
    assert_eq!(forget(&admin, "nobody").await.unwrap().status(), 404);
    let signed_out = Client::new()
        .delete(app.url("/api/sessions"))
        .bearer_auth(&carol)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 401, "carol's sessions ended");
    let taken = Client::new()
        .post(app.url("/api/users"))
        .json(&json!({ "username": "carol", "email": "carol@example.org", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 409, "a forgotten username stays taken");
}

async fn personal_data_without_an_owner_is_refused(db: TestDatabase) {
    let store = db.store().await;
    let head = store.head().await.unwrap();
    let refused = store
        .append(AppendRequest {
            stream: StreamId::new("User", user_id("dave")),
            expected_version: 0,
            events: vec![NewEvent {
                event_type: "PasswordLoginSucceeded".into(),
                schema_version: 1,
                payload: json!({ "ip": "192.0.2.1", "at": "2026-01-01T00:00:00Z" }),
                data_subject: None,
            }],
            metadata: EventMetadata::system("test"),
        })
        .await;
    assert!(
        matches!(&refused, Err(StoreError::NoDataSubject { field }) if field == "payload.ip"),
        "{refused:?}"
    );
    let anonymous_ip = store
        .append(AppendRequest {
            stream: StreamId::new("Movie", uuid::Uuid::new_v4().to_string()),
            expected_version: 0,
            events: vec![NewEvent {
                event_type: "MovieRemoved".into(),
                schema_version: 1,
                payload: json!({}),
                data_subject: None,
            }],
            metadata: EventMetadata {
                client_ip: Some("192.0.2.1".into()),
                ..EventMetadata::system("test")
            },
        })
        .await;
    assert!(
        matches!(&anonymous_ip, Err(StoreError::NoDataSubject { field }) if field == "metadata.clientIp"),
        "{anonymous_ip:?}"
    );
    assert_eq!(store.head().await.unwrap(), head, "nothing stored");
}
