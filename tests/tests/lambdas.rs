//! The built `projector` and `scheduler` Lambda binaries, run as Lambda runs them (through the
//! Runtime API emulator) against MariaDB and moto. The projector gets real SQS events: messages
//! the relay published through SNS and this test received from the projection's queue, shaped as
//! Lambda's event source mapping hands them over. Every test works in a moto account of its own,
//! whose role credentials the function gets as Lambda gives them, so CloudWatch counts and queues
//! never mix between tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use base64::Engine as _;
use chrono::Utc;
use event_store::{EventStore, RecordedEvent};
use marquee_tests::fixtures::{
    append, movie_added, movie_stream, new_movie_id, register, sign_in, user_command,
};
use marquee_tests::lambda_runtime::{spawn_function, Invocation, RuntimeApi};
use marquee_tests::{moto, moto_endpoint, Backend, TestDatabase};
use projectors::aws::{queue_url, SnsFifoPublisher, Topology};
use projectors::{
    Adapters, PipelineSettings, Relay, Source, METRICS, NAMESPACE, PROJECTIONS, READ_MODELS,
};
use serde_json::{json, Value};
use sqlx::Row;

/// Lambda's answer time in these tests: generous, as the first invocation opens the pool.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A Lambda binary built beside this test binary (`cargo build -p lambdas` first; the test
/// command does it).
fn lambda_binary(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p lambdas` before the tests (scripts/test does)",
        binary.display()
    );
    binary
}

/// One test's world: a fresh database, a moto account, and the bus provisioned in it.
struct World {
    db: TestDatabase,
    store: EventStore,
    aws: SdkConfig,
    /// The account's role credentials, as Lambda puts them in a function's environment.
    credentials: Vec<(String, String)>,
    topology: Topology,
}

impl World {
    async fn new() -> World {
        let db = TestDatabase::new(Backend::MySql).await;
        let store = db.store().await;
        let (aws, credentials) = account().await;
        let topology = Topology::new(db.sns_topic_prefix());
        topology.provision(&aws, &PROJECTIONS).await.unwrap();
        World {
            db,
            store,
            aws,
            credentials,
            topology,
        }
    }

    /// The function's environment: this world's database, bus and account.
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![
            ("DATABASE_URL".to_string(), self.db.url.clone()),
            (
                "MARQUEE_SNS_TOPIC_PREFIX".to_string(),
                self.topology.prefix.clone(),
            ),
            ("AWS_ENDPOINT_URL".to_string(), moto_endpoint()),
        ];
        env.extend(self.credentials.iter().cloned());
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    async fn add_movies(&self, titles: &[&str]) -> Vec<RecordedEvent> {
        let mut events = Vec::new();
        for title in titles {
            let id = new_movie_id();
            let stored = self
                .store
                .append(append(&movie_stream(id), 0, vec![movie_added(id, title)]))
                .await
                .unwrap();
            events.extend(stored.events);
        }
        events
    }

    /// Publishes every stored event not yet relayed to the SNS FIFO topic.
    async fn relay(&self) {
        let publisher = SnsFifoPublisher::connect(&self.aws, &self.topology)
            .await
            .unwrap();
        let relay = Relay::new(self.store.clone(), Arc::new(publisher), 100);
        while relay.run_once().await.unwrap() > 0 {}
    }

    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.aws)
    }

    async fn queue(&self, projection: &str) -> Queue {
        let sqs = self.sqs();
        let url = queue_url(&sqs, &self.topology.queue(projection))
            .await
            .unwrap();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn = attributes.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
        Queue { sqs, url, arn }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query(sql)
            .fetch_one(self.store.database().pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    /// Every catalogue row as text, to see that a redelivery changed nothing.
    async fn movies(&self) -> BTreeMap<String, String> {
        sqlx::query("SELECT id, title, version, updated_at FROM rm_movies")
            .fetch_all(self.store.database().pool())
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let text = |i| {
                    event_store::text_column(row, i)
                        .unwrap()
                        .unwrap_or_default()
                };
                let version: i64 = row.try_get(2).unwrap();
                (text(0), format!("{} v{version} {}", text(1), text(3)))
            })
            .collect()
    }
}

/// A moto account of this test's own: credentials of a role assumed in it (moto files every
/// request under the account of the access key that signed it).
async fn account() -> (SdkConfig, Vec<(String, String)>) {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .load()
        .await;
    let account = format!("{:012}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000);
    let role = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/marquee-lambda"
    ))
    .session_name("marquee-lambda-test")
    .configure(&base)
    .build()
    .await;
    let credentials = role.provide_credentials().await.unwrap();
    let env = vec![
        (
            "AWS_ACCESS_KEY_ID".to_string(),
            credentials.access_key_id().to_string(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            credentials.secret_access_key().to_string(),
        ),
        (
            "AWS_SESSION_TOKEN".to_string(),
            credentials.session_token().unwrap_or_default().to_string(),
        ),
    ];
    let config = base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    (config, env)
}

/// A projection's queue, read as Lambda's event source mapping reads it.
struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

impl Queue {
    /// Receives `count` messages with every attribute, leaving them in flight (hidden, not
    /// deleted), as the event source mapping does while the function runs.
    async fn receive(&self, count: usize) -> Vec<Message> {
        let mut received: Vec<Message> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while received.len() < count && tokio::time::Instant::now() < deadline {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            received.extend(batch.messages().iter().cloned());
        }
        assert_eq!(received.len(), count, "{received:?}");
        received
    }

    /// Makes in-flight messages visible again, as a failed or timed-out invocation does.
    async fn release(&self, messages: &[Message]) {
        for message in messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(message.receipt_handle().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }

    async fn send(&self, body: &str, group: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .unwrap();
    }

    /// The SQS event Lambda's event source mapping builds from `messages`.
    fn event(&self, messages: &[Message]) -> Value {
        let region = self.arn.split(':').nth(3).unwrap_or_default();
        let records: Vec<Value> = messages
            .iter()
            .map(|message| {
                let attributes: serde_json::Map<String, Value> = message
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str().to_string(), json!(value)))
                    .collect();
                let message_attributes: serde_json::Map<String, Value> = message
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| {
                        let binary = value
                            .binary_value()
                            .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
                        (
                            name.clone(),
                            json!({
                                "stringValue": value.string_value(),
                                "binaryValue": binary,
                                "stringListValues": value.string_list_values(),
                                "binaryListValues": [],
                                "dataType": value.data_type(),
                            }),
                        )
                    })
                    .collect();
                json!({
                    "messageId": message.message_id(),
                    "receiptHandle": message.receipt_handle(),
                    "body": message.body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": message.md5_of_body(),
                    "md5OfMessageAttributes": message.md5_of_message_attributes(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": region,
                })
            })
            .collect();
        json!({ "Records": records })
    }
}

/// A function process talking to its own Runtime API emulator; its stdout (the JSON logs) and
/// stderr go to files the test reads.
struct Function {
    /// Dropped (killed) first: a function whose Runtime API goes away panics in lambda_runtime.
    child: tokio::process::Child,
    runtime: RuntimeApi,
    dir: tempfile::TempDir,
}

impl Function {
    async fn start(binary: &str, mut env: Vec<(String, String)>) -> Function {
        let runtime = RuntimeApi::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("bootstrap");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\nexec \"$LAMBDA_BINARY\" >\"$LAMBDA_DIR/stdout\" 2>\"$LAMBDA_DIR/stderr\"\n",
        )
        .unwrap();
        set_executable(&wrapper);
        env.push((
            "LAMBDA_BINARY".into(),
            lambda_binary(binary).display().to_string(),
        ));
        env.push(("LAMBDA_DIR".into(), dir.path().display().to_string()));
        let mut attempts = 0;
        let child = loop {
            match spawn_function(&wrapper, &runtime, &env).await {
                Ok((child, _)) => break child,
                // Another test's fork may briefly hold the fresh script open for writing.
                Err(e) if attempts < 10 && format!("{e:#}").contains("busy") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e:#}"),
            }
        };
        Function {
            child,
            runtime,
            dir,
        }
    }

    /// Invokes the function and returns its answer; an error it reports fails the test.
    async fn invoke(&self, event: Value) -> Value {
        match self.runtime.invoke(event, INVOCATION_TIMEOUT).await {
            Ok(Invocation::Response(answer)) => answer,
            Ok(Invocation::Error { error_type, body }) => panic!(
                "the function failed ({error_type:?}): {body}\nits log:\n{}",
                self.log()
            ),
            Err(e) => panic!(
                "{e:#}\nits log:\n{}\nits stderr:\n{}",
                self.log(),
                self.output("stderr")
            ),
        }
    }

    fn log(&self) -> String {
        self.output("stdout")
    }

    fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn log_lines(&self) -> Vec<Value> {
        self.log()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
            })
            .collect()
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {answer}"))
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_projector_applies_a_batch_once_even_when_it_is_delivered_twice() {
    let world = World::new().await;
    let events = world.add_movies(&["Alien", "Heat", "Ran"]).await;
    world.relay().await;
    let queue = world.queue(READ_MODELS).await;
    let messages = queue.receive(3).await;
    let function = Function::start(
        "projector",
        world.env(&[("MARQUEE_PROJECTION", READ_MODELS)]),
    )
    .await;

    let answer = function.invoke(queue.event(&messages)).await;
    assert_eq!(failures(&answer), Vec::<String>::new(), "{answer}");
    let movies = world.movies().await;
    assert_eq!(movies.len(), 3, "{movies:?}");
    for title in ["Alien", "Heat", "Ran"] {
        assert!(
            movies
                .values()
                .any(|row| row.starts_with(&format!("{title} v1 "))),
            "{movies:?}"
        );
    }

    // SQS delivers at least once: the same messages again, as a second receive hands them out.
    queue.release(&messages).await;
    let again = queue.receive(3).await;
    assert!(again.iter().all(|m| m.attributes().unwrap()
        [&MessageSystemAttributeName::ApproximateReceiveCount]
        == "2"));
    let answer = function.invoke(queue.event(&again)).await;
    assert_eq!(failures(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(world.movies().await, movies);

    // Every line is JSON and carries the Lambda request id; each message's line names the
    // correlation id of the request that caused its event.
    let lines = function.log_lines();
    let received: Vec<&Value> = lines
        .iter()
        .filter(|line| line["message"] == "message received")
        .collect();
    assert_eq!(received.len(), 6, "{}", function.log());
    for line in &received {
        let request_id = line["span"]["requestId"].as_str().unwrap_or_default();
        assert!(!request_id.is_empty(), "no request id in {line}");
    }
    for event in &events {
        let correlation_id = event.metadata["correlationId"].as_str().unwrap();
        let position = event.position;
        assert_eq!(
            received
                .iter()
                .filter(
                    |line| line["correlation_id"] == correlation_id && line["position"] == position
                )
                .count(),
            2,
            "{}",
            function.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_garbage_message_is_the_only_failure_of_its_batch() {
    let world = World::new().await;
    world.add_movies(&["Alien", "Heat"]).await;
    world.relay().await;
    let queue = world.queue(READ_MODELS).await;
    queue.send("this is not an event", "garbage").await;
    let messages = queue.receive(3).await;
    let garbage = messages
        .iter()
        .find(|m| m.body() == Some("this is not an event"))
        .unwrap()
        .message_id()
        .unwrap()
        .to_string();
    let function = Function::start(
        "projector",
        world.env(&[("MARQUEE_PROJECTION", READ_MODELS)]),
    )
    .await;

    let answer = function.invoke(queue.event(&messages)).await;
    assert_eq!(failures(&answer), vec![garbage], "{answer}");
    assert_eq!(world.movies().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_metrics_projector_puts_each_count_to_cloudwatch_once() {
    let world = World::new().await;
    world.add_movies(&["Alien", "Heat", "Ran"]).await;
    user_command(&world.store, "dana", register("dana")).await;
    user_command(&world.store, "dana", sign_in("wrong")).await;
    user_command(&world.store, "dana", sign_in("wrong")).await;
    world.relay().await;
    let queue = world.queue(METRICS).await;
    let messages = queue.receive(6).await;
    let function =
        Function::start("projector", world.env(&[("MARQUEE_PROJECTION", METRICS)])).await;

    let answer = function.invoke(queue.event(&messages)).await;
    assert_eq!(failures(&answer), Vec::<String>::new(), "{answer}");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&world.aws);
    let expected = [
        ("MoviesAdded", 3.0),
        ("UsersRegistered", 1.0),
        ("LoginFailed", 2.0),
    ];
    for (name, count) in expected {
        assert_eq!(
            moto::metric_sum(&cloudwatch, NAMESPACE, name).await,
            count,
            "{name}"
        );
    }

    queue.release(&messages).await;
    let again = queue.receive(6).await;
    let answer = function.invoke(queue.event(&again)).await;
    assert_eq!(failures(&answer), Vec::<String>::new(), "{answer}");
    for (name, count) in expected {
        assert_eq!(
            moto::metric_sum(&cloudwatch, NAMESPACE, name).await,
            count,
            "{name} after a redelivery"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_seals_a_checkpoint_measures_lag_and_sends_the_digest() {
    let world = World::new().await;
    let events = world.add_movies(&["Alien", "Heat", "Ran"]).await;
    // The read models have applied the first event only: two behind.
    let read_models = projectors::projector(
        &world.store,
        &Adapters::local(),
        &PipelineSettings::default(),
        READ_MODELS,
    )
    .unwrap();
    read_models
        .apply(vec![events[0].clone()], Source::Store)
        .await
        .unwrap();
    let function = Function::start("scheduler", world.env(&[("MARQUEE_LAG_ALERT", "1")])).await;
    let schedule = json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": Utc::now().to_rfc3339(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/marquee-maintenance"],
        "detail": {},
    });

    let report = function.invoke(schedule.clone()).await;
    assert_eq!(report["checkpoint"], events[2].position, "{report}");
    assert_eq!(report["lag"], 2, "{report}");
    assert_eq!(report["unlocked"], json!([]), "{report}");
    let dead_letters = report["deadLetters"].as_array().unwrap();
    assert_eq!(dead_letters.len(), 3, "{report}");
    assert!(
        dead_letters.iter().all(|queue| queue["depth"] == 0),
        "{report}"
    );

    // The digest and the lag alert went out through SNS: sent, so marked in the outbox.
    let yesterday = Utc::now().date_naive().pred_opt().unwrap();
    let sent = |key: String| {
        format!(
            "SELECT COUNT(*) FROM outbox WHERE channel = 'notifications' \
             AND effect_key LIKE '{key}' AND sent_at IS NOT NULL"
        )
    };
    assert_eq!(world.scalar(&sent(format!("digest:{yesterday}"))).await, 1);
    assert_eq!(world.scalar(&sent("lag:%".into())).await, 1);

    // Again: nothing new to seal, and the digest is not sent twice.
    let report = function.invoke(schedule).await;
    assert_eq!(report["checkpoint"], Value::Null, "{report}");
    assert_eq!(
        world
            .scalar("SELECT COUNT(*) FROM outbox WHERE effect_key LIKE 'digest:%'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_configuration_fails_the_init_with_a_message_that_names_it() {
    let world = World::new().await;
    let cases = [
        (
            "projector",
            vec![("MARQUEE_PROJECTION", "bogus")],
            "MARQUEE_PROJECTION \"bogus\" is not a projection: use one of read-models, metrics, notifications",
        ),
        (
            "projector",
            vec![
                ("MARQUEE_PROJECTION", READ_MODELS),
                ("DATABASE_URL", "postgres://app:s3cret@db/marquee"),
            ],
            "DATABASE_URL \"postgres://app:***@db/marquee\" must be a mysql:// URL",
        ),
        (
            "scheduler",
            vec![("DATABASE_URL", "")],
            "DATABASE_URL is required",
        ),
        (
            "scheduler",
            vec![("MARQUEE_LAG_ALERT", "lots")],
            "MARQUEE_LAG_ALERT \"lots\" is not a whole number",
        ),
    ];
    for (binary, env, expected) in cases {
        let mut function = Function::start(binary, world.env(&env)).await;
        let refused = function
            .runtime
            .invoke(json!({}), INVOCATION_TIMEOUT)
            .await
            .expect_err("a function that cannot start answers nothing");
        let reported = function
            .runtime
            .init_error()
            .unwrap_or_else(|| panic!("{binary} {env:?}: no init error reported ({refused:#})"));
        let message = reported["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{binary} {env:?}: {reported}");
        assert!(!message.contains("s3cret"), "{reported}");
        let status = tokio::time::timeout(Duration::from_secs(10), function.child.wait())
            .await
            .expect("the function exits")
            .unwrap();
        assert!(!status.success(), "{binary} {env:?}: {status}");
        let stderr = function.output("stderr");
        assert!(stderr.contains(expected), "{binary} {env:?}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}
