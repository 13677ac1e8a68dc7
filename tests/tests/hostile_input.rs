//! Hostile input against the real app, on SQLite and on MariaDB (issue 8): SQL injection in every
//! GraphQL filter and in the ids and usernames of routes, oversized and deeply nested JSON, GraphQL
//! depth, alias and fragment bombs, invalid UTF-8, huge headers, path traversal in ids and poster
//! keys, images that lie about their type, and the same over the GraphQL WebSocket. Each case gets a clear error (the contract's
//! `{"error": {"code", "message"}}` over HTTP, `extensions.code` in GraphQL) with no internals in
//! the body, stores nothing (the store's head does not move) and leaves the server answering.

use std::io::{Read, Write};
use std::time::Duration;

use domain::Role;
use marquee_tests::graphql_ws::Socket;
use marquee_tests::images::png_declaring;
use marquee_tests::{on_both_backends, Backend, TestApp, TestDatabase, PASSWORD};
use query_api::MAX_SUBSCRIPTIONS_PER_SOCKET;
use reqwest::{Client, Method};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

on_both_backends!(
    sql_injection_in_graphql_filters_matches_nothing,
    sql_injection_and_traversal_in_route_ids_are_refused,
    oversized_nested_and_invalid_bodies_are_refused,
    graphql_bombs_are_refused,
    huge_headers_and_raw_paths_are_refused,
    lying_images_are_refused,
    hostile_websocket_messages_are_refused,
);

const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "' OR 1=1 --",
    "\" OR \"\"=\"",
    "'; DROP TABLE events; --",
    "1; DELETE FROM events WHERE 1=1",
    "x' UNION SELECT password_hash, 1, 2 FROM users --",
    "%' AND SLEEP(3) AND '%'='",
    "\\'; UPDATE events SET payload = '{}'; --",
    "admin'/*",
    "*) OR NEAR(a b) OR (*",
    "\u{0}' OR 1=1",
    "ʼ OR 1=1 --",
];

/// What must never reach a client: SQL, driver and panic text, source locations.
const INTERNALS: &[&str] = &[
    "sqlx",
    "SQLSTATE",
    "syntax error",
    "You have an error in your SQL",
    "no such table",
    "no such column",
    "fts5",
    "panicked",
    "backtrace",
    ".rs:",
    "DatabaseError",
];

fn assert_no_internals(what: &str, body: &str) {
    for marker in INTERNALS {
        assert!(
            !body.to_lowercase().contains(&marker.to_lowercase()),
            "{what}: the body leaks {marker:?}: {body}"
        );
    }
}

/// Whatever shape of error a body carries: the command API's `error.code` or GraphQL's
/// `errors[0].extensions.code`, with a non-empty message.
fn error_code_of(body: &Value) -> Option<String> {
    if let Some(code) = body["error"]["code"].as_str() {
        let message = body["error"]["message"].as_str().unwrap_or_default();
        return (!message.is_empty()).then(|| code.to_string());
    }
    let error = &body["errors"][0];
    let message = error["message"].as_str().unwrap_or_default();
    error["extensions"]["code"]
        .as_str()
        .filter(|_| !message.is_empty())
        .map(str::to_string)
}

/// Checks one refused request: a 4xx (`statuses`), a clear error code, no internals, nothing
/// stored and a server that still answers. Returns the code.
async fn refused(
    app: &TestApp,
    what: &str,
    response: reqwest::Response,
    statuses: &[u16],
) -> String {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let shown = &body[..body.len().min(300)];
    assert!(statuses.contains(&status), "{what}: {status} {shown}");
    assert_no_internals(what, &body);
    let parsed: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{what}: {status} not JSON ({e}): {shown}"));
    let code = error_code_of(&parsed).unwrap_or_else(|| panic!("{what}: no error code: {shown}"));
    still_healthy(app, what).await;
    code
}

async fn still_healthy(app: &TestApp, what: &str) {
    let health = Client::new().get(app.url("/healthz")).send().await;
    assert!(
        health.is_ok_and(|r| r.status().is_success()),
        "{what}: the server stopped answering"
    );
}

async fn head(app: &TestApp) -> i64 {
    app.app.store.head().await.unwrap()
}

async fn graphql(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = Client::new()
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(status == 200 || status == 400, "{status}: {body}");
    assert_no_internals(query, &body);
    serde_json::from_str(&body).unwrap()
}

/// A GraphQL answer that must be refused with one of `codes`.
async fn graphql_refused(app: &TestApp, what: &str, query: &str, variables: Value, codes: &[&str]) {
    let answer = graphql(app, None, query, variables).await;
    let code = error_code_of(&answer).unwrap_or_else(|| {
        panic!(
            "{what}: no error code in {}",
            &answer.to_string()[..answer.to_string().len().min(300)]
        )
    });
    assert!(codes.contains(&code.as_str()), "{what}: {code}");
    still_healthy(app, what).await;
}

async fn start(db: &TestDatabase) -> TestApp {
    if db.backend == Backend::MySql {
        db.create_poster_bucket().await;
    }
    let app = db.spawn_app().await;
    app.project_in_process(db).await;
    app
}

async fn sql_injection_in_graphql_filters_matches_nothing(db: TestDatabase) {
    let app = start(&db).await;
    let token = app.signed_in("victim").await;
    let (movie, position) = app.add_movie_at(&token, "The Conversation").await;
    // Wait until the catalogue shows the movie, so an injection that matched everything would show.
    let seen = Client::new()
        .post(app.url("/graphql"))
        .header("x-min-position", position.to_string())
        .json(&json!({ "query": "{ movies { totalCount } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(seen["data"]["movies"]["totalCount"], 1, "{seen}");
    let before = head(&app).await;
    let query = "query($filter: MovieFilter) { movies(filter: $filter) { totalCount edges { node { id title } } } }";
    for injection in INJECTIONS {
        for field in ["search", "genre", "director"] {
            let answer =
                graphql(&app, None, query, json!({ "filter": { field: injection } })).await;
            assert!(
                answer.get("errors").is_none(),
                "{field} {injection:?}: {answer}"
            );
            assert_eq!(
                answer["data"]["movies"]["totalCount"], 0,
                "{field} {injection:?} matched: {answer}"
            );
            assert_eq!(answer["data"]["movies"]["edges"], json!([]));
            // Inlined into the document too, escaped as a GraphQL string.
            let inline = format!(
                "{{ movies(filter: {{ {field}: {} }}) {{ totalCount }} }}",
                serde_json::to_string(injection).unwrap()
            );
            let answer = graphql(&app, None, &inline, json!({})).await;
            assert_eq!(
                answer["data"]["movies"]["totalCount"], 0,
                "{inline}: {answer}"
            );
        }
        // `year` is an Int: a string is a validation error, never SQL.
        graphql_refused(
            &app,
            &format!("year {injection:?}"),
            query,
            json!({ "filter": { "year": injection } }),
            &["invalid_query"],
        )
        .await;
        // `movie(id:)` and `movieAsOf(id:)` take any string: unknown ids are null or refused.
        let answer = graphql(
            &app,
            None,
            "query($id: ID!) { movie(id: $id) { id title } }",
            json!({ "id": injection }),
        )
        .await;
        assert!(
            answer["data"]["movie"].is_null(),
            "movie({injection:?}): {answer}"
        );
        if answer.get("errors").is_some() {
            assert!(error_code_of(&answer).is_some(), "{answer}");
        }
        // The cursor too.
        let answer = graphql(
            &app,
            None,
            "query($after: String) { movies(after: $after) { totalCount } }",
            json!({ "after": injection }),
        )
        .await;
        assert_eq!(
            error_code_of(&answer).as_deref(),
            Some("bad_cursor"),
            "{answer}"
        );
    }
    // The year filter still works, and the movie is still there: no injection touched the data.
    let answer = graphql(
        &app,
        None,
        "{ movies(filter: { year: 1968, director: \"Stanley Kubrick\" }) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(answer["data"]["movies"]["edges"][0]["node"]["id"], movie);
    assert_eq!(head(&app).await, before, "reads stored nothing");
}

async fn sql_injection_and_traversal_in_route_ids_are_refused(db: TestDatabase) {
    let app = start(&db).await;
    let token = app.signed_in("target").await;
    let admin = app.signed_in_with_role("keeper", Role::Admin).await;
    let movie = app.add_movie(&token, "Blow-Up").await;
    let before = head(&app).await;
    let client = Client::new();
    let encode = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let mut ids: Vec<String> = INJECTIONS.iter().map(|s| encode(s)).collect();
    ids.extend(
        [
            "..%2F..%2Fetc%2Fpasswd",
            "%2e%2e%2f%2e%2e%2fmarquee.db",
            "%2E%2E%2F",
            "..%5C..%5Cwindows",
            "%252e%252e%252f",
            "%00",
            "x%00.png",
            "..%00",
        ]
        .map(String::from),
    );
    ids.push(format!("{movie}%00"));
    ids.push(format!("{movie}%2F..%2F..%2Fmarquee.db"));
    ids.push(format!("{movie}'%20OR%20'1'='1"));
    for id in &ids {
        let movie_routes = [
            (
                Method::PATCH,
                format!("/api/movies/{id}"),
                Some(json!({ "title": "Hijacked" })),
            ),
            (Method::DELETE, format!("/api/movies/{id}"), None),
            (Method::PUT, format!("/api/movies/{id}/poster"), None),
            (
                Method::POST,
                format!("/api/users/{id}/roles"),
                Some(json!({ "role": "admin" })),
            ),
            (Method::POST, format!("/api/users/{id}/unlock"), None),
            (
                Method::DELETE,
                format!("/api/admin/subscriptions/{id}"),
                None,
            ),
        ];
        for (method, path, body) in movie_routes {
            let bearer = if path.starts_with("/api/movies") {
                &token
            } else {
                &admin
            };
            let mut request = client
                .request(method.clone(), app.url(&path))
                .bearer_auth(bearer)
                .header("if-match", "\"1\"");
            request = match body {
                Some(body) => request.json(&body),
                None if path.ends_with("/poster") => request
                    .header("content-type", "image/png")
                    .body(b"\x89PNG\r\n\x1a\n".to_vec()),
                None => request,
            };
            let what = format!("{method} {path}");
            let response = request.send().await.unwrap();
            let code = refused(&app, &what, response, &[404]).await;
            assert_eq!(code, "not_found", "{what}");
            assert_eq!(head(&app).await, before, "{what} stored something");
        }
    }
    // Usernames in bodies: registration refuses them, sign-in fails like any wrong name.
    for injection in INJECTIONS {
        let what = format!("register {injection:?}");
        let response = client
            .post(app.url("/api/users"))
            .json(&json!({ "username": injection, "email": "x@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            refused(&app, &what, response, &[422]).await,
            "validation_failed"
        );
        let what = format!("sign in {injection:?}");
        let response = client
            .post(app.url("/api/sessions"))
            .json(&json!({ "username": injection, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let code = refused(&app, &what, response, &[401]).await;
        assert_eq!(code, "invalid_credentials", "{what}");
        assert_eq!(head(&app).await, before, "{what} stored something");
    }
    // The real movie is untouched.
    let events = app
        .app
        .store
        .read_stream(
            &marquee_tests::fixtures::movie_stream(movie.parse::<uuid::Uuid>().unwrap().into()),
            0,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

/// `{"title": [[[…]]]}` nested `depth` deep.
fn nested(depth: usize) -> String {
    format!("{{\"title\": {}1{}}}", "[".repeat(depth), "]".repeat(depth))
}

async fn oversized_nested_and_invalid_bodies_are_refused(db: TestDatabase) {
    let app = start(&db).await;
    let token = app.signed_in("flooder").await;
    let before = head(&app).await;
    let deep_object = format!("{}{{}}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let valid_movie = json!({
        "title": "x", "year": 1999, "director": "x", "genres": ["Drama"], "description": "d",
    })
    .to_string();
    // The bad bytes open the body, in its first key, so every route reads them first.
    let with_key = |key: &[u8]| [b"{\"".as_slice(), key, b"\": \"x\"}"].concat();
    let bad_utf8 = with_key(&[0xff, 0xfe, 0xc3, 0x28]);
    let overlong = with_key(&[0xc0, 0xaf]); // an overlong "/"
    let surrogate = with_key(&[0xed, 0xa0, 0x80]); // U+D800 in UTF-8
    let lone_escape = valid_movie.replace("\"x\"", "\"\\ud800\"");
    let huge_string = format!("{{\"title\": \"{}\"}}", "A".repeat(1024 * 1024));
    let many_keys = format!(
        "{{{}\"title\": \"x\"}}",
        (0..50_000)
            .map(|i| format!("\"k{i}\":0,"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("1 MiB string", huge_string.into_bytes(), &[413]),
        ("50 000 keys", many_keys.into_bytes(), &[413]),
        (
            "arrays 100 000 deep",
            nested(100_000).into_bytes(),
            &[400, 413],
        ),
        ("arrays 1 000 deep", nested(1_000).into_bytes(), &[400, 422]),
        (
            "objects 100 000 deep",
            deep_object.into_bytes(),
            &[400, 413],
        ),
        ("invalid UTF-8", bad_utf8, &[400]),
        ("overlong UTF-8", overlong, &[400]),
        ("UTF-8 surrogate", surrogate, &[400]),
        (
            "lone surrogate escape",
            lone_escape.into_bytes(),
            &[400, 422],
        ),
        ("NUL bytes", b"\0\0\0\0".to_vec(), &[400]),
        ("empty", Vec::new(), &[400]),
    ];
    for path in ["/api/movies", "/api/users", "/api/sessions"] {
        for (what, body, statuses) in &cases {
            let what = format!("POST {path}: {what}");
            let response = Client::new()
                .post(app.url(path))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let code = refused(&app, &what, response, statuses).await;
            assert!(
                ["malformed_json", "invalid_body", "payload_too_large"].contains(&code.as_str()),
                "{what}: {code}"
            );
            assert_eq!(head(&app).await, before, "{what} stored something");
        }
    }
    // Invalid UTF-8 and oversized documents on GraphQL.
    let mut bad_query = br#"{"query": "{ movies(filter: {search: \"x"#.to_vec();
    bad_query.extend_from_slice(&[0xff, 0xfe]);
    bad_query.extend_from_slice(br#"\"}) { totalCount } }"}"#);
    // Far past what the kernel buffers while the server answers: without the server reading the
    // rest, the client would get a broken pipe instead of the 413.
    let huge_query =
        json!({ "query": format!("{{ movies {{ totalCount }} }} #{}", "x".repeat(16 * 1024 * 1024)) })
            .to_string()
            .into_bytes();
    let nested_variables = format!(
        "{{\"query\": \"{{ movies {{ totalCount }} }}\", \"variables\": {{\"a\": {}1{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let batch = json!((0..1_000)
        .map(|_| json!({ "query": "{ movies { totalCount } }" }))
        .collect::<Vec<_>>())
    .to_string();
    for (what, body, status) in [
        ("invalid UTF-8", bad_query, 400),
        ("16 MiB document", huge_query, 413),
        ("variables 100 000 deep", nested_variables.into_bytes(), 400),
        ("a batch of 1 000", batch.into_bytes(), 400),
        ("not JSON", b"query { movies { totalCount } }".to_vec(), 400),
    ] {
        let response = Client::new()
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        refused(&app, &format!("POST /graphql: {what}"), response, &[status]).await;
    }
    assert_eq!(head(&app).await, before);
}

async fn graphql_bombs_are_refused(db: TestDatabase) {
    let app = start(&db).await;
    let node = "id title year director genres description";
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "fields { type { ofType { ".repeat(60),
        " } } }".repeat(60)
    );
    let aliases: String = (0..5_000)
        .map(|i| format!("m{i}: movies {{ totalCount }} "))
        .collect();
    let field_aliases: String = (0..5_000).map(|i| format!("t{i}: title ")).collect();
    let cycle = format!(
        "{{ movies {{ edges {{ node {{ ...A }} }} }} }}
         fragment A on Movie {{ {node} ...B }}
         fragment B on Movie {{ title ...A }}"
    );
    let self_cycle = "{ movies { edges { node { ...A } } } } fragment A on Movie { id ...A }";
    // Billion laughs: each level spreads the one below twice.
    let mut laughs = String::from("{ movies { edges { node { ...F0 } } } }\n");
    for level in 0..40 {
        laughs.push_str(&format!(
            "fragment F{level} on Movie {{ ...F{next} ...F{next} }}\n",
            next = level + 1
        ));
    }
    laughs.push_str(&format!("fragment F40 on Movie {{ {node} }}\n"));
    let spreads = format!(
        "{{ movies {{ edges {{ node {{ {} }} }} }} }} fragment F on Movie {{ {node} }}",
        "...F ".repeat(50_000)
    );
    let fragments: String = (0..5_000)
        .map(|i| format!("fragment F{i} on Movie {{ id }}\n"))
        .collect();
    let many_fragments = format!("{{ movies {{ edges {{ node {{ ...F0 }} }} }} }}\n{fragments}");
    let directives = format!(
        "{{ movies {{ totalCount {} }} }}",
        "@include(if: true) ".repeat(5_000)
    );
    let unclosed = "{ movies { ".repeat(10_000);
    let lists = format!(
        "{{ movies(filter: {{ search: {}\"x\"{} }}) {{ totalCount }} }}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let operations: String = (0..5_000)
        .map(|i| format!("query Q{i} {{ movies {{ totalCount }} }}\n"))
        .collect();
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("60 levels deep", deep, &["invalid_query"]),
        (
            "5 000 root aliases",
            format!("{{ {aliases} }}"),
            &["query_too_expensive", "invalid_query"],
        ),
        (
            "5 000 field aliases",
            format!("{{ movies {{ edges {{ node {{ {field_aliases} }} }} }} }}"),
            &["query_too_expensive", "invalid_query"],
        ),
        ("fragment cycle", cycle, &["invalid_query"]),
        (
            "self-spreading fragment",
            self_cycle.to_string(),
            &["invalid_query"],
        ),
        (
            "2^40 fragment spreads",
            laughs,
            &["invalid_query", "query_too_expensive"],
        ),
        (
            "50 000 spreads of one fragment",
            spreads,
            &["invalid_query", "query_too_expensive"],
        ),
        (
            "5 000 fragments",
            many_fragments,
            &["invalid_query", "query_too_expensive"],
        ),
        (
            "5 000 directives",
            directives,
            &["invalid_query", "query_too_expensive"],
        ),
        ("10 000 unclosed selections", unclosed, &["invalid_query"]),
        ("list nested 10 000 deep", lists, &["invalid_query"]),
        (
            "5 000 operations, none named",
            operations,
            &["invalid_query"],
        ),
    ];
    for (what, query, codes) in cases {
        let started = std::time::Instant::now();
        graphql_refused(&app, what, &query, json!({}), codes).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            started.elapsed()
        );
    }
    // Still serving ordinary queries.
    let answer = graphql(&app, None, "{ movies { totalCount } }", json!({})).await;
    assert_eq!(answer["data"]["movies"]["totalCount"], 0, "{answer}");
    assert_eq!(head(&app).await, 0);
}

/// Sends `request` as is over a fresh connection; returns the status (0 when the server closed
/// the connection without one) and the body.
async fn raw(app: &TestApp, request: Vec<u8>) -> (u16, String) {
    let address = app.base_url.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // The server may answer and close before it has read everything.
        let _ = stream.write_all(&request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).to_string();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

fn get_request(path: &[u8]) -> Vec<u8> {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(path);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    request
}

async fn huge_headers_and_raw_paths_are_refused(db: TestDatabase) {
    let app = start(&db).await;
    let token = app.signed_in("header").await;
    let movie = app.add_movie(&token, "Le Samouraï").await;
    let before = head(&app).await;
    let client = Client::new();
    // A header the server still reads: the request is judged on its merits.
    let response = client
        .post(app.url("/api/movies"))
        .bearer_auth(&token)
        .header("x-padding", "a".repeat(8 * 1024))
        .header("x-request-id", "r".repeat(8 * 1024))
        .header("user-agent", "u".repeat(8 * 1024))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(&app, "8 KiB headers", response, &[400]).await,
        "malformed_json"
    );
    // Headers past what the server reads: refused before any handler, nothing stored.
    for (what, headers) in [
        (
            "one 1 MiB header",
            format!("x-padding: {}\r\n", "a".repeat(1024 * 1024)),
        ),
        (
            "10 000 headers",
            (0..10_000).map(|i| format!("x-h{i}: v\r\n")).collect(),
        ),
        (
            "1 MiB bearer token",
            format!("authorization: Bearer {}\r\n", "t".repeat(1024 * 1024)),
        ),
    ] {
        let body = json!({ "title": "Smuggled", "year": 1999, "director": "x" }).to_string();
        let request = format!(
            "POST /api/movies HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, body) = raw(&app, request.into_bytes()).await;
        assert!(
            status == 0 || (400..500).contains(&status),
            "{what}: {status} {body}"
        );
        assert_no_internals(what, &body);
        assert_eq!(head(&app).await, before, "{what} stored something");
        still_healthy(&app, what).await;
    }
    // A client that waits for `100 Continue` before sending a body the server refuses unread is
    // answered at once and asked for nothing.
    let request = format!(
        "PUT /api/movies/{movie}/poster HTTP/1.1\r\nhost: localhost\r\ncontent-type: image/png\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        20 * 1024 * 1024
    );
    let (status, body) = raw(&app, request.into_bytes()).await;
    assert_eq!(status, 401, "expect 100-continue: {body}");
    assert!(body.contains("unauthenticated"), "{body}");
    // Traversal and NUL in raw request lines, past any client's normalisation.
    let paths: Vec<Vec<u8>> = vec![
        b"/posters/../marquee.db".to_vec(),
        b"/posters/../../../../etc/passwd".to_vec(),
        format!("/posters/{movie}/../../marquee.db").into_bytes(),
        b"/posters/..%2fmarquee.db".to_vec(),
        b"/posters/%2e%2e%2fmarquee.db".to_vec(),
        b"/posters/%2e%2e/%2e%2e/marquee.db".to_vec(),
        b"/posters/..%5cmarquee.db".to_vec(),
        b"/posters/%252e%252e%252fmarquee.db".to_vec(),
        b"/posters/marquee.db%00.png".to_vec(),
        b"/posters/%00".to_vec(),
        b"/posters//etc/passwd".to_vec(),
        b"/posters/x/..%2f..%2f..%2fetc%2fpasswd".to_vec(),
        b"/api/movies/../../etc/passwd".to_vec(),
    ];
    for path in &paths {
        let what = String::from_utf8_lossy(path).to_string();
        let (status, body) = raw(&app, get_request(path)).await;
        assert!((400..500).contains(&status), "{what}: {status} {body}");
        assert!(
            !body.contains("root:") && !body.contains("SQLite format"),
            "{what}: {body}"
        );
        assert_no_internals(&what, &body);
        let parsed: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {status} {body}"));
        assert!(error_code_of(&parsed).is_some(), "{what}: {body}");
    }
    // A literal NUL or control byte in the request line is not HTTP at all.
    for path in [
        &b"/posters/\0.png"[..],
        b"/api/movies/\0",
        b"/posters/a\r\nx: y",
    ] {
        let what = String::from_utf8_lossy(path).to_string();
        let (status, body) = raw(&app, get_request(path)).await;
        assert!(
            status == 0 || (400..500).contains(&status),
            "{what}: {status} {body}"
        );
        assert_no_internals(&what, &body);
        still_healthy(&app, &what).await;
    }
    assert_eq!(head(&app).await, before);
}

async fn lying_images_are_refused(db: TestDatabase) {
    let app = start(&db).await;
    let token = app.signed_in("forger").await;
    let movie = app.add_movie(&token, "F for Fake").await;
    let before = head(&app).await;
    let mut png_garbage = b"\x89PNG\r\n\x1a\n".to_vec();
    png_garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let html = b"<html><body><script>alert(document.cookie)</script></body></html>";
    let mut polyglot = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
    polyglot.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    polyglot.extend_from_slice(&[0xff, 0xfe]); // a comment segment holding the page
    polyglot.extend_from_slice(&((html.len() + 2) as u16).to_be_bytes());
    polyglot.extend_from_slice(html);
    polyglot.extend_from_slice(&[0xff, 0xd9]);
    let mut html_then_png = html.to_vec();
    html_then_png.extend_from_slice(&png_declaring(1, 1));
    let mut bad_crc = png_declaring(10, 10);
    bad_crc[29] ^= 0xff;
    // A real 1×1 PNG's IDAT claimed by a 100 000 × 100 000 header: 40 GB decoded.
    let bomb = png_declaring(100_000, 100_000);
    // Inside the byte limit, past the pixel limit: 8 000 × 8 000 is 64 megapixels.
    let wide = png_declaring(8_000, 8_000);
    let zero = png_declaring(0, 0);
    let max = png_declaring(u32::MAX, u32::MAX);
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec();
    let gif = b"GIF89a\x01\0\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\0;".to_vec();
    let cases: Vec<(&str, &str, Vec<u8>, &[u16])> = vec![
        (
            "PNG magic then garbage",
            "image/png",
            png_garbage.clone(),
            &[415, 422],
        ),
        (
            "PNG magic then garbage, as JPEG",
            "image/jpeg",
            png_garbage,
            &[415, 422],
        ),
        (
            "JPEG/HTML polyglot",
            "image/jpeg",
            polyglot.clone(),
            &[415, 422],
        ),
        ("JPEG/HTML polyglot, as HTML", "text/html", polyglot, &[415]),
        ("HTML then PNG", "image/png", html_then_png, &[415, 422]),
        ("PNG with a bad CRC", "image/png", bad_crc, &[415, 422]),
        ("100 000 × 100 000 PNG", "image/png", bomb, &[422]),
        ("64 megapixel PNG", "image/png", wide, &[413, 422]),
        ("0 × 0 PNG", "image/png", zero, &[415, 422]),
        ("2^32 × 2^32 PNG", "image/png", max, &[413, 415, 422]),
        ("SVG with script", "image/svg+xml", svg.clone(), &[415]),
        ("SVG with script, as PNG", "image/png", svg, &[415, 422]),
        ("GIF as PNG", "image/png", gif, &[415, 422]),
    ];
    for (what, content_type, body, statuses) in cases {
        let started = std::time::Instant::now();
        let response = Client::new()
            .put(app.url(&format!("/api/movies/{movie}/poster")))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let code = refused(&app, what, response, statuses).await;
        let expected: &[&str] = if ["100 000", "megapixel", "2^32"]
            .iter()
            .any(|size| what.contains(size))
        {
            &["image_too_large", "undecodable_image"]
        } else {
            &["unsupported_media_type", "undecodable_image"]
        };
        assert!(expected.contains(&code.as_str()), "{what}: {code}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            started.elapsed()
        );
        assert_eq!(head(&app).await, before, "{what} stored something");
    }
    if db.backend == Backend::MySql {
        let objects = marquee_tests::s3_client()
            .await
            .list_objects_v2()
            .bucket(db.poster_bucket().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(objects.key_count(), Some(0), "nothing reached the bucket");
    } else {
        let dir = db.settings().data_dir.join("posters");
        let stored = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(stored, 0, "nothing reached {}", dir.display());
    }
}

/// The code of the first error in a subscription's `next` message.
fn subscription_error_code(message: &Value) -> Option<&str> {
    message["payload"]["errors"][0]["extensions"]["code"].as_str()
}

/// graphql-transport-ws abuse: hostile documents answered with an error on a socket that goes
/// on serving, up to its bound on subscriptions; broken frames, a frame over the 1 MiB bound, a subscribe before the handshake
/// and a forged token end the socket with a close frame and nothing else.
async fn hostile_websocket_messages_are_refused(db: TestDatabase) {
    let app = start(&db).await;
    let before = head(&app).await;
    let node = "id title";
    let cycle = format!(
        "subscription {{ movieChanged {{ movie {{ ...A }} }} }}
         fragment A on Movie {{ {node} ...B }}
         fragment B on Movie {{ title ...A }}"
    );
    let aliases: String = (0..5_000)
        .map(|i| format!("m{i}: movieChanged {{ position }} "))
        .collect();
    let unclosed = format!("subscription {}", "{ movieChanged { ".repeat(10_000));
    let mut socket = Socket::connect(&app, json!({})).await;
    let documents: Vec<(&str, String, &[&str])> = vec![
        ("fragment cycle", cycle, &["invalid_query"]),
        (
            "5 000 aliases",
            format!("subscription {{ {aliases} }}"),
            &["query_too_expensive", "invalid_query"],
        ),
        ("10 000 unclosed selections", unclosed, &["invalid_query"]),
        (
            "an auditor's field, anonymously",
            "subscription { eventAppended { position payload } }".into(),
            &["unauthenticated"],
        ),
    ];
    for (n, (what, query, codes)) in documents.into_iter().enumerate() {
        let id = format!("hostile-{n}");
        socket.subscribe(&id, &query).await;
        let answer = socket.next().await;
        assert_eq!(answer["id"], id.as_str(), "{what}: {answer}");
        let code = subscription_error_code(&answer)
            .unwrap_or_else(|| panic!("{what}: no error code in {answer}"));
        assert!(codes.contains(&code), "{what}: {code} in {answer}");
        assert_no_internals(what, &answer.to_string());
        let complete = socket.next().await;
        assert_eq!(complete, json!({ "id": id, "type": "complete" }), "{what}");
    }
    // SQL in an argument is a value like any other: the subscription stands and matches nothing.
    for (n, injection) in INJECTIONS.iter().enumerate() {
        let query = format!(
            "subscription {{ movieChanged(id: {}) {{ position }} }}",
            json!(injection)
        );
        socket.subscribe(&format!("injection-{n}"), &query).await;
    }
    socket.send(json!({ "type": "ping" })).await;
    let pong = socket.next().await;
    assert_eq!(pong["type"], "pong", "the socket still serves: {pong}");
    // The refused documents were completed by the server and hold nothing; the injections
    // stand. Up to the bound, the socket serves; one more closes it.
    let standing = INJECTIONS.len();
    let flood = "subscription { movieChanged { position } }";
    for n in standing..MAX_SUBSCRIPTIONS_PER_SOCKET {
        socket.subscribe(&format!("flood-{n}"), flood).await;
    }
    socket.send(json!({ "type": "ping" })).await;
    let pong = socket.next().await;
    assert_eq!(
        pong["type"], "pong",
        "{MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions: {pong}"
    );
    socket.subscribe("one-too-many", flood).await;
    let (close, messages) = socket.closed().await;
    assert!(messages.is_empty(), "answered before closing: {messages:?}");
    let close = close.expect("a close frame for one subscription too many");
    assert_eq!(u16::from(close.code), 4429, "{close:?}");
    assert!(close.reason.contains("subscriptions"), "{close:?}");

    let oversized = "x".repeat(2 * 1024 * 1024);
    let broken: Vec<(&str, bool, Message)> = vec![
        ("not JSON", true, Message::Text("{not json".into())),
        (
            "JSON that is no protocol message",
            true,
            Message::Text(json!({ "type": "drop_tables" }).to_string().into()),
        ),
        (
            "invalid UTF-8 in a binary frame",
            true,
            Message::Binary(vec![0xff, 0xfe, b'{', 0xc3, 0x28].into()),
        ),
        (
            "a 2 MiB frame",
            true,
            Message::Text(
                json!({ "type": "subscribe", "id": "big", "payload": { "query": oversized } })
                    .to_string()
                    .into(),
            ),
        ),
        (
            "subscribe before connection_init",
            false,
            Message::Text(
                json!({ "type": "subscribe", "id": "early",
                        "payload": { "query": "subscription { movieChanged { position } }" } })
                .to_string()
                .into(),
            ),
        ),
        (
            "a forged token at connection_init",
            false,
            Message::Text(
                json!({ "type": "connection_init",
                        "payload": { "authorization": "Bearer ' OR '1'='1" } })
                .to_string()
                .into(),
            ),
        ),
    ];
    for (what, after_handshake, message) in broken {
        let mut socket = if after_handshake {
            Socket::connect(&app, json!({})).await
        } else {
            Socket::open(&app).await
        };
        let _ = socket.send_raw(message).await;
        let (close, messages) = socket.closed().await;
        assert!(
            messages.is_empty(),
            "{what}: answered before closing: {messages:?}"
        );
        if let Some(frame) = close {
            assert_ne!(
                u16::from(frame.code),
                1000,
                "{what}: closed as if all was well"
            );
            assert_no_internals(what, &frame.reason);
        }
        still_healthy(&app, what).await;
    }
    assert_eq!(head(&app).await, before, "nothing stored");
}
