//! The command API over HTTP against the real app, on SQLite and on MariaDB.

use event_store::StreamId;
use marquee_tests::{on_both_backends, TestApp, TestDatabase, PASSWORD};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    register_sign_in_and_sign_out,
    wrong_password_and_unknown_user_answer_alike,
    five_failures_lock_the_account,
    sign_in_is_rate_limited_per_address,
    a_movie_is_added_edited_and_removed,
    concurrent_edits_of_one_version_have_one_winner,
    an_idempotency_key_replays_the_first_answer,
    bad_input_gets_a_clear_error_and_stores_nothing,
    cookie_sessions_need_a_same_origin_request,
    admins_manage_subscriptions,
    admins_grant_roles_once,
);

/// The contract's error code of a response, asserting its status.
async fn error_code(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"]["code"].as_str().unwrap().to_string()
}

async fn head(app: &TestApp) -> i64 {
    app.app.store.head().await.unwrap()
}

async fn user_events(app: &TestApp, username: &str) -> Vec<event_store::RecordedEvent> {
    let id = domain::UserId::for_username(&domain::Username::parse(username).unwrap());
    app.app
        .store
        .read_stream(&StreamId::new("User", id.to_string()), 0)
        .await
        .unwrap()
}

async fn register_sign_in_and_sign_out(db: TestDatabase) {
    let app = db.spawn_app().await;
    let client = Client::new();
    let registration =
        json!({ "username": "Ada", "email": "ada@example.com", "password": PASSWORD });
    let created = client
        .post(app.url("/api/users"))
        .header("x-request-id", "req-ada-1")
        .header("user-agent", "marquee-test-agent")
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["username"], "ada");
    assert_eq!(created["position"], 1);
    assert!(created["id"].as_str().is_some());
    let taken = client
        .post(app.url("/api/users"))
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(taken, StatusCode::CONFLICT).await,
        "username_taken"
    );

    let signed_in = client
        .post(app.url("/api/sessions"))
        .json(&json!({ "username": "ADA", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("marquee_session=") && cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Strict"));
    let body: Value = signed_in.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    assert!(body["expiresAt"].as_str().is_some());
    assert_eq!(body["position"], 2);

    let events = user_events(&app, "ada").await;
    assert_eq!(events[0].event_type, "UserRegistered");
    assert_eq!(events[0].metadata["correlationId"], "req-ada-1");
    assert_eq!(events[0].metadata["userAgent"], "marquee-test-agent");
    assert_eq!(events[0].metadata["clientIp"], "127.0.0.1");
    assert_eq!(
        events[0].data_subject.as_deref(),
        Some(created["id"].as_str().unwrap())
    );
    assert_eq!(events[1].event_type, "PasswordLoginSucceeded");
    assert!(!events[0].payload.to_string().contains(PASSWORD));

    let signed_out = client
        .delete(app.url("/api/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 204);
    assert!(signed_out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = client
        .delete(app.url("/api/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(after, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
}

async fn wrong_password_and_unknown_user_answer_alike(db: TestDatabase) {
    let app = db.spawn_app().await;
    app.signed_in("grace").await;
    let attempt = |username: &'static str| {
        let url = app.url("/api/sessions");
        async move {
            Client::new()
                .post(url)
                .json(&json!({ "username": username, "password": "not the password" }))
                .send()
                .await
                .unwrap()
        }
    };
    let wrong: Value = attempt("grace").await.json().await.unwrap();
    let unknown_response = attempt("nobody").await;
    assert_eq!(unknown_response.status(), 401);
    let unknown: Value = unknown_response.json().await.unwrap();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");
    let events = user_events(&app, "grace").await;
    let failed = events.last().unwrap();
    assert_eq!(failed.event_type, "LoginFailed");
    assert_eq!(failed.payload["reason"], "bad_password");
}

async fn five_failures_lock_the_account(db: TestDatabase) {
    let app = db.spawn_app().await;
    app.signed_in("hopper").await;
    let client = Client::new();
    let mut codes = Vec::new();
    for _ in 0..5 {
        let response = client
            .post(app.url("/api/sessions"))
            .json(&json!({ "username": "hopper", "password": "guess guess guess" }))
            .send()
            .await
            .unwrap();
        codes.push(error_code(response, StatusCode::UNAUTHORIZED).await);
    }
    assert_eq!(codes[..4], ["invalid_credentials"; 4]);
    assert_eq!(codes[4], "account_locked");
    let right_password = client
        .post(app.url("/api/sessions"))
        .json(&json!({ "username": "hopper", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(right_password, StatusCode::UNAUTHORIZED).await,
        "account_locked"
    );
    let types: Vec<String> = user_events(&app, "hopper")
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(types.contains(&"AccountLocked".to_string()));
    assert_eq!(types.last().unwrap(), "LoginFailed");

    // An admin lifts the lock before its 15 minutes are up.
    let admin = app.signed_in_with_role("root", domain::Role::Admin).await;
    let user_token = app.signed_in("bystander").await;
    let refused = client
        .post(app.url("/api/users/hopper/unlock"))
        .bearer_auth(&user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(refused, StatusCode::FORBIDDEN).await,
        "forbidden"
    );
    let unlocked = client
        .post(app.url("/api/users/hopper/unlock"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(unlocked.status(), 200);
    app.sign_in("hopper").await;
    let again = client
        .post(app.url("/api/users/hopper/unlock"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again, StatusCode::CONFLICT).await, "not_locked");
}

async fn sign_in_is_rate_limited_per_address(db: TestDatabase) {
    let app = db
        .spawn_app_with(|settings| settings.sign_in_rate = 3)
        .await;
    let client = Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let response = client
            .post(app.url("/api/sessions"))
            .json(&json!({ "username": "nobody", "password": "whatever it is" }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = Some(
                response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
            assert_eq!(
                error_code(response, StatusCode::TOO_MANY_REQUESTS).await,
                "rate_limited"
            );
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    assert_eq!(retry_after.as_deref(), Some("20"));
}

async fn a_movie_is_added_edited_and_removed(db: TestDatabase) {
    let app = db.spawn_app().await;
    let token = app.signed_in("kubrick").await;
    let client = Client::new();
    let added = client
        .post(app.url("/api/movies"))
        .bearer_auth(&token)
        .json(
            &json!({ "title": "2001", "year": 1968, "director": "Stanley Kubrick",
                       "genres": ["Science Fiction"], "description": "" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["version"], 1);
    let id = added["id"].as_str().unwrap();
    let movie_url = app.url(&format!("/api/movies/{id}"));

    let patch = |version: &'static str, body: Value| {
        let request = client.patch(&movie_url).bearer_auth(&token).json(&body);
        let request = if version.is_empty() {
            request
        } else {
            request.header("if-match", version)
        };
        request.send()
    };
    let edited = patch("\"1\"", json!({ "title": "2001: A Space Odyssey" }))
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.unwrap();
    assert_eq!(edited["version"], 2);
    assert!(edited["position"].as_i64().unwrap() > added["position"].as_i64().unwrap());
    let stale = patch("\"1\"", json!({ "year": 1969 })).await.unwrap();
    assert_eq!(
        error_code(stale, StatusCode::CONFLICT).await,
        "version_conflict"
    );
    let unconditional = patch("", json!({ "year": 1969 })).await.unwrap();
    assert_eq!(
        error_code(unconditional, StatusCode::BAD_REQUEST).await,
        "if_match_required"
    );
    let same = patch("\"2\"", json!({ "title": "2001: A Space Odyssey" }))
        .await
        .unwrap();
    assert_eq!(
        error_code(same, StatusCode::UNPROCESSABLE_ENTITY).await,
        "nothing_to_change"
    );

    let removed = client
        .delete(&movie_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let after_removal = patch("\"3\"", json!({ "year": 1969 })).await.unwrap();
    assert_eq!(
        error_code(after_removal, StatusCode::CONFLICT).await,
        "movie_removed"
    );
    let stream = StreamId::new("Movie", id);
    let types: Vec<String> = app
        .app
        .store
        .read_stream(&stream, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["MovieAdded", "MovieDetailsUpdated", "MovieRemoved"]);

    for missing in [
        format!("/api/movies/{}", uuid::Uuid::new_v4()),
        "/api/movies/not-a-uuid".into(),
    ] {
        let response = client
            .patch(app.url(&missing))
            .bearer_auth(&token)
            .header("if-match", "\"1\"")
            .json(&json!({ "year": 1969 }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response, StatusCode::NOT_FOUND).await,
            "not_found"
        );
    }
}

async fn concurrent_edits_of_one_version_have_one_winner(db: TestDatabase) {
    let app = db.spawn_app().await;
    let token = app.signed_in("rival").await;
    let id = app.add_movie(&token, "Rashomon").await;
    let edits = (0..2).map(|i| {
        Client::new()
            .patch(app.url(&format!("/api/movies/{id}")))
            .bearer_auth(&token)
            .header("if-match", "\"1\"")
            .json(&json!({ "title": format!("Rashomon, take {i}") }))
            .send()
    });
    let mut statuses: Vec<u16> = futures::future::join_all(edits)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let events = app
        .app
        .store
        .read_stream(&StreamId::new("Movie", &id), 0)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

async fn an_idempotency_key_replays_the_first_answer(db: TestDatabase) {
    let app = db.spawn_app().await;
    let token = app.signed_in("retry").await;
    let post = |key: &'static str, title: &'static str| {
        Client::new()
            .post(app.url("/api/movies"))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&json!({ "title": title, "year": 1954, "director": "Akira Kurosawa" }))
            .send()
    };
    let first = post("add-seven-samurai", "Seven Samurai").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let before = head(&app).await;
    let retried = post("add-seven-samurai", "Seven Samurai").await.unwrap();
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    assert_eq!(retried.json::<Value>().await.unwrap(), first);
    assert_eq!(head(&app).await, before, "no new events");
    let reused = post("add-seven-samurai", "Ikiru").await.unwrap();
    assert_eq!(
        error_code(reused, StatusCode::UNPROCESSABLE_ENTITY).await,
        "idempotency_key_reused"
    );
    let bad_key = post("with space", "Ikiru").await.unwrap();
    assert_eq!(
        error_code(bad_key, StatusCode::BAD_REQUEST).await,
        "invalid_idempotency_key"
    );
}

async fn bad_input_gets_a_clear_error_and_stores_nothing(db: TestDatabase) {
    let app = db.spawn_app().await;
    let token = app.signed_in("fuzz").await;
    let before = head(&app).await;
    let client = Client::new();
    let raw = |body: String, content_type: &'static str| {
        client
            .post(app.url("/api/movies"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(String, &str, StatusCode, &str)> = vec![
        ("{\"title\": ".into(), "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
        (json!({"title": 7, "year": 1999, "director": "x"}).to_string(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"year": 1999, "director": "x"}).to_string(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"title": "x", "year": 1999, "director": "x", "rating": 5}).to_string(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (json!({"title": "x", "year": 1999, "director": "x"}).to_string(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (format!("{{\"title\": \"{}\"}}", "x".repeat(100_000)), "application/json", StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (json!({"title": "  ", "year": 1999, "director": "x"}).to_string(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"title": "x", "year": 1700, "director": "x"}).to_string(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"title": "x", "year": 1999, "director": "x", "genres": (0..11).map(|i| i.to_string()).collect::<Vec<_>>()}).to_string(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
    ];
    for (body, content_type, status, code) in cases {
        let response = raw(body.clone(), content_type).await.unwrap();
        assert_eq!(
            error_code(response, status).await,
            code,
            "{}",
            &body[..body.len().min(80)]
        );
    }
    let field: Value = raw(
        json!({"title": "x", "year": 1700, "director": "x"}).to_string(),
        "application/json",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(field["error"]["field"], "year");
    let weak_password = client
        .post(app.url("/api/users"))
        .json(&json!({ "username": "short", "email": "s@example.com", "password": "short" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(weak_password, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let bad_email = client
        .post(app.url("/api/users"))
        .json(&json!({ "username": "mail", "email": "not-an-email", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(bad_email, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    assert_eq!(head(&app).await, before, "nothing was stored");
}

async fn cookie_sessions_need_a_same_origin_request(db: TestDatabase) {
    let app = db.spawn_app().await;
    let token = app.signed_in("browser").await;
    let post = |origin: Option<&str>| {
        let request = Client::new()
            .post(app.url("/api/movies"))
            .header("cookie", format!("marquee_session={token}"))
            .json(&json!({ "title": "Playtime", "year": 1967, "director": "Jacques Tati" }));
        match origin {
            Some(origin) => request.header("origin", origin),
            None => request,
        }
        .send()
    };
    let no_origin = post(None).await.unwrap();
    assert_eq!(
        error_code(no_origin, StatusCode::FORBIDDEN).await,
        "csrf_rejected"
    );
    let evil = post(Some("https://evil.example")).await.unwrap();
    assert_eq!(
        error_code(evil, StatusCode::FORBIDDEN).await,
        "csrf_rejected"
    );
    let own = post(Some(&app.base_url)).await.unwrap();
    assert_eq!(own.status(), 201);
}

async fn admins_manage_subscriptions(db: TestDatabase) {
    let app = db.spawn_app().await;
    let admin = app.signed_in_with_role("ops", domain::Role::Admin).await;
    let client = Client::new();
    let create = |body: Value| {
        client
            .post(app.url("/api/admin/subscriptions"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let created =
        create(json!({ "topic": "alerts", "protocol": "email", "endpoint": "oncall@example.com" }))
            .await
            .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["topic"], "alerts");
    let sms = create(json!({ "topic": "logins", "protocol": "sms", "endpoint": "+14155550123" }))
        .await
        .unwrap();
    assert_eq!(sms.status(), 201);
    for (body, field) in [
        (
            json!({ "topic": "billing", "protocol": "email", "endpoint": "a@example.com" }),
            "topic",
        ),
        (
            json!({ "topic": "alerts", "protocol": "pager", "endpoint": "a@example.com" }),
            "protocol",
        ),
        (
            json!({ "topic": "alerts", "protocol": "sms", "endpoint": "call me" }),
            "endpoint",
        ),
        (
            json!({ "topic": "alerts", "protocol": "email", "endpoint": "nobody" }),
            "endpoint",
        ),
    ] {
        let response = create(body).await.unwrap();
        assert_eq!(response.status(), 422);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field);
    }
    let listed: Vec<Value> = client
        .get(app.url("/api/admin/subscriptions"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoints: Vec<&str> = listed
        .iter()
        .map(|s| s["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(endpoints.contains(&"oncall@example.com") && endpoints.contains(&"+14155550123"));

    let id = created["id"].as_str().unwrap();
    let encoded: String = id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let url = app.url(&format!("/api/admin/subscriptions/{encoded}"));
    let deleted = client
        .delete(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = client
        .delete(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(gone, StatusCode::NOT_FOUND).await, "not_found");
}

async fn admins_grant_roles_once(db: TestDatabase) {
    let app = db.spawn_app().await;
    let admin = app.signed_in_with_role("chief", domain::Role::Admin).await;
    app.signed_in("ledgerly").await;
    let grant = |username: &str, role: &str| {
        Client::new()
            .post(app.url(&format!("/api/users/{username}/roles")))
            .bearer_auth(&admin)
            .json(&json!({ "role": role }))
            .send()
    };
    let granted = grant("ledgerly", "auditor").await.unwrap();
    assert_eq!(granted.status(), 200);
    assert!(granted.json::<Value>().await.unwrap()["position"]
        .as_i64()
        .is_some());
    let again = grant("ledgerly", "auditor").await.unwrap();
    assert_eq!(
        error_code(again, StatusCode::CONFLICT).await,
        "role_already_granted"
    );
    let unknown_role = grant("ledgerly", "owner").await.unwrap();
    assert_eq!(
        error_code(unknown_role, StatusCode::UNPROCESSABLE_ENTITY).await,
        "validation_failed"
    );
    let nobody = grant("nobody", "auditor").await.unwrap();
    assert_eq!(error_code(nobody, StatusCode::NOT_FOUND).await, "not_found");
    let events = user_events(&app, "ledgerly").await;
    assert_eq!(events.last().unwrap().event_type, "RoleGranted");
    assert_eq!(events.last().unwrap().metadata["actor"], "chief");
}
