//! Secrets never reach the log or an answer (issue 8). The real `marquee serve`, logging all it
//! can (`MARQUEE_LOG=trace`: text on SQLite, JSON on the aws profile, whose database user has a
//! password), is driven through registrations, right and wrong sign-ins up to a lockout, bearer
//! and cookie sessions, sign-out, passkey options, GraphQL, admin routes and malformed bodies
//! carrying a password. Then its whole log and every answer are searched for each password, any
//! argon2 hash, each session token, a session cookie's value, the database password and the AWS
//! secret key. The history as others read it too: GraphQL `events` as an auditor, `marquee
//! events` in JSON Lines and CSV, and on the aws profile the relay's messages on SNS, each with
//! every `UserRegistered` there and its `password_hash` as the marker; `marquee verify` still
//! passes, the store keeping the hash.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use command_api::SESSION_COOKIE;
use domain::{MAX_FAILED_SIGN_INS, REDACTED};
use event_store::RecordedEvent;
use marquee_tests::{
    free_port, moto, on_both_backends, signed_in_at, Backend, TestDatabase, PASSWORD,
};
use projectors::aws::{SnsFifoPublisher, Topology};
use projectors::Relay;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};

on_both_backends!(no_secret_reaches_the_log_or_an_answer);

/// Everyone the test registers: its two users and the operator's admin.
const REGISTERED: [&str; 3] = ["alice", "bob", "boss"];

/// Checks that `payloads` (of `UserRegistered`, read from `what`) are one per registered user,
/// each with its password hash as the marker.
fn assert_registrations_redacted(what: &str, payloads: &[Value]) {
    let mut usernames: Vec<&str> = payloads
        .iter()
        .map(|payload| payload["username"].as_str().unwrap_or_default())
        .collect();
    usernames.sort_unstable();
    assert_eq!(usernames, REGISTERED, "{what}: {payloads:?}");
    for payload in payloads {
        assert_eq!(payload["password_hash"], REDACTED, "{what}: {payload}");
    }
}

/// A value no log line or answer may hold, and what it is.
struct Secret {
    what: String,
    value: String,
}

/// Everything the test must not see again once handed over.
#[derive(Default)]
struct Secrets {
    /// Passwords, the database password, the AWS secret key.
    kept: Vec<Secret>,
    /// Session tokens: an answer that opens a session carries its own, and nothing else may.
    tokens: Vec<Secret>,
}

impl Secrets {
    fn keep(&mut self, what: impl Into<String>, value: &str) {
        self.kept.push(Secret {
            what: what.into(),
            value: value.to_string(),
        });
    }

    /// A fresh, recognisable secret (letters, digits and hyphens, so a JSON log writes it as is).
    fn new_password(&mut self, what: &str) -> String {
        let password = format!("{what}-{}", uuid::Uuid::new_v4().simple());
        self.keep(format!("the password {password:?}"), &password);
        password
    }

    /// Where `text` gives a secret away, one finding per line.
    fn findings(&self, source: &str, text: &str, opens_a_session: bool) -> Vec<String> {
        let tokens = if opens_a_session {
            &[][..]
        } else {
            &self.tokens
        };
        let mut findings = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let mut leaked: Vec<&str> = self
                .kept
                .iter()
                .chain(tokens)
                .filter(|secret| line.contains(&secret.value))
                .map(|secret| secret.what.as_str())
                .collect();
            if line.contains("$argon2") {
                leaked.push("an argon2 hash");
            }
            if holds_a_session_cookie(line) {
                leaked.push("a session cookie's value");
            }
            for what in leaked {
                findings.push(format!("{what} in {source}, line {}: {line}", number + 1));
            }
        }
        findings
    }
}

/// `marquee_session=` followed by a value (a cleared cookie has none).
fn holds_a_session_cookie(line: &str) -> bool {
    let name = format!("{SESSION_COOKIE}=");
    line.match_indices(&name).any(|(at, _)| {
        line[at + name.len()..]
            .chars()
            .next()
            .is_some_and(|next| !matches!(next, ';' | '"' | '\\') && !next.is_whitespace())
    })
}

/// One answer the server gave.
struct Answer {
    request: String,
    status: StatusCode,
    body: String,
    opens_a_session: bool,
}

/// Drives the server and keeps every answer it gives.
struct Driver {
    base: String,
    client: Client,
    answers: Vec<Answer>,
}

impl Driver {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request` and expects `status`; returns the body.
    async fn send(&mut self, what: &str, request: RequestBuilder, status: u16) -> String {
        let response = request.send().await.unwrap();
        let got = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(got, status, "{what}: {body}");
        self.answers.push(Answer {
            request: what.to_string(),
            status: got,
            body: body.clone(),
            opens_a_session: false,
        });
        body
    }

    async fn register(&mut self, username: &str, password: &str) {
        let request = self.client.post(self.url("/api/users")).json(&json!({
            "username": username, "email": format!("{username}@example.com"), "password": password,
        }));
        self.send(&format!("register {username}"), request, 201)
            .await;
    }

    /// A sign-in that succeeds; its token (in the body and the cookie) is added to `secrets`.
    async fn sign_in(&mut self, username: &str, password: &str, secrets: &mut Secrets) -> String {
        let response = self
            .client
            .post(self.url("/api/sessions"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "sign in {username}: {body}");
        let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.starts_with(&format!("{SESSION_COOKIE}={token};")),
            "{cookie}"
        );
        secrets.tokens.push(Secret {
            what: format!("{username}'s session token"),
            value: token.clone(),
        });
        self.answers.push(Answer {
            request: format!("sign in {username}"),
            status,
            body,
            opens_a_session: true,
        });
        token
    }

    /// A sign-in that is refused with `code`.
    async fn refused_sign_in(&mut self, username: &str, password: &str, code: &str) {
        let request = self
            .client
            .post(self.url("/api/sessions"))
            .json(&json!({ "username": username, "password": password }));
        let body = self
            .send(&format!("sign in {username}, refused"), request, 401)
            .await;
        assert!(body.contains(code), "{body}");
    }

    /// A request carrying `token` as the session cookie, from the site's own pages.
    fn with_cookie(&self, request: RequestBuilder, token: &str) -> RequestBuilder {
        request
            .header("cookie", format!("{SESSION_COOKIE}={token}"))
            .header("origin", &self.base)
    }

    fn graphql(&self, query: &str) -> RequestBuilder {
        self.client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query }))
    }

    fn new_movie(&self) -> RequestBuilder {
        self.client.post(self.url("/api/movies")).json(&json!({
            "title": "The Conversation", "year": 1974, "director": "Francis Ford Coppola",
        }))
    }
}

/// A database user with a password for this test's database (users outlive databases, so the
/// caller drops it); returns its name, password and DATABASE_URL.
async fn database_user(db: &TestDatabase) -> (String, String, String) {
    let database = db.url.rsplit('/').next().unwrap().to_string();
    let user = format!("secrets_{}", &database[database.len() - 12..]);
    let password = format!("db-password-{}", uuid::Uuid::new_v4().simple());
    db.execute(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .await;
    db.execute(&format!(
        "GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'"
    ))
    .await;
    let server = marquee_tests::mysql_server_url();
    let host = server.rsplit('@').next().unwrap();
    let url = format!("mysql://{user}:{password}@{host}/{database}");
    (user, password, url)
}

/// Stops `serve` with SIGTERM, as an operator does, so its log is complete.
async fn stop(mut serve: tokio::process::Child, log: &Path) {
    let pid = serve.id().expect("serve is running").to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    tokio::time::timeout(Duration::from_secs(30), serve.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "serve did not stop after SIGTERM; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
        .unwrap();
}

/// Everything a client does that hands the server a secret, and the answers it gets back.
async fn drive(driver: &mut Driver, db: &TestDatabase, secrets: &mut Secrets) {
    let alice_password = secrets.new_password("alice-sesame");
    let bob_password = secrets.new_password("bob-sesame");
    driver.register("alice", &alice_password).await;
    driver.register("bob", &bob_password).await;
    let taken = driver.client.post(driver.url("/api/users")).json(&json!({
        "username": "alice", "email": "alice@example.com",
        "password": secrets.new_password("second-alice"),
    }));
    driver.send("register alice again", taken, 409).await;
    // One character too short, so distinctive by its own few random ones.
    let short = format!("short{}", &uuid::Uuid::new_v4().simple().to_string()[..4]);
    secrets.keep("a too-short password", &short);
    let too_short = driver.client.post(driver.url("/api/users")).json(&json!({
        "username": "carol", "email": "carol@example.com", "password": short,
    }));
    driver
        .send("register with a short password", too_short, 422)
        .await;

    let alice = driver.sign_in("alice", &alice_password, secrets).await;
    let wrong = secrets.new_password("alice-wrong");
    driver
        .refused_sign_in("alice", &wrong, "invalid_credentials")
        .await;
    // A password typed into the username field, and a user that does not exist.
    driver
        .refused_sign_in(&alice_password, &alice_password, "invalid_credentials")
        .await;
    let nobody = secrets.new_password("nobody");
    driver
        .refused_sign_in("nobody", &nobody, "invalid_credentials")
        .await;
    for attempt in 1..MAX_FAILED_SIGN_INS {
        let wrong = secrets.new_password(&format!("bob-wrong-{attempt}"));
        driver
            .refused_sign_in("bob", &wrong, "invalid_credentials")
            .await;
    }
    let locking = secrets.new_password("bob-wrong-locking");
    driver
        .refused_sign_in("bob", &locking, "account_locked")
        .await;
    driver
        .refused_sign_in("bob", &bob_password, "account_locked")
        .await;

    // The operator's admin, whose password is the fixtures' own.
    secrets.keep("the fixtures' password", PASSWORD);
    let first = signed_in_at(&driver.base, "boss").await;
    secrets.tokens.push(Secret {
        what: "boss's first session token".into(),
        value: first,
    });
    let granted = db.marquee(&["user", "grant-role", "boss", "admin"]);
    assert!(granted.status.success(), "{granted:?}");
    let admin = driver.sign_in("boss", PASSWORD, secrets).await;
    let unlock = driver
        .client
        .post(driver.url("/api/users/bob/unlock"))
        .bearer_auth(&admin);
    driver.send("unlock bob", unlock, 200).await;
    let bob = driver.sign_in("bob", &bob_password, secrets).await;
    let grant = driver
        .client
        .post(driver.url("/api/users/alice/roles"))
        .bearer_auth(&admin)
        .json(&json!({ "role": "auditor" }));
    driver.send("grant alice auditor", grant, 200).await;
    let subscribe = driver
        .client
        .post(driver.url("/api/admin/subscriptions"))
        .bearer_auth(&admin)
        .json(&json!({ "topic": "alerts", "protocol": "email", "endpoint": "oncall@example.com" }));
    driver.send("create a subscription", subscribe, 201).await;
    let list = driver
        .client
        .get(driver.url("/api/admin/subscriptions"))
        .bearer_auth(&admin);
    driver.send("list subscriptions", list, 200).await;
    let not_admin = driver
        .client
        .get(driver.url("/api/admin/subscriptions"))
        .bearer_auth(&bob);
    driver
        .send("list subscriptions as bob", not_admin, 403)
        .await;
    let stats = driver.graphql("{ stats { movies } }").bearer_auth(&admin);
    driver.send("GraphQL stats as admin", stats, 200).await;

    let by_bearer = driver.new_movie().bearer_auth(&alice);
    let added = driver.send("add a movie by bearer", by_bearer, 201).await;
    let movie = serde_json::from_str::<Value>(&added).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let edit = driver
        .client
        .patch(driver.url(&format!("/api/movies/{movie}")))
        .bearer_auth(&alice)
        .header("if-match", "\"1\"")
        .json(&json!({ "title": "The Conversation (1974)" }));
    driver.send("edit the movie by bearer", edit, 200).await;
    let stale_edit = driver
        .client
        .patch(driver.url(&format!("/api/movies/{movie}")))
        .bearer_auth(&alice)
        .header("if-match", "\"1\"")
        .json(&json!({ "title": "The Conversation, again" }));
    driver.send("edit a stale version", stale_edit, 409).await;
    let by_cookie = driver.with_cookie(driver.new_movie(), &alice);
    driver.send("add a movie by cookie", by_cookie, 201).await;
    let cross_site = driver
        .new_movie()
        .header("cookie", format!("{SESSION_COOKIE}={alice}"));
    driver
        .send("add a movie by cookie from another site", cross_site, 403)
        .await;
    let passkey = driver
        .client
        .post(driver.url("/api/passkeys/registration/options"))
        .bearer_auth(&alice);
    driver
        .send("passkey registration options", passkey, 200)
        .await;
    let me_by_bearer = driver
        .graphql("{ me { username email roles } }")
        .bearer_auth(&alice);
    driver.send("GraphQL me by bearer", me_by_bearer, 200).await;
    let me_by_cookie = driver.with_cookie(driver.graphql("{ me { username } }"), &alice);
    driver.send("GraphQL me by cookie", me_by_cookie, 200).await;
    let forbidden = driver.graphql("{ stats { movies } }").bearer_auth(&alice);
    driver
        .send("GraphQL stats as an auditor", forbidden, 200)
        .await;
    let history = driver
        .graphql(
            r#"{ events(first: 100, eventTypes: ["UserRegistered"]) {
                edges { node { eventType payload hash } } } }"#,
        )
        .bearer_auth(&alice);
    let history = driver
        .send("GraphQL events as an auditor", history, 200)
        .await;
    let history: Value = serde_json::from_str(&history).unwrap();
    assert!(history.get("errors").is_none(), "{history}");
    let payloads: Vec<Value> = history["data"]["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["payload"].clone())
        .collect();
    assert_registrations_redacted("GraphQL events", &payloads);

    for (what, body) in [
        (
            "cut short",
            format!(r#"{{"username": "alice", "password": "{alice_password}""#),
        ),
        (
            "single-quoted",
            format!(r#"{{"username": "alice", "password": '{alice_password}'}}"#),
        ),
        (
            "a trailing comma",
            format!(r#"{{"username": "alice", "password": "{alice_password}",}}"#),
        ),
        (
            "a bad escape",
            format!(r#"{{"username": "alice", "password": "\q{alice_password}"}}"#),
        ),
    ] {
        let malformed = driver
            .client
            .post(driver.url("/api/sessions"))
            .header("content-type", "application/json")
            .body(body);
        driver
            .send(&format!("sign in with JSON {what}"), malformed, 400)
            .await;
    }
    let mistyped = driver.client.post(driver.url("/api/users")).json(&json!({
        "username": "dave", "email": 42, "password": secrets.new_password("dave"),
    }));
    driver
        .send("register with a mistyped email", mistyped, 422)
        .await;
    let malformed_graphql = driver
        .client
        .post(driver.url("/graphql"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"query": "{{ me {{ id }} }}", "variables": {{"password": "{alice_password}""#
        ));
    driver
        .send("GraphQL with JSON cut short", malformed_graphql, 400)
        .await;

    let sign_out = driver.with_cookie(driver.client.delete(driver.url("/api/sessions")), &alice);
    driver.send("sign out by cookie", sign_out, 204).await;
    let after_sign_out = driver.new_movie().bearer_auth(&alice);
    driver
        .send("add a movie after signing out", after_sign_out, 401)
        .await;
    let me_after = driver.graphql("{ me { username } }").bearer_auth(&alice);
    driver
        .send("GraphQL me after signing out", me_after, 200)
        .await;
    let passkey_sign_in = driver
        .client
        .post(driver.url("/api/passkeys/authentication/options"))
        .bearer_auth(&alice)
        .json(&json!({ "username": "alice" }));
    driver
        .send("passkey authentication options", passkey_sign_in, 200)
        .await;
    let sign_out = driver
        .client
        .delete(driver.url("/api/sessions"))
        .bearer_auth(&bob);
    driver.send("sign out by bearer", sign_out, 204).await;
}

async fn no_secret_reaches_the_log_or_an_answer(db: TestDatabase) {
    let mut secrets = Secrets::default();
    let aws_secret = format!("aws-secret-{}", uuid::Uuid::new_v4().simple());
    secrets.keep("AWS_SECRET_ACCESS_KEY", &aws_secret);
    let mut env = vec![
        ("MARQUEE_LOG", "trace".to_string()),
        ("MARQUEE_SIGN_IN_RATE", "1000".to_string()),
        ("AWS_SECRET_ACCESS_KEY", aws_secret),
        ("NO_COLOR", "1".to_string()),
    ];
    let migrated = db.marquee(&["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let mut database_user_name = None;
    if db.backend == Backend::MySql {
        db.create_poster_bucket().await;
        let provisioned = db.marquee(&["provision"]);
        assert!(provisioned.status.success(), "{provisioned:?}");
        let (user, password, url) = database_user(&db).await;
        secrets.keep("the DATABASE_URL password", &password);
        // A start refused for a wrong password must not print the right one or the wrong one.
        let wrong = secrets.new_password("db-wrong");
        let refused = std::process::Command::new(marquee_tests::marquee_binary())
            .arg("migrate")
            .envs(db.env())
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .env("DATABASE_URL", url.replace(&password, &wrong))
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{refused:?}");
        std::fs::write(&log, [refused.stdout, refused.stderr].concat()).unwrap();
        env.push(("DATABASE_URL", url));
        database_user_name = Some(user);
    }
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let port = free_port();
    let serve = db.serve_binary_with(port, &log, &env).await;
    let mut driver = Driver {
        base: format!("http://127.0.0.1:{port}"),
        client: Client::new(),
        answers: Vec::new(),
    };
    drive(&mut driver, &db, &mut secrets).await;
    stop(serve, &log).await;
    if let Some(user) = database_user_name {
        db.execute(&format!("DROP USER '{user}'@'%'")).await;
    }
    let mut history = Vec::new();
    for format in ["jsonl", "csv"] {
        let exported = db.marquee(&["events", "--format", format]);
        assert!(exported.status.success(), "{exported:?}");
        let text = String::from_utf8(exported.stdout).unwrap();
        let payloads: Vec<Value> = text
            .lines()
            .filter(|line| line.contains("UserRegistered"))
            .map(|line| match format {
                "jsonl" => serde_json::from_str::<Value>(line).unwrap()["payload"].clone(),
                // position, eventId, aggregateType, aggregateId, sequence, eventType,
                // schemaVersion, payload, …
                _ => serde_json::from_str(&csv_cells(line)[7]).unwrap(),
            })
            .collect();
        assert_registrations_redacted(&format!("the {format} export"), &payloads);
        history.push((format!("the {format} export"), text));
    }
    if db.backend == Backend::MySql {
        history.push(("the relay's messages".into(), relayed(&db).await));
    }
    let verified = db.marquee(&["verify"]);
    assert!(
        verified.status.success(),
        "the store still holds what it hashed: {verified:?}"
    );

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        ["TRACE", "DEBUG"]
            .iter()
            .all(|level| logged.contains(level)),
        "the log has no debug and trace lines to search:\n{logged}"
    );
    assert!(
        logged.contains("/api/sessions"),
        "the requests are not in the log:\n{logged}"
    );
    let mut findings = secrets.findings("the serve log", &logged, false);
    for answer in &driver.answers {
        let source = format!("the answer to {} ({})", answer.request, answer.status);
        findings.extend(secrets.findings(&source, &answer.body, answer.opens_a_session));
    }
    for (source, text) in &history {
        findings.extend(secrets.findings(source, text, false));
    }
    assert!(
        findings.is_empty(),
        "secrets given away:\n{}",
        findings.join("\n")
    );
}

/// Relays the whole store to this test's SNS topic as `marquee relay` does, then returns every
/// message moto recorded on it, one a line, after checking its registrations.
async fn relayed(db: &TestDatabase) -> String {
    let config = moto::sdk_config().await;
    let topology = Topology::new(db.sns_topic_prefix());
    let publisher = SnsFifoPublisher::connect(&config, &topology).await.unwrap();
    let relay = Relay::new(db.store().await, Arc::new(publisher), 100);
    while relay.run_once().await.unwrap() > 0 {}
    let messages: Vec<String> = moto::published(&topology.events_topic())
        .await
        .iter()
        .map(|sent| sent[1].as_str().unwrap().to_string())
        .collect();
    let payloads: Vec<Value> = messages
        .iter()
        .map(|message| serde_json::from_str::<RecordedEvent>(message).unwrap())
        .filter(|event| event.event_type == "UserRegistered")
        .map(|event| event.payload)
        .collect();
    assert_registrations_redacted("the relay's messages", &payloads);
    messages.join("\n")
}

/// The cells of one CSV line as `marquee events --format csv` writes it (RFC 4180: a quoted
/// cell doubles its quotes; the export's lines hold no line breaks).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}
