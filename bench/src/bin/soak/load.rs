//! The soak's clients: each paced to a steady rate, cycling through a fixed mix of requests, and
//! every answer checked.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

/// What a client sends, per 20 requests: 6 new movies, 4 edits, 1 poster, 7 catalogue reads,
/// 1 registration and 1 sign-in.
const MIX: [Kind; 20] = [
    Kind::AddMovie,
    Kind::Read,
    Kind::EditMovie,
    Kind::Read,
    Kind::AddMovie,
    Kind::Read,
    Kind::EditMovie,
    Kind::SignIn,
    Kind::AddMovie,
    Kind::Read,
    Kind::Poster,
    Kind::AddMovie,
    Kind::Read,
    Kind::EditMovie,
    Kind::Register,
    Kind::AddMovie,
    Kind::Read,
    Kind::EditMovie,
    Kind::AddMovie,
    Kind::Read,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AddMovie,
    EditMovie,
    Poster,
    Read,
    Register,
    SignIn,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::AddMovie,
        Kind::EditMovie,
        Kind::Poster,
        Kind::Read,
        Kind::Register,
        Kind::SignIn,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::AddMovie => "POST /api/movies",
            Kind::EditMovie => "PATCH /api/movies/{id}",
            Kind::Poster => "PUT /api/movies/{id}/poster",
            Kind::Read => "POST /graphql (movies, first 20)",
            Kind::Register => "POST /api/users",
            Kind::SignIn => "POST /api/sessions",
        }
    }

    /// Whether a success appends a `Movie` event, which `movieChanged` announces.
    fn changes_a_movie(self) -> bool {
        matches!(self, Kind::AddMovie | Kind::EditMovie | Kind::Poster)
    }
}

/// Counts and latencies of every request, shared by the clients.
#[derive(Default)]
pub struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    movie_events: AtomicU64,
    latencies: Mutex<Vec<(Kind, Duration)>>,
    first_errors: Mutex<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct KindReport {
    pub kind: &'static str,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Tally {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn movie_events(&self) -> u64 {
        self.movie_events.load(Ordering::Relaxed)
    }

    pub fn first_errors(&self) -> Vec<String> {
        self.first_errors.lock().unwrap().clone()
    }

    fn record(&self, kind: Kind, took: Duration, outcome: Result<()>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latencies.lock().unwrap().push((kind, took));
        match outcome {
            Ok(()) if kind.changes_a_movie() => {
                self.movie_events.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(error) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_errors.lock().unwrap();
                if first.len() < 10 {
                    first.push(format!("{}: {error:#}", kind.label()));
                }
            }
        }
    }

    pub fn report(&self, kind: Kind) -> KindReport {
        let mut times: Vec<f64> = self
            .latencies
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, took)| took.as_secs_f64() * 1000.0)
            .collect();
        times.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = |p: f64| {
            if times.is_empty() {
                0.0
            } else {
                times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]
            }
        };
        KindReport {
            kind: kind.label(),
            count: times.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: times.last().copied().unwrap_or(0.0),
        }
    }
}

/// One client: its own connection, user and movies.
pub struct Client {
    http: reqwest::Client,
    base: String,
    n: usize,
    username: String,
    token: String,
    png: Vec<u8>,
}

impl Client {
    pub async fn new(base: &str, n: usize, png: Vec<u8>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let username = format!("soak{n}");
        let mut client = Self {
            http,
            base: base.to_string(),
            n,
            username: username.clone(),
            token: String::new(),
            png,
        };
        client.register(&username).await?;
        client.token = client.sign_in().await?;
        Ok(client)
    }

    /// Sends the mix at one request per `pace` until `stop`.
    pub async fn run(mut self, pace: Duration, tally: &Tally, stop: &AtomicBool) -> Result<()> {
        let mut movies: Vec<(String, i64)> = Vec::new();
        let mut ticker = tokio::time::interval(pace);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut registered = 0;
        for step in 0.. {
            ticker.tick().await;
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut kind = MIX[(step + self.n) % MIX.len()];
            if movies.is_empty() && matches!(kind, Kind::EditMovie | Kind::Poster) {
                kind = Kind::AddMovie;
            }
            let started = Instant::now();
            let outcome = match kind {
                Kind::AddMovie => self.add_movie(step).await.map(|movie| movies.push(movie)),
                Kind::EditMovie => {
                    let at = step % movies.len();
                    let (id, version) = movies[at].clone();
                    self.edit_movie(&id, version, step)
                        .await
                        .map(|version| movies[at].1 = version)
                }
                Kind::Poster => {
                    let at = step % movies.len();
                    let (id, version) = movies[at].clone();
                    self.poster(&id).await.map(|()| movies[at].1 = version + 1)
                }
                Kind::Read => self.read().await,
                Kind::Register => {
                    registered += 1;
                    let username = format!("soak{}x{registered}", self.n);
                    self.register(&username).await
                }
                Kind::SignIn => self.sign_in().await.map(|token| self.token = token),
            };
            tally.record(kind, started.elapsed(), outcome);
        }
        Ok(())
    }

    async fn expect(
        &self,
        request: reqwest::RequestBuilder,
        status: u16,
        what: &str,
    ) -> Result<Value> {
        let answer = request.send().await.with_context(|| what.to_string())?;
        let got = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(got == status, "{what}: {got} {body}");
        Ok(body)
    }

    pub async fn add_movie(&self, step: usize) -> Result<(String, i64)> {
        let request = self
            .http
            .post(format!("{}/api/movies", self.base))
            .bearer_auth(&self.token)
            .json(&json!({
                "title": format!("Soak {}-{step}", self.n),
                "year": 1985,
                "director": "Agnès Varda",
                "genres": ["Drama"],
                "description": "A long, steady take.",
            }));
        let body = self.expect(request, 201, "add").await?;
        Ok((
            body["id"].as_str().context("no id")?.to_string(),
            body["version"].as_i64().context("no version")?,
        ))
    }

    async fn edit_movie(&self, id: &str, version: i64, step: usize) -> Result<i64> {
        let request = self
            .http
            .patch(format!("{}/api/movies/{id}", self.base))
            .bearer_auth(&self.token)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({ "title": format!("Soak {}-{step}, recut", self.n) }));
        let body = self.expect(request, 200, "edit").await?;
        body["version"].as_i64().context("no version")
    }

    async fn poster(&self, id: &str) -> Result<()> {
        let request = self
            .http
            .put(format!("{}/api/movies/{id}/poster", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "image/png")
            .body(self.png.clone());
        self.expect(request, 200, "poster").await.map(|_| ())
    }

    async fn read(&self) -> Result<()> {
        let request = self.http.post(format!("{}/graphql", self.base)).json(&json!({
            "query": "{ movies(first: 20) { totalCount edges { node { id title version posterUrl } } } }"
        }));
        let body = self.expect(request, 200, "read").await?;
        anyhow::ensure!(body.get("errors").is_none(), "read: {body}");
        Ok(())
    }

    async fn register(&self, username: &str) -> Result<()> {
        let request = self
            .http
            .post(format!("{}/api/users", self.base))
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
            }));
        self.expect(request, 201, "register").await.map(|_| ())
    }

    async fn sign_in(&self) -> Result<String> {
        let request = self
            .http
            .post(format!("{}/api/sessions", self.base))
            .json(&json!({ "username": self.username, "password": PASSWORD }));
        let body = self.expect(request, 200, "sign in").await?;
        Ok(body["token"].as_str().context("no token")?.to_string())
    }
}

const PASSWORD: &str = "correct horse battery";

/// A real 200 × 300 PNG poster.
pub fn poster_png() -> Result<Vec<u8>> {
    let image = image::RgbImage::from_fn(200, 300, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png)?;
    Ok(png.into_inner())
}
