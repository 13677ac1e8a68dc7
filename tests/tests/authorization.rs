//! Every route of the command API against every role: one table, checked on both backends.

use domain::Role;
use marquee_tests::{on_both_backends, TestApp, TestDatabase, PASSWORD};
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{json, Value};

on_both_backends!(every_route_answers_every_role_as_the_contract_says);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Anonymous,
    User,
    Admin,
    Auditor,
}

const CALLERS: [Caller; 4] = [
    Caller::Anonymous,
    Caller::User,
    Caller::Admin,
    Caller::Auditor,
];

/// The statuses the four callers get, in `CALLERS` order.
struct Case {
    name: &'static str,
    expected: [u16; 4],
}

const SIGNED_IN: [u16; 4] = [401, 200, 200, 200];
const ADMIN_ONLY: [u16; 4] = [401, 403, 200, 403];

fn tiny_png() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(4, 3, image::Rgb([200, 30, 30]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

struct World {
    app: TestApp,
    admin_token: String,
}

impl World {
    async fn new(db: &TestDatabase) -> Self {
        if db.poster_bucket().is_some() {
            db.create_poster_bucket().await;
        }
        let app = db.spawn_app().await;
        app.signed_in("plain").await;
        app.signed_in_with_role("checker", Role::Auditor).await;
        let admin_token = app.signed_in_with_role("boss", Role::Admin).await;
        Self { app, admin_token }
    }

    /// A request as `caller`, with a fresh session so that signing out spoils no other case.
    async fn request(&self, caller: Caller, method: Method, path: &str) -> RequestBuilder {
        let request = Client::new().request(method, self.app.url(path));
        match caller {
            Caller::Anonymous => request,
            _ => {
                let username = match caller {
                    Caller::User => "plain",
                    Caller::Admin => "boss",
                    _ => "checker",
                };
                let fresh = self.app.sign_in(username).await;
                request.bearer_auth(fresh)
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
            "passkey authentication options" => self
                .request(caller, Method::POST, "/api/passkeys/authentication/options")
                .await
                .json(&json!({ "username": "plain" })),
            "grant role" => {
                let role = if n.is_multiple_of(2) { "auditor" } else { "admin" };
                self.request(caller, Method::POST, "/api/users/plain/roles")
                    .await
                    .json(&json!({ "role": role }))
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
            name: "passkey authentication options",
            expected: [200; 4],
        },
        Case {
            name: "grant role",
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
        for (n, caller) in CALLERS.into_iter().enumerate() {
            let status = world.run(case.name, caller, n).await;
            if status != case.expected[n] {
                mismatches.push(format!(
                    "{} as {caller:?}: got {status}, expected {}",
                    case.name, case.expected[n]
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
