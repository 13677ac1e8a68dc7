//! Faults (issue 8): the database stopped and started again under load, the AWS emulator down
//! (refusing connections, then hanging) while commands go on, and a projector killed between its
//! commit and everything after it. The real binaries run as processes against a MariaDB and a moto
//! server of the test's own where a test stops them; nothing acknowledged is lost, nothing is
//! applied, counted or announced twice, and nothing needs a restart to recover.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use marquee_tests::faults::{PrivateMariaDb, PrivateMoto, SwitchableProxy};
use marquee_tests::{eventually_within, free_port, moto, signed_in_at, Backend, TestDatabase};
use reqwest::Client;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::process::Child;

/// A command's 2xx answer: the movie, its version and the event's position.
#[derive(Debug, Clone)]
struct Acknowledged {
    movie: String,
    version: i64,
    position: i64,
}

/// One request of the load and how it ended.
#[derive(Debug, Clone)]
struct Outcome {
    what: &'static str,
    started: Instant,
    elapsed: Duration,
    /// 0 when no HTTP answer came at all.
    status: u16,
    code: Option<String>,
    acknowledged: Option<Acknowledged>,
}

/// Concurrent commands (new movies, edits) and GraphQL reads against one server until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, token: &str, writers: usize, readers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let client = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for n in 0..writers {
            let (client, base, token) = (client.clone(), base.to_string(), token.to_string());
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            tasks.push(tokio::spawn(async move {
                let mut last: Option<(String, i64)> = None;
                for round in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let outcome = match &last {
                        Some((movie, version)) if round % 2 == 1 => {
                            let request = client
                                .patch(format!("{base}/api/movies/{movie}"))
                                .bearer_auth(&token)
                                .header("if-match", format!("\"{version}\""))
                                .json(&json!({ "title": format!("Outage {n}-{round}") }));
                            send("edit", request, Some(movie)).await
                        }
                        _ => {
                            let request = client
                                .post(format!("{base}/api/movies"))
                                .bearer_auth(&token)
                                .json(&json!({
                                    "title": format!("Outage {n}-{round}"),
                                    "year": 1959,
                                    "director": "Alain Resnais",
                                    "genres": ["Drama"],
                                    "description": "",
                                }));
                            send("add", request, None).await
                        }
                    };
                    // An edit that conflicts or fails starts a new movie next time.
                    last = outcome
                        .acknowledged
                        .as_ref()
                        .map(|ack| (ack.movie.clone(), ack.version));
                    outcomes.lock().unwrap().push(outcome);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        for n in 0..readers {
            let (client, base, token) = (client.clone(), base.to_string(), token.to_string());
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            tasks.push(tokio::spawn(async move {
                let query = json!({
                    "query": "{ movies(first: 5) { totalCount edges { node { id title } } } }"
                });
                while !stop.load(Ordering::Relaxed) {
                    // Half the readers signed in: their session is looked up too.
                    let mut request = client.post(format!("{base}/graphql")).json(&query);
                    if n % 2 == 1 {
                        request = request.bearer_auth(&token);
                    }
                    let outcome = send("read", request, None).await;
                    outcomes.lock().unwrap().push(outcome);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        Self {
            stop,
            outcomes,
            tasks,
        }
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.outcomes.lock().unwrap().clone()
    }
}

/// Sends `request` and notes how it ended: a command's error code is `error.code`, GraphQL's
/// the first `errors[].extensions.code`.
async fn send(
    what: &'static str,
    request: reqwest::RequestBuilder,
    movie: Option<&String>,
) -> Outcome {
    let started = Instant::now();
    let answer = request.send().await;
    let (status, body) = match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    };
    let code = body["error"]["code"]
        .as_str()
        .or_else(|| body["errors"][0]["extensions"]["code"].as_str())
        .map(str::to_string);
    let acknowledged = match what {
        "add" | "edit" if (200..300).contains(&status) => Some(Acknowledged {
            movie: movie
                .cloned()
                .unwrap_or_else(|| body["id"].as_str().unwrap().to_string()),
            version: body["version"].as_i64().unwrap(),
            position: body["position"].as_i64().unwrap(),
        }),
        _ => None,
    };
    Outcome {
        what,
        started,
        elapsed: started.elapsed(),
        status,
        code,
        acknowledged,
    }
}

/// Every event in the store, in order, grouped by stream.
async fn streams(db: &TestDatabase) -> BTreeMap<(String, String), Vec<event_store::RecordedEvent>> {
    let store = db.store().await;
    let mut streams: BTreeMap<_, Vec<_>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else {
            return streams;
        };
        after = last.position;
        for event in page {
            streams
                .entry((event.aggregate_type.clone(), event.aggregate_id.clone()))
                .or_default()
                .push(event);
        }
    }
}

/// Every acknowledged command has its event where the answer said, and every stream is whole.
async fn assert_nothing_acknowledged_is_lost(db: &TestDatabase, outcomes: &[Outcome]) -> usize {
    let streams = streams(db).await;
    for ((kind, id), stream) in &streams {
        let sequences: Vec<i64> = stream.iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (1..=stream.len() as i64).collect::<Vec<_>>(),
            "{kind} {id} has a hole"
        );
    }
    let mut count = 0;
    for ack in outcomes.iter().filter_map(|o| o.acknowledged.as_ref()) {
        let event = streams
            .get(&("Movie".to_string(), ack.movie.clone()))
            .and_then(|stream| stream.iter().find(|e| e.sequence == ack.version))
            .unwrap_or_else(|| panic!("acknowledged {ack:?} is not in the store"));
        assert_eq!(event.position, ack.position, "{ack:?}");
        count += 1;
    }
    count
}

/// The read models equal a replay of the store and the ledger is intact, once the pipeline has
/// caught up.
async fn assert_read_models_converge(db: &TestDatabase) -> Duration {
    let started = Instant::now();
    eventually_within(
        "replay --compare to find no drift",
        Duration::from_secs(120),
        || async {
            let compared = db.marquee(&["replay", "--compare"]);
            if compared.status.success() {
                Some(())
            } else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                None
            }
        },
    )
    .await;
    let verified = db.marquee(&["verify"]);
    assert!(verified.status.success(), "{verified:?}");
    started.elapsed()
}

/// Every projection has applied everything in the store.
async fn assert_projections_caught_up(db: &TestDatabase) {
    let store = db.store().await;
    eventually_within(
        "every projection at the head",
        Duration::from_secs(120),
        || async {
            let statuses = projectors::statuses(&store).await.ok()?;
            (statuses.len() >= projectors::PROJECTIONS.len()
                && statuses.iter().all(|status| status.lag == 0))
            .then_some(())
        },
    )
    .await;
}

fn still_running(process: &mut Child, name: &str, log: &Path) {
    assert!(
        process.try_wait().unwrap().is_none(),
        "{name} died; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

async fn readiness(base: &str) -> (u16, Option<String>) {
    match Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(format!("{base}/readyz"))
        .send()
        .await
    {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, body["error"]["code"].as_str().map(str::to_string))
        }
        Err(_) => (0, None),
    }
}

/// The longest an answer may take while the database is down: the pool's acquire timeout
/// (`MARQUEE_DB_ACQUIRE_TIMEOUT_MS`, 2 s by default) and a request queued behind one batch, with
/// room for a loaded machine.
const OUTAGE_ANSWER_LIMIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_stopped_under_load_answers_503_fast_and_recovers_by_itself() {
    let mut mariadb = PrivateMariaDb::start().await;
    let db = TestDatabase::on_mysql_server(&mariadb.url()).await;
    db.create_poster_bucket().await;
    let provisioned = db.marquee(&["provision"]);
    assert!(provisioned.status.success(), "{provisioned:?}");
    let logs = tempfile::tempdir().unwrap();
    let log = |name: &str| logs.path().join(format!("{name}.log"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = db.serve_binary(port, &log("serve")).await;
    let mut relay = db.spawn_marquee("relay", &log("relay"), &[]);
    let mut project = db.spawn_marquee("project", &log("project"), &[]);
    let token = signed_in_at(&base, "outage").await;

    let load = Load::start(&base, &token, 8, 4);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut figures = Vec::new();
    // A clean shutdown first, then a crash.
    for signal in ["TERM", "KILL"] {
        let stopping = Instant::now();
        mariadb.stop(signal).await;
        let down = Instant::now();
        let mut readyz = Vec::new();
        while down.elapsed() < Duration::from_secs(8) {
            readyz.push(readiness(&base).await);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let restarting = Instant::now();
        mariadb.restart().await;
        let up = Instant::now();
        let recovered = eventually_within(
            "a command answered 2xx after the restart",
            Duration::from_secs(60),
            || async {
                load.outcomes()
                    .into_iter()
                    .filter(|o| o.acknowledged.is_some() && o.started >= up)
                    .map(|o| o.started + o.elapsed - up)
                    .min()
            },
        )
        .await;
        let ready_again =
            eventually_within("/readyz 200 again", Duration::from_secs(30), || async {
                (readiness(&base).await.0 == 200).then(|| up.elapsed())
            })
            .await;

        let during: Vec<Outcome> = load
            .outcomes()
            .into_iter()
            .filter(|o| o.started >= down && o.started + o.elapsed <= restarting)
            .collect();
        assert!(
            during.iter().filter(|o| o.what == "read").count() >= 4
                && during.iter().filter(|o| o.what != "read").count() >= 8,
            "too little load while the database was down: {during:?}"
        );
        for outcome in &during {
            assert_eq!(
                (outcome.status, outcome.code.as_deref()),
                (503, Some("database_unavailable")),
                "while the database was down: {outcome:?}"
            );
        }
        let slowest = during.iter().map(|o| o.elapsed).max().unwrap();
        assert!(
            slowest <= OUTAGE_ANSWER_LIMIT,
            "an answer took {slowest:?} while the database was down"
        );
        let first_503 = load
            .outcomes()
            .into_iter()
            .filter(|o| o.status == 503 && o.started + o.elapsed >= stopping)
            .map(|o| o.started + o.elapsed - stopping)
            .min()
            .unwrap();
        assert!(
            readyz
                .iter()
                .all(|r| *r == (503, Some("database_unavailable".to_string()))),
            "/readyz while the database was down: {readyz:?}"
        );
        let mut elapsed: Vec<Duration> = during.iter().map(|o| o.elapsed).collect();
        elapsed.sort();
        figures.push(format!(
            "SIG{signal}: {} requests answered while down, all 503 database_unavailable: \
             first 503 {:.2} s after the stop, answer p50 {:.2} s, max {:.2} s; \
             first 2xx command {:.2} s after MariaDB took connections again, /readyz 200 after {:.2} s",
            during.len(),
            first_503.as_secs_f64(),
            elapsed[elapsed.len() / 2].as_secs_f64(),
            slowest.as_secs_f64(),
            recovered.as_secs_f64(),
            ready_again.as_secs_f64(),
        ));
        // Load again before the next stop.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let outcomes = load.finish().await;

    // No other answer than success, the outage's 503, or a conflict from an edit whose answer
    // was lost with the connection (its version was taken after all).
    for outcome in &outcomes {
        let fine = (200..300).contains(&outcome.status)
            || (outcome.status, outcome.code.as_deref()) == (503, Some("database_unavailable"))
            || (outcome.status, outcome.code.as_deref()) == (409, Some("version_conflict"));
        assert!(fine, "{outcome:?}");
    }
    still_running(&mut serve, "serve", &log("serve"));
    still_running(&mut relay, "relay", &log("relay"));
    still_running(&mut project, "project", &log("project"));
    let acknowledged = assert_nothing_acknowledged_is_lost(&db, &outcomes).await;
    assert_projections_caught_up(&db).await;
    assert_read_models_converge(&db).await;
    for figure in &figures {
        println!("{figure}");
    }
    println!(
        "{} requests, {acknowledged} commands acknowledged, all in the store",
        outcomes.len()
    );
}

async fn count(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Waits until `read` reaches `expected`, then a little longer, and checks it went no further:
/// a double effect would arrive late.
async fn settles_at<F, Fut>(what: &str, expected: f64, mut read: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let started = Instant::now();
    let reached = eventually_within(what, Duration::from_secs(120), || {
        let value = read();
        async move {
            let value = value.await;
            assert!(value <= expected, "{what}: {value}, more than {expected}");
            if value < expected {
                // The emulator's dump of everything is not cheap to make.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (value == expected).then(|| started.elapsed())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(read().await, expected, "{what} after settling");
    reached
}

/// Messages a killed consumer had received come back after the visibility timeout: 2 s here
/// instead of 30 s.
async fn short_visibility(db: &TestDatabase, config: &aws_config::SdkConfig) {
    let sqs = aws_sdk_sqs::Client::new(config);
    let topology = projectors::aws::Topology::new(db.sns_topic_prefix());
    for projection in projectors::PROJECTIONS {
        let queue = projectors::aws::queue_url(&sqs, &topology.queue(projection))
            .await
            .unwrap();
        sqs.set_queue_attributes()
            .queue_url(&queue)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "2",
            )
            .send()
            .await
            .unwrap();
    }
}

/// Read models, CloudWatch and SNS each have every movie exactly once; returns how long the
/// read model took to reach the count.
async fn assert_every_movie_once(db: &TestDatabase, endpoint: &str, movies: i64) -> Duration {
    let store = db.store().await;
    let pool = store.database().pool();
    let reached = settles_at("movies in the read model", movies as f64, || async {
        count(pool, "SELECT COUNT(*) FROM rm_movies").await as f64
    })
    .await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&moto::sdk_config_at(endpoint).await);
    settles_at(
        "the MoviesAdded sum in CloudWatch",
        movies as f64,
        || async { moto::metric_sum(&cloudwatch, &db.metrics_namespace(), "MoviesAdded").await },
    )
    .await;
    let topic = format!("{}movies", db.sns_topic_prefix());
    settles_at("new-movie notifications on SNS", movies as f64, || async {
        moto::published_at(endpoint, &topic).await.len() as f64
    })
    .await;
    reached
}

/// How often the relay logged a failed round.
fn relay_failures(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("relay failed; retrying")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_emulator_down_then_hanging_the_relay_backs_off_and_nothing_is_lost_or_doubled() {
    let emulator = PrivateMoto::start().await;
    let proxy = SwitchableProxy::start(emulator.port()).await;
    let db = TestDatabase::new(Backend::MySql)
        .await
        .with_aws_endpoint(proxy.endpoint());
    db.create_poster_bucket().await;
    let provisioned = db.marquee(&["provision"]);
    assert!(provisioned.status.success(), "{provisioned:?}");
    short_visibility(&db, &moto::sdk_config_at(&emulator.endpoint()).await).await;
    let logs = tempfile::tempdir().unwrap();
    let log = |name: &str| logs.path().join(format!("{name}.log"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = db.serve_binary(port, &log("serve")).await;
    let mut relay = db.spawn_marquee("relay", &log("relay"), &[]);
    let mut project = db.spawn_marquee("project", &log("project"), &[]);
    let token = signed_in_at(&base, "islander").await;

    let load = Load::start(&base, &token, 2, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut figures = Vec::new();
    for how in ["refused", "hanging"] {
        // A hanging call fails only after the SDK's attempts time out (3 × 5 s).
        let outage = Duration::from_secs(if how == "refused" { 12 } else { 20 });
        let failures_before = relay_failures(&log("relay"));
        match how {
            "refused" => proxy.down(),
            _ => emulator.pause(),
        }
        tokio::time::sleep(outage).await;
        let failures = relay_failures(&log("relay")) - failures_before;
        match how {
            "refused" => proxy.up(),
            _ => emulator.resume(),
        }
        // Failing, backing off (100 ms doubling to 10 s, the SDK's own retries inside each
        // round), and not spinning.
        assert!(
            (1..=12).contains(&failures),
            "{how}: {failures} failed relay rounds in {outage:?}"
        );
        figures.push(format!(
            "{how} for {} s: {failures} failed relay rounds logged",
            outage.as_secs()
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let outcomes = load.finish().await;
    for outcome in &outcomes {
        assert!(
            (200..300).contains(&outcome.status),
            "a command failed while only AWS was down: {outcome:?}"
        );
    }
    let movies = outcomes.iter().filter(|o| o.what == "add").count() as i64;
    let reached = assert_every_movie_once(&db, &emulator.endpoint(), movies).await;
    still_running(&mut serve, "serve", &log("serve"));
    still_running(&mut relay, "relay", &log("relay"));
    still_running(&mut project, "project", &log("project"));
    assert_nothing_acknowledged_is_lost(&db, &outcomes).await;
    assert_read_models_converge(&db).await;
    let store = db.store().await;
    let in_doubt = count(
        store.database().pool(),
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND claimed_at IS NOT NULL",
    )
    .await;
    for figure in &figures {
        println!("{figure}");
    }
    println!(
        "{} commands during the outages, all 2xx; {movies} movies once each in the read model, \
         CloudWatch and SNS; {reached:.1} s from the end of the load to the read model's count; \
         {in_doubt} effect(s) left in doubt by calls that timed out (not sent again)",
        outcomes.len(),
        reached = reached.as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projector_crashing_after_its_commit_has_no_double_effect() {
    // A moto of its own: the shared one's dump of everything, which the checks read, grows with
    // every test on the machine and fails now and then while other tests change its state.
    let emulator = PrivateMoto::start().await;
    let db = TestDatabase::new(Backend::MySql)
        .await
        .with_aws_endpoint(emulator.endpoint());
    db.create_poster_bucket().await;
    let provisioned = db.marquee(&["provision"]);
    assert!(provisioned.status.success(), "{provisioned:?}");
    short_visibility(&db, &moto::sdk_config_at(&emulator.endpoint()).await).await;
    let logs = tempfile::tempdir().unwrap();
    let log = |name: &str| logs.path().join(format!("{name}.log"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _serve = db.serve_binary(port, &log("serve")).await;
    let _relay = db.spawn_marquee("relay", &log("relay"), &[]);
    let token = signed_in_at(&base, "phoenix").await;
    let client = Client::new();
    let mut movies = 0;
    // Each projection in turn dies right after a commit that applied events: before its
    // effects left the outbox and before SQS heard the messages were handled.
    for projection in projectors::PROJECTIONS {
        let failpoint = format!("projector-after-apply:{projection}");
        let mut project = db.spawn_marquee(
            "project",
            &log("project"),
            &[("MARQUEE_FAILPOINT", &failpoint)],
        );
        for n in 0..3 {
            let added = client
                .post(format!("{base}/api/movies"))
                .bearer_auth(&token)
                .json(&json!({
                    "title": format!("Phoenix {projection} {n}"),
                    "year": 1962,
                    "director": "Chris Marker",
                    "genres": ["Science Fiction"],
                    "description": "",
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(added.status(), 201);
            movies += 1;
        }
        let exited = tokio::time::timeout(Duration::from_secs(60), project.wait())
            .await
            .unwrap_or_else(|_| panic!("{failpoint} never fired"))
            .unwrap();
        assert_eq!(
            exited.signal(),
            Some(6),
            "{failpoint}: {exited:?} (SIGABRT)"
        );
    }
    let aborts = std::fs::read_to_string(log("project"))
        .unwrap()
        .matches("failpoint projector-after-apply")
        .count();
    assert_eq!(aborts, projectors::PROJECTIONS.len());
    let mut project = db.spawn_marquee("project", &log("project"), &[]);
    assert_every_movie_once(&db, &emulator.endpoint(), movies).await;
    let sign_ins = moto::published_at(
        &emulator.endpoint(),
        &format!("{}logins", db.sns_topic_prefix()),
    )
    .await
    .len();
    assert_eq!(sign_ins, 1, "the one sign-in announced once");
    // The crash came after a commit, never inside another projector's remote call: every effect
    // is confirmed sent, none is left in doubt.
    let store = db.store().await;
    let unsent = count(
        store.database().pool(),
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
    )
    .await;
    assert_eq!(unsent, 0, "effects not confirmed sent");
    still_running(&mut project, "project", &log("project"));
    assert_read_models_converge(&db).await;
    println!(
        "{aborts} aborts (SIGABRT); {movies} movies once each in the read model, CloudWatch and SNS, \
         the sign-in announced once, every effect confirmed sent"
    );
}
