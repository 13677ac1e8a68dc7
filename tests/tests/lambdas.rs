//! The built `projector` and `scheduler` Lambda binaries, run as Lambda runs them (through the
//! Runtime API emulator) against MariaDB and moto. The projector gets real SQS events: messages
//! the relay published through SNS and this test received from the projection's queue, shaped as
//! Lambda's event source mapping hands them over. Every test works in a moto account of its own,
//! whose role credentials the function gets as Lambda gives them, so CloudWatch counts and queues
//! never mix between tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::Utc;
use event_store::{EventStore, RecordedEvent};
use marquee_tests::fixtures::{
    append, movie_added, movie_stream, new_movie_id, register, sign_in, user_command,
};
use marquee_tests::lambda_function::{
    failures, lambda_binary, Function, Queue, INVOCATION_TIMEOUT,
};
use marquee_tests::{moto, moto_endpoint, Backend, TestDatabase};
use projectors::aws::{SnsFifoPublisher, Topology};
use projectors::{
    Adapters, PipelineSettings, Relay, Source, METRICS, NAMESPACE, PROJECTIONS, READ_MODELS,
};
use serde_json::{json, Value};
use sqlx::Row;

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
        Queue::open(self.sqs(), &self.topology.queue(projection)).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_projector_applies_a_batch_once_even_when_it_is_delivered_twice() {
    let world = World::new().await;
    let events = world.add_movies(&["Alien", "Heat", "Ran"]).await;
    world.relay().await;
    let queue = world.queue(READ_MODELS).await;
    let messages = queue.receive(3).await;
    let function = Function::start(
        &lambda_binary("projector"),
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
        &lambda_binary("projector"),
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
    let function = Function::start(
        &lambda_binary("projector"),
        world.env(&[("MARQUEE_PROJECTION", METRICS)]),
    )
    .await;

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
    let function = Function::start(
        &lambda_binary("scheduler"),
        world.env(&[("MARQUEE_LAG_ALERT", "1")]),
    )
    .await;
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
        let mut function = Function::start(&lambda_binary(binary), world.env(&env)).await;
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
