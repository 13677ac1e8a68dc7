//! Every route of the command API against every role, and against sessions that ended (signed
//! out, or past their expiry) sent as bearer token and as cookie: one table, checked on both
//! backends. GraphQL's guarded fields and `me` get the same callers.

use std::collections::HashMap;

use chrono::{TimeDelta, Utc};
use command_api::SESSION_COOKIE;
use domain::{Role, MAX_FAILED_SIGN_INS};
use event_store::format_timestamp;
use marquee_tests::{fixtures, on_both_backends, TestApp, TestDatabase, PASSWORD};
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

on_both_backends!(
    every_route_answers_every_role_as_the_contract_says,
    graphql_refuses_ended_sessions,
);

/// The accounts `World` signs in, one per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Account {
    User,
    Admin,
    Auditor,
}

const ACCOUNTS: [Account; 3] = [Account::User, Account::Admin, Account::Auditor];

impl Account {
    fn username(self) -> &'static str {
        match self {
            Account::User => "plain",
            Account::Admin => "boss",
            Account::Auditor => "checker",
        }
    }
}

/// How a session stopped working before it was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ended {
    SignedOut,
    Expired,
}

/// Where the request carries the token.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Carrier {
    Bearer,
    Cookie,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Anonymous,
    /// With a session of its own, opened just before the request, as a bearer token.
    SignedIn(Account),
    /// With a session that ended.
    Stale(Account, Ended, Carrier),
}

/// Anonymous, each account signed in, then each account's ended sessions both ways.
fn callers() -> Vec<Caller> {
    let mut callers = vec![Caller::Anonymous];
    callers.extend(ACCOUNTS.map(Caller::SignedIn));
    for account in ACCOUNTS {
        for ended in [Ended::SignedOut, Ended::Expired] {
            for carrier in [Carrier::Bearer, Carrier::Cookie] {
                callers.push(Caller::Stale(account, ended, carrier));
            }
        }
    }
    callers
}

/// The statuses of anonymous, user, admin and auditor callers, in that order.
struct Case {
    name: &'static str,
    expected: [u16; 4],
}

impl Case {
    /// A stale session is answered exactly as no session is: 401 where the route needs one,
    /// and the routes open to anyone (register, sign in, passkey sign-in) ignore the token, so
    /// that a browser still holding an ended session's cookie can sign in again.
    fn expected_for(&self, caller: Caller) -> u16 {
        match caller {
            Caller::Anonymous | Caller::Stale(..) => self.expected[0],
            Caller::SignedIn(Account::User) => self.expected[1],
            Caller::SignedIn(Account::Admin) => self.expected[2],
            Caller::SignedIn(Account::Auditor) => self.expected[3],
        }
    }
}

const SIGNED_IN: [u16; 4] = [401, 200, 200, 200];
const ADMIN_ONLY: [u16; 4] = [401, 403, 200, 403];

fn tiny_png() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(4, 3, image::Rgb([200, 30, 30]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A well-formed WebAuthn attestation that no ceremony asked for.
fn stray_attestation() -> Value {
    json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": { "attestationObject": "AAAA", "clientDataJSON": "AAAA" },
    })
}

/// A well-formed WebAuthn assertion that no ceremony asked for.
fn stray_assertion() -> Value {
    json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": { "authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA" },
    })
}

struct World {
    app: TestApp,
    admin_token: String,
    /// One ended session per account and way of ending.
    stale_tokens: HashMap<(Account, Ended), String>,
}

impl World {
    async fn new(db: &TestDatabase) -> Self {
        if db.poster_bucket().is_some() {
            db.create_poster_bucket().await;
        }
        let app = db.spawn_app().await;
        app.signed_in(Account::User.username()).await;
        app.signed_in_with_role(Account::Auditor.username(), Role::Auditor)
            .await;
        let admin_token = app
            .signed_in_with_role(Account::Admin.username(), Role::Admin)
            .await;
        let mut stale_tokens = HashMap::new();
        for account in ACCOUNTS {
            for ended in [Ended::SignedOut, Ended::Expired] {
                let token = app.sign_in(account.username()).await;
                end_session(db, &app, &token, ended).await;
                stale_tokens.insert((account, ended), token);
            }
        }
        Self {
            app,
            admin_token,
            stale_tokens,
        }
    }

    /// A request as `caller`, with a fresh session so that signing out spoils no other case.
    async fn request(&self, caller: Caller, method: Method, path: &str) -> RequestBuilder {
        let request = Client::new().request(method, self.app.url(path));
        match caller {
            Caller::Anonymous => request,
            Caller::SignedIn(account) => {
                request.bearer_auth(self.app.sign_in(account.username()).await)
            }
            Caller::Stale(account, ended, carrier) => {
                let token = &self.stale_tokens[&(account, ended)];
                match carrier {
                    Carrier::Bearer => request.bearer_auth(token),
                    // From the site's own origin, so that the CSRF check passes and what is
                    // judged is the session.
                    Carrier::Cookie => request
                        .header("cookie", format!("{SESSION_COOKIE}={token}"))
                        .header("origin", &self.app.base_url),
                }
            }
        }
    }

    async fn movie(&self) -> String {
        self.app
            .add_movie(&self.admin_token, "Matrix test movie")
            .await
    }

    async fn subscription(&self) -> String {
        let response = Client::new()
            .post(self.app.url("/api/admin/subscriptions"))
            .bearer_auth(&self.admin_token)
            .json(&json!({ "topic": "alerts", "protocol": "email",
                           "endpoint": format!("{}@example.com", uuid::Uuid::new_v4().simple()) }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Registers `username` and fails its sign-in until the account locks, through the store
    /// (whose fixture verifier needs no argon2).
    async fn locked_user(&self, username: &str) {
        let store = &self.app.app.store;
        fixtures::user_command(store, username, fixtures::register(username)).await;
        for _ in 0..MAX_FAILED_SIGN_INS {
            fixtures::user_command(store, username, fixtures::sign_in("wrong")).await;
        }
    }

    /// Runs one case for one caller and returns the status.
    async fn run(&self, case: &str, caller: Caller, n: usize) -> u16 {
        let unique = format!(
            "u{}{n}",
            uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap()
        );
        let request = match case {
            "register" => self
                .request(caller, Method::POST, "/api/users")
                .await
                .json(&json!({ "username": unique, "email": format!("{unique}@example.com"), "password": PASSWORD })),
            "sign in" => {
                self.app.signed_in(&unique).await;
                self.request(caller, Method::POST, "/api/sessions")
                    .await
                    .json(&json!({ "username": unique, "password": PASSWORD }))
            }
            "sign out" => self.request(caller, Method::DELETE, "/api/sessions").await,
            "add movie" => self
                .request(caller, Method::POST, "/api/movies")
                .await
                .json(&json!({ "title": "Matrix", "year": 1999, "director": "The Wachowskis" })),
            "edit movie" => {
                let id = self.movie().await;
                self.request(caller, Method::PATCH, &format!("/api/movies/{id}"))
                    .await
                    .header("if-match", "\"1\"")
                    .json(&json!({ "title": "Matrix, edited" }))
            }
            "remove movie" => {
                let id = self.movie().await;
                self.request(caller, Method::DELETE, &format!("/api/movies/{id}")).await
            }
            "upload poster" => {
                let id = self.movie().await;
                self.request(caller, Method::PUT, &format!("/api/movies/{id}/poster"))
                    .await
                    .header("content-type", "image/png")
                    .body(tiny_png())
            }
            "passkey registration options" => {
                self.request(caller, Method::POST, "/api/passkeys/registration/options").await
            }
            "passkey registration, unknown ceremony" => self
                .request(caller, Method::POST, "/api/passkeys/registration")
                .await
                .json(&json!({ "ceremonyId": uuid::Uuid::new_v4(), "credential": stray_attestation() })),
            "passkey authentication options" => self
                .request(caller, Method::POST, "/api/passkeys/authentication/options")
                .await
                .json(&json!({ "username": "plain" })),
            "passkey authentication, unknown ceremony" => self
                .request(caller, Method::POST, "/api/passkeys/authentication")
                .await
                .json(&json!({ "ceremonyId": uuid::Uuid::new_v4(), "credential": stray_assertion() })),
            "grant role" => {
                let role = if n.is_multiple_of(2) { "auditor" } else { "admin" };
                self.request(caller, Method::POST, "/api/users/plain/roles")
                    .await
                    .json(&json!({ "role": role }))
            }
            "unlock user" => {
                self.locked_user(&unique).await;
                self.request(caller, Method::POST, &format!("/api/users/{unique}/unlock"))
                    .await
            }
            "forget user" => {
                self.app.signed_in(&unique).await;
                self.request(caller, Method::POST, &format!("/api/users/{unique}/forget"))
                    .await
            }
            "create subscription" => {
                let phone = format!("+1415555{n:04}");
                self.request(caller, Method::POST, "/api/admin/subscriptions")
                    .await
                    .json(&json!({ "topic": "movies", "protocol": "sms", "endpoint": phone }))
            }
            "list subscriptions" => self.request(caller, Method::GET, "/api/admin/subscriptions").await,
            "delete subscription" => {
                let id = self.subscription().await;
                self.request(caller, Method::DELETE, &format!("/api/admin/subscriptions/{}", urlencode(&id)))
                    .await
            }
            other => panic!("no case {other}"),
        };
        request.send().await.unwrap().status().as_u16()
    }

    /// A GraphQL query as `caller`; returns the whole answer (`data` and `errors`).
    async fn graphql(&self, caller: Caller, query: &str) -> Value {
        let response = self
            .request(caller, Method::POST, "/graphql")
            .await
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{caller:?} on {query}");
        response.json().await.unwrap()
    }
}

/// Ends a session the way it ends in use: signed out through the API, or its expiry passed (set
/// in the table, which keeps only the token's SHA-256).
async fn end_session(db: &TestDatabase, app: &TestApp, token: &str, ended: Ended) {
    match ended {
        Ended::SignedOut => {
            let signed_out = Client::new()
                .delete(app.url("/api/sessions"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(signed_out.status(), 204);
        }
        Ended::Expired => {
            let a_second_ago = format_timestamp(Utc::now() - TimeDelta::seconds(1));
            let token_hash = hex::encode(Sha256::digest(token.as_bytes()));
            db.execute(&format!(
                "UPDATE sessions SET expires_at = '{a_second_ago}' WHERE token_hash = '{token_hash}'"
            ))
            .await;
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn every_route_answers_every_role_as_the_contract_says(db: TestDatabase) {
    let world = World::new(&db).await;
    let cases = [
        Case {
            name: "register",
            expected: [201; 4],
        },
        Case {
            name: "sign in",
            expected: [200; 4],
        },
        Case {
            name: "sign out",
            expected: [401, 204, 204, 204],
        },
        Case {
            name: "add movie",
            expected: [401, 201, 201, 201],
        },
        Case {
            name: "edit movie",
            expected: SIGNED_IN,
        },
        Case {
            name: "remove movie",
            expected: SIGNED_IN,
        },
        Case {
            name: "upload poster",
            expected: SIGNED_IN,
        },
        Case {
            name: "passkey registration options",
            expected: SIGNED_IN,
        },
        Case {
            name: "passkey registration, unknown ceremony",
            expected: [401, 404, 404, 404],
        },
        Case {
            name: "passkey authentication options",
            expected: [200; 4],
        },
        Case {
            name: "passkey authentication, unknown ceremony",
            expected: [404; 4],
        },
        Case {
            name: "grant role",
            expected: ADMIN_ONLY,
        },
        Case {
            name: "unlock user",
            expected: ADMIN_ONLY,
        },
        Case {
            name: "forget user",
            expected: ADMIN_ONLY,
        },
        Case {
            name: "create subscription",
            expected: [401, 403, 201, 403],
        },
        Case {
            name: "list subscriptions",
            expected: ADMIN_ONLY,
        },
        Case {
            name: "delete subscription",
            expected: [401, 403, 204, 403],
        },
    ];
    let mut mismatches = Vec::new();
    for case in &cases {
        for (n, caller) in callers().into_iter().enumerate() {
            let status = world.run(case.name, caller, n).await;
            let expected = case.expected_for(caller);
            if status != expected {
                mismatches.push(format!(
                    "{} as {caller:?}: got {status}, expected {expected}",
                    case.name
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// What a caller without a session gets from a GraphQL field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WithoutSession {
    /// `unauthenticated`, and no data.
    Refused,
    /// The field answers `null` (`me`: nobody).
    Null,
    /// The field answers as for anyone (the catalogue).
    Answered,
}

/// A GraphQL field, the accounts that may read it, and what an anonymous caller gets.
struct GraphqlCase {
    field: &'static str,
    query: &'static str,
    readers: &'static [Account],
    anonymous: WithoutSession,
}

async fn graphql_refuses_ended_sessions(db: TestDatabase) {
    let world = World::new(&db).await;
    let cases = [
        GraphqlCase {
            field: "events",
            query: "{ events { edges { cursor } } }",
            readers: &[Account::Auditor, Account::Admin],
            anonymous: WithoutSession::Refused,
        },
        GraphqlCase {
            field: "ledger",
            query: "{ ledger { intact } }",
            readers: &[Account::Auditor],
            anonymous: WithoutSession::Refused,
        },
        GraphqlCase {
            field: "stats",
            query: "{ stats { movies } }",
            readers: &[Account::Admin],
            anonymous: WithoutSession::Refused,
        },
        GraphqlCase {
            field: "metrics",
            query: "{ metrics(name: \"MoviesAdded\") { value } }",
            readers: &[Account::Admin],
            anonymous: WithoutSession::Refused,
        },
        GraphqlCase {
            field: "projections",
            query: "{ projections { name } }",
            readers: &[Account::Admin],
            anonymous: WithoutSession::Refused,
        },
        GraphqlCase {
            field: "me",
            query: "{ me { username } }",
            readers: &ACCOUNTS,
            anonymous: WithoutSession::Null,
        },
        GraphqlCase {
            field: "movies",
            query: "{ movies { totalCount } }",
            readers: &ACCOUNTS,
            anonymous: WithoutSession::Answered,
        },
    ];
    let code = |answer: &Value| answer["errors"][0]["extensions"]["code"].clone();
    let mut mismatches = Vec::new();
    for case in &cases {
        for caller in callers() {
            let answer = world.graphql(caller, case.query).await;
            let refused = |with: &str| code(&answer) == with && answer["data"].is_null();
            let answered = answer.get("errors").is_none() && !answer["data"][case.field].is_null();
            let as_expected = match caller {
                Caller::Anonymous => match case.anonymous {
                    WithoutSession::Refused => refused("unauthenticated"),
                    WithoutSession::Null => {
                        answer.get("errors").is_none() && answer["data"][case.field].is_null()
                    }
                    WithoutSession::Answered => answered,
                },
                Caller::SignedIn(account) if case.readers.contains(&account) => answered,
                Caller::SignedIn(_) => refused("forbidden"),
                // An ended session is refused whatever the query, as anonymous callers are on
                // the guarded fields: a client holding one learns to sign in again rather than
                // quietly reading as nobody, and nothing of the session's user is answered.
                Caller::Stale(..) => refused("unauthenticated"),
            };
            if !as_expected {
                mismatches.push(format!("{} as {caller:?}: {answer}", case.field));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
