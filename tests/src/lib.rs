//! Fixtures for the integration tests: fresh databases on both backends, the real app on a
//! random port, and the real `marquee` binary.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use event_store::{Database, EventStore, PoolSettings};
use marquee::config::{LogFormat, PosterStore, Profile, Settings};
use marquee::serve::RunningApp;
use sqlx::Executor;

pub mod faults;
pub mod graphql_ws;
pub mod images;
pub mod lambda_function;
pub mod lambda_runtime;
pub mod template;

/// The MariaDB every machine here runs; the test command starts it when it is not running.
pub fn mysql_server_url() -> String {
    std::env::var("MARQUEE_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

/// The S3 emulator (moto) the test command starts and names in `AWS_ENDPOINT_URL`; tests that
/// store posters in S3 fail here, never skip, when it is not there.
pub fn moto_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run scripts/test, which starts moto and sets it")
    });
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    std::net::TcpStream::connect(&address).unwrap_or_else(|e| {
        panic!("moto does not answer at {endpoint} ({e}): run scripts/test, which starts it")
    });
    endpoint
}

/// An S3 client for moto, as a test inspects what the app stored.
pub async fn s3_client() -> aws_sdk_s3::Client {
    s3_client_at(&moto_endpoint()).await
}

/// An S3 client for the emulator at `endpoint`.
pub async fn s3_client_at(endpoint: &str) -> aws_sdk_s3::Client {
    let config = moto::sdk_config_at(endpoint).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

/// A database of its own for one test, removed when the test ends.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    mysql_name: Option<String>,
    /// The MariaDB server holding `mysql_name`.
    mysql_server: String,
    /// An AWS emulator of the test's own instead of the shared one.
    aws_endpoint: Option<String>,
    dir: tempfile::TempDir,
    /// Names this test's own resources (database, bucket, topics).
    id: String,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        Self::create(backend, mysql_server_url())
    }

    /// A MySQL database on the server at `server` (a test's private one) instead of the shared one.
    pub async fn on_mysql_server(server: &str) -> Self {
        Self::create(Backend::MySql, server.to_string())
    }

    /// Points the app, the binary and the test's own clients at the AWS emulator at `endpoint`.
    pub fn with_aws_endpoint(mut self, endpoint: String) -> Self {
        self.aws_endpoint = Some(endpoint);
        self
    }

    /// The AWS emulator this test's processes talk to.
    pub fn aws_endpoint(&self) -> String {
        self.aws_endpoint.clone().unwrap_or_else(moto_endpoint)
    }

    fn create(backend: Backend, mysql_server: String) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (url, mysql_name) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("marquee.db").display()),
                None,
            ),
            Backend::MySql => {
                let name = format!("marquee_test_{id}");
                (format!("{mysql_server}/{name}"), Some(name))
            }
        };
        Self {
            backend,
            url,
            mysql_name,
            mysql_server,
            aws_endpoint: None,
            dir,
            id,
        }
    }

    /// The MySQL tests' poster bucket, named after their database; `None` on SQLite.
    pub fn poster_bucket(&self) -> Option<String> {
        self.mysql_name.as_ref().map(|name| name.replace('_', "-"))
    }

    /// Creates this test's poster bucket on moto (MySQL tests only), readable by anyone as the
    /// deployment's bucket policy makes it, and returns the client.
    pub async fn create_poster_bucket(&self) -> aws_sdk_s3::Client {
        let bucket = self
            .poster_bucket()
            .expect("poster buckets belong to the MySQL (aws profile) tests");
        let client = s3_client_at(&self.aws_endpoint()).await;
        let failed = |e: &dyn std::error::Error| {
            panic!(
                "cannot set up the bucket {bucket} on moto: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        };
        if let Err(e) = client.create_bucket().bucket(&bucket).send().await {
            failed(&e);
        }
        let public_read = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{bucket}/*"),
            }],
        });
        let policy = client
            .put_bucket_policy()
            .bucket(&bucket)
            .policy(public_read.to_string())
            .send()
            .await;
        if let Err(e) = policy {
            failed(&e);
        }
        client
    }

    /// The settings `marquee` would run with against this database.
    pub fn settings(&self) -> Settings {
        Settings {
            profile: match self.backend {
                Backend::Sqlite => Profile::Embedded,
                Backend::MySql => Profile::Aws,
            },
            data_dir: self.dir.path().to_path_buf(),
            database_url: self.url.clone(),
            aws_endpoint_url: match self.backend {
                Backend::Sqlite => None,
                Backend::MySql => self
                    .aws_endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()),
            },
            log_format: LogFormat::Text,
            log: "warn".into(),
            pool: PoolSettings::default(),
            checkpoint_interval: None,
            public_url: None,
            trust_forwarded_for: false,
            sign_in_rate: 1000,
            posters: match self.poster_bucket() {
                Some(bucket) => PosterStore::S3 { bucket },
                None => PosterStore::Disk(self.dir.path().join("posters")),
            },
            poster_base_url: None,
            // Each test its own SNS topics, so subscriptions never leak between tests.
            sns_topic_prefix: self.sns_topic_prefix(),
            metrics_namespace: self.metrics_namespace(),
            relay_poll: Duration::from_millis(20),
            queue_wait: Duration::from_secs(1),
            maintenance_interval: None,
            pipeline: projectors::PipelineSettings::default(),
            query: query_api::QueryConfig::default(),
        }
    }

    /// A store on this database, migrated; each call opens its own pool and writer, like
    /// another process would.
    pub async fn store(&self) -> EventStore {
        marquee::open_store(&self.settings())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot open the {:?} store at {}: {e:#}",
                    self.backend, self.url
                )
            })
    }

    /// `count` stores on this database, each with its own pool and writer.
    pub async fn stores(&self, count: usize) -> Vec<EventStore> {
        let mut stores = Vec::with_capacity(count);
        for _ in 0..count {
            stores.push(self.store().await);
        }
        stores
    }

    /// Runs SQL straight against the database, past the store: for tests that tamper.
    pub async fn execute(&self, sql: &str) {
        let db = Database::connect(&self.url, PoolSettings::default())
            .await
            .expect("connect");
        db.pool()
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        db.close().await;
    }

    /// Lifts the append-only triggers so a test can play the attacker.
    pub async fn drop_append_only_triggers(&self) {
        self.execute("DROP TRIGGER events_refuse_update").await;
        self.execute("DROP TRIGGER events_refuse_delete").await;
    }

    /// Environment variables that point the `marquee` binary at this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let profile = match self.backend {
            Backend::Sqlite => "embedded",
            Backend::MySql => "aws",
        };
        let mut env = vec![
            ("MARQUEE_PROFILE", profile.to_string()),
            ("DATABASE_URL", self.url.clone()),
            ("MARQUEE_DATA_DIR", self.dir.path().display().to_string()),
            ("MARQUEE_LOG", "warn".to_string()),
            ("MARQUEE_SNS_TOPIC_PREFIX", self.sns_topic_prefix()),
            ("MARQUEE_METRICS_NAMESPACE", self.metrics_namespace()),
            ("MARQUEE_RELAY_POLL_MS", "20".to_string()),
            ("MARQUEE_QUEUE_WAIT_SECONDS", "1".to_string()),
        ];
        if let Some(bucket) = self.poster_bucket() {
            env.push(("MARQUEE_POSTER_BUCKET", bucket));
        }
        if let Some(endpoint) = &self.aws_endpoint {
            env.push(("AWS_ENDPOINT_URL", endpoint.clone()));
        }
        env
    }

    /// This test's own names for SNS topics and SQS queues.
    pub fn sns_topic_prefix(&self) -> String {
        format!("marquee-test-{}-", self.id)
    }

    /// This test's own CloudWatch namespace: tests share the emulator's account.
    pub fn metrics_namespace(&self) -> String {
        format!("Marquee-test-{}", self.id)
    }

    /// Runs the real `marquee` binary against this database.
    pub fn marquee(&self, args: &[&str]) -> Output {
        std::process::Command::new(marquee_binary())
            .args(args)
            .envs(self.env())
            .output()
            .expect("the marquee binary runs")
    }

    /// Starts the real app on a random port.
    pub async fn spawn_app(&self) -> TestApp {
        self.spawn_app_with(|_| {}).await
    }

    /// Starts the real app with settings adjusted for one test.
    pub async fn spawn_app_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings();
        adjust(&mut settings);
        // Server-side errors then show up beside a failing test's output.
        marquee::telemetry::init(&settings);
        let app = marquee::serve::start(&settings, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("the app starts");
        TestApp {
            base_url: format!("http://{}", app.address),
            app,
        }
    }

    /// Starts the real app at the public URL `http://localhost:PORT`, as browsers must reach a
    /// site for passkeys: WebAuthn needs a domain name, and refuses an IP address.
    pub async fn spawn_app_on_localhost(&self) -> TestApp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let public_url = format!("http://localhost:{port}");
        let mut settings = self.settings();
        settings.public_url = Some(public_url.clone());
        marquee::telemetry::init(&settings);
        let app = marquee::serve::start(&settings, ([127, 0, 0, 1], port).into())
            .await
            .expect("the app starts");
        TestApp {
            base_url: public_url,
            app,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.mysql_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime, so the clean-up gets a small runtime of its own.
        let server = self.mysql_server.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(db) =
                    Database::connect(&format!("{server}/mysql"), PoolSettings::default()).await
                {
                    let _ = db
                        .pool()
                        .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                        .await;
                    db.close().await;
                }
            });
        })
        .join();
    }
}

/// Polls `check` until it yields a value or 10 s pass: for work the app finishes in the
/// background (projections), never as a timing assertion.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(10), check).await
}

/// As `eventually`, for background work that takes longer (a pipeline catching up after a crash).
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reading back what the app sent to the AWS emulator.
pub mod moto {
    use aws_config::{BehaviorVersion, SdkConfig};
    use chrono::{TimeDelta, Utc};

    /// The SDK configuration every test client uses: the emulator, the test credentials.
    pub async fn sdk_config() -> SdkConfig {
        sdk_config_at(&super::moto_endpoint()).await
    }

    /// The same for the emulator at `endpoint` (a test's private one).
    pub async fn sdk_config_at(endpoint: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .load()
            .await
    }

    /// The sum of a metric over the last and the next hour, read back through CloudWatch's API.
    pub async fn metric_sum(
        client: &aws_sdk_cloudwatch::Client,
        namespace: &str,
        name: &str,
    ) -> f64 {
        let now = Utc::now();
        let at = |t: chrono::DateTime<Utc>| {
            aws_sdk_cloudwatch::primitives::DateTime::from_secs(t.timestamp())
        };
        client
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(name)
            .start_time(at(now - TimeDelta::hours(1)))
            .end_time(at(now + TimeDelta::hours(1)))
            .period(60)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
            .send()
            .await
            .unwrap()
            .datapoints()
            .iter()
            .filter_map(|point| point.sum())
            .sum()
    }

    /// Every message moto recorded as published to the SNS topic named `topic_name`, as
    /// `[id, message, subject, attributes, group]` (from `/moto-api/data.json`).
    pub async fn published(topic_name: &str) -> Vec<serde_json::Value> {
        published_at(&super::moto_endpoint(), topic_name).await
    }

    /// As `published`, from the emulator at `endpoint`.
    pub async fn published_at(endpoint: &str, topic_name: &str) -> Vec<serde_json::Value> {
        let data: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let suffix = format!(":{topic_name}");
        // moto lists a topic again for each CreateTopic call: gather its messages from all.
        data["sns"]["Topic"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["arn"].as_str().unwrap_or_default().ends_with(&suffix))
            .flat_map(|t| t["sent_notifications"].as_array().unwrap().clone())
            .collect()
    }
}

/// The app under test and where to reach it.
pub struct TestApp {
    pub base_url: String,
    pub app: RunningApp,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Registers `username` (password `correct horse battery`) and signs in; returns the token.
    pub async fn signed_in(&self, username: &str) -> String {
        signed_in_at(&self.base_url, username).await
    }

    pub async fn sign_in(&self, username: &str) -> String {
        sign_in_at(&self.base_url, username).await
    }

    /// Grants `role` the way an operator does, then signs in again so the token carries it.
    pub async fn signed_in_with_role(&self, username: &str, role: domain::Role) -> String {
        self.signed_in(username).await;
        let id = domain::UserId::for_username(&domain::Username::parse(username).unwrap());
        let services = domain::UserServices {
            passwords: std::sync::Arc::new(command_api::Argon2Passwords),
        };
        let grant = domain::UserCommand::GrantRole {
            role,
            by: None,
            at: chrono::Utc::now(),
        };
        self.app
            .store
            .execute::<domain::User>(
                &id.to_string(),
                grant,
                &services,
                &event_store::CommandContext::default(),
            )
            .await
            .unwrap();
        self.sign_in(username).await
    }

    /// Adds a movie as `token`'s user; returns its id.
    pub async fn add_movie(&self, token: &str, title: &str) -> String {
        self.add_movie_at(token, title).await.0
    }

    /// As `add_movie`, also returning the position of its event (for `X-Min-Position`).
    pub async fn add_movie_at(&self, token: &str, title: &str) -> (String, i64) {
        let response = reqwest::Client::new()
            .post(self.url("/api/movies"))
            .bearer_auth(token)
            .json(&serde_json::json!({
                "title": title,
                "year": 1968,
                "director": "Stanley Kubrick",
                "genres": ["Science Fiction"],
                "description": "Apes, a monolith, a computer.",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let body: serde_json::Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_string(),
            body["position"].as_i64().unwrap(),
        )
    }
}

impl TestApp {
    /// Runs the projectors in this process until the app stops, as `marquee project` would
    /// (metrics to this test's CloudWatch namespace on moto), for tests that read the read models
    /// on the aws profile; the embedded profile's `serve` runs its own.
    pub async fn project_in_process(&self, db: &TestDatabase) {
        if db.backend == Backend::Sqlite {
            return;
        }
        let settings = db.settings();
        let aws = marquee::aws_config(&settings).await;
        let adapters = projectors::Adapters {
            metrics: std::sync::Arc::new(projectors::aws::CloudWatchMetrics::new(
                aws_sdk_cloudwatch::Client::new(&aws),
                db.metrics_namespace(),
            )),
            notifier: std::sync::Arc::new(projectors::LogNotifier),
            dead_letters: None,
        };
        for projector in projectors::projectors(&self.app.store, &adapters, &settings.pipeline) {
            tokio::spawn(projectors::tail(
                projector,
                Duration::from_millis(20),
                self.app.stopped(),
            ));
        }
    }
}

/// Registers `username` (password `correct horse battery`) on the app at `base_url` and signs
/// in; returns the token.
pub async fn signed_in_at(base_url: &str, username: &str) -> String {
    let registered = reqwest::Client::new()
        .post(format!("{base_url}/api/users"))
        .json(&serde_json::json!({
            "username": username,
            "email": format!("{username}@example.com"),
            "password": PASSWORD,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        registered.status(),
        201,
        "{}",
        registered.text().await.unwrap()
    );
    sign_in_at(base_url, username).await
}

pub async fn sign_in_at(base_url: &str, username: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/api/sessions"))
        .json(&serde_json::json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: serde_json::Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl TestDatabase {
    /// Starts the real `marquee serve` binary on this database as a child process (killed when
    /// dropped) on `127.0.0.1:port`, its stderr appended to `log`; returns once `/readyz` says 200.
    pub async fn serve_binary(&self, port: u16, log: &std::path::Path) -> tokio::process::Child {
        self.serve_binary_with(port, log, &[]).await
    }

    /// As `serve_binary`, with more environment (`MARQUEE_PUBLIC_URL`, …).
    pub async fn serve_binary_with(
        &self,
        port: u16,
        log: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> tokio::process::Child {
        let bind = format!("127.0.0.1:{port}");
        let mut env = vec![("MARQUEE_BIND", bind.as_str())];
        env.extend_from_slice(extra);
        let child = self.spawn_marquee("serve", log, &env);
        wait_ready(&format!("http://{bind}"), log).await;
        child
    }

    /// Starts a long-running `marquee` command (`serve`, `relay`, `project`) on this database as a
    /// child process (killed when dropped) with `extra` environment, its stderr appended to `log`.
    pub fn spawn_marquee(
        &self,
        command: &str,
        log: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> tokio::process::Child {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the process log");
        tokio::process::Command::new(marquee_binary())
            .arg(command)
            .envs(self.env())
            .envs(extra.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("marquee {command} does not start: {e}"))
    }
}

/// Waits (up to 30 s) until the `serve` at `base` says 200 on `/readyz`; fails showing its `log`.
pub async fn wait_ready(base: &str, log: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = reqwest::get(format!("{base}/readyz")).await {
            if answer.status() == 200 {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve never became ready; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery";

/// The Python of the test virtualenv (`MARQUEE_TEST_VENV`, default `/var/tmp/marquee-venv`),
/// where scripts/test installs moto and gql; fails, never skips, when `module` is not there.
pub fn venv_python_with(module: &str) -> PathBuf {
    let venv =
        std::env::var("MARQUEE_TEST_VENV").unwrap_or_else(|_| "/var/tmp/marquee-venv".into());
    let python = PathBuf::from(&venv).join("bin/python");
    let found = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "{} cannot import {module}: run scripts/test, which installs it into {venv}",
        python.display()
    );
    python
}

/// The `marquee` binary built beside this test binary (`cargo build -p marquee` first; the test
/// command does it).
pub fn marquee_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("marquee");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p marquee` before the tests (scripts/test does)",
        binary.display()
    );
    binary
}

/// Where scripts/package-lambdas leaves the Lambda zips: `lambda/` in the build's target
/// directory (beside `debug/`, which holds this test binary).
pub fn lambda_package_dir() -> PathBuf {
    std::env::current_exe()
        .expect("the test binary's path")
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .join("lambda")
}

/// Declares a test body once and runs it against both backends, as `sqlite::NAME` and
/// `mysql::NAME`; neither is ever skipped.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::TestDatabase::new($crate::Backend::Sqlite).await).await;
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::TestDatabase::new($crate::Backend::MySql).await).await;
                }
            )+
        }
    };
}

/// Domain events and commands for tests, built the way the API builds them.
pub mod fixtures {
    use chrono::{Datelike, Utc};
    use cqrs_es::Aggregate;
    use domain::{
        Description, Director, Genres, Movie, MovieChanges, MovieCommand, MovieDetailsUpdated,
        MovieEvent, MovieId, Title, UserId, Username, Year,
    };
    use event_store::{encode_event, AppendRequest, EventMetadata, NewEvent, StreamId};

    pub fn new_movie_id() -> MovieId {
        MovieId::from(uuid::Uuid::new_v4())
    }

    pub fn some_user() -> UserId {
        UserId::for_username(&Username::parse("tester").unwrap())
    }

    pub fn add_movie(id: MovieId, title: &str) -> MovieCommand {
        MovieCommand::Add {
            id,
            title: Title::parse(title).unwrap(),
            year: Year::parse(1999, Utc::now().year()).unwrap(),
            director: Director::parse("Lana Wachowski").unwrap(),
            genres: Genres::parse(["Science Fiction", "Action"]).unwrap(),
            description: Description::parse("A hacker learns the truth.").unwrap(),
            added_by: some_user(),
            at: Utc::now(),
        }
    }

    /// The event the domain itself makes of `add_movie`, so fixtures never drift from it.
    pub fn movie_added(id: MovieId, title: &str) -> NewEvent {
        let events =
            futures::executor::block_on(Movie::default().handle(add_movie(id, title), &()))
                .expect("a new movie can be added");
        encode(events.into_iter().next().expect("MovieAdded"))
    }

    pub fn movie_retitled(title: &str) -> NewEvent {
        encode(MovieEvent::MovieDetailsUpdated(MovieDetailsUpdated {
            changes: MovieChanges {
                title: Some(Title::parse(title).unwrap()),
                ..MovieChanges::default()
            },
            by: some_user(),
            at: Utc::now(),
        }))
    }

    fn encode(event: MovieEvent) -> NewEvent {
        encode_event(&event, None).expect("domain events encode")
    }

    /// Accepts exactly the password "right", whatever the hash: user fixtures skip argon2.
    struct RightPassword;

    impl domain::PasswordVerifier for RightPassword {
        fn verify(&self, password: &str, _password_hash: &str) -> bool {
            password == "right"
        }
    }

    pub fn user_services() -> domain::UserServices {
        domain::UserServices {
            passwords: std::sync::Arc::new(RightPassword),
        }
    }

    /// Runs a user command through the store as the API would; returns the stored events.
    pub async fn user_command(
        store: &event_store::EventStore,
        username: &str,
        command: domain::UserCommand,
    ) -> Vec<event_store::RecordedEvent> {
        let id = UserId::for_username(&Username::parse(username).unwrap());
        let context = event_store::CommandContext {
            metadata: EventMetadata {
                correlation_id: uuid::Uuid::new_v4().to_string(),
                client_ip: Some("192.0.2.7".into()),
                ..EventMetadata::default()
            },
            data_subject: Some(id.to_string()),
        };
        store
            .execute::<domain::User>(&id.to_string(), command, &user_services(), &context)
            .await
            .expect("the user command is accepted")
            .appended
            .map(|appended| appended.events)
            .unwrap_or_default()
    }

    pub fn register(username: &str) -> domain::UserCommand {
        let name = Username::parse(username).unwrap();
        domain::UserCommand::Register {
            id: UserId::for_username(&name),
            username: name,
            email: domain::Email::parse(&format!("{username}@example.com")).unwrap(),
            password_hash: "not-a-real-hash".into(),
            at: Utc::now(),
        }
    }

    pub fn sign_in(password: &str) -> domain::UserCommand {
        domain::UserCommand::SignInWithPassword {
            password: password.into(),
            ip: Some("192.0.2.7".into()),
            at: Utc::now(),
        }
    }

    /// A passkey as the WebAuthn library would have verified it (the projections only count it).
    pub fn register_passkey(credential_id: &str) -> domain::UserCommand {
        domain::UserCommand::RegisterPasskey {
            credential_id: credential_id.into(),
            passkey: serde_json::json!({ "cred": { "cred_id": credential_id } }),
            at: Utc::now(),
        }
    }

    pub fn movie_stream(id: MovieId) -> StreamId {
        StreamId::new("Movie", id.to_string())
    }

    pub fn append(
        stream: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> AppendRequest {
        AppendRequest {
            stream: stream.clone(),
            expected_version,
            events,
            metadata: EventMetadata {
                correlation_id: uuid::Uuid::new_v4().to_string(),
                causation_id: None,
                actor: Some("tester".into()),
                actor_id: Some(
                    UserId::for_username(&Username::parse("tester").unwrap()).to_string(),
                ),
                client_ip: Some("127.0.0.1".into()),
                user_agent: Some("marquee-tests".into()),
            },
        }
    }
}
