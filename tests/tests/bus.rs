//! The aws profile's event pipeline against MariaDB and moto: provisioning, the relay, the SQS
//! consumer and its dead-letter queue, CloudWatch metrics and SNS notifications. Every test names
//! its AWS resources with a prefix of its own, so tests running side by side never meet.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use chrono::Utc;
use event_store::{EventStore, RecordedEvent};
use marquee_tests::fixtures::{append, movie_added, movie_retitled, movie_stream, new_movie_id};
use marquee_tests::{moto, Backend, TestDatabase};
use projectors::aws::{
    dead_letter_depth, queue_url, CloudWatchMetrics, SnsFifoPublisher, SnsNotifier, SqsConsumer,
    Topology,
};
use projectors::{
    handle_messages, statuses, BusMessage, Metrics, Notification, Notifier, Outbox, Projector,
    ReadModels, Relay, Source, Topic, METRICS, NOTIFICATIONS, READ_MODELS, RELAY,
};
use sqlx::Row;
use tokio::sync::watch;

const PROJECTIONS: [&str; 3] = [READ_MODELS, METRICS, NOTIFICATIONS];

/// A prefix of this test's own (queue names stay far below SQS's 80 characters).
fn topology() -> Topology {
    Topology::new(format!(
        "t{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    ))
}

/// Appends `movies` movies of three events each (added, retitled twice); returns their ids.
async fn movies_with_history(store: &EventStore, movies: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..movies {
        let id = new_movie_id();
        let events = vec![
            movie_added(id, &format!("Movie {n}")),
            movie_retitled(&format!("Movie {n}, retitled")),
            movie_retitled(&format!("Movie {n}, final cut")),
        ];
        store
            .append(append(&movie_stream(id), 0, events))
            .await
            .unwrap();
        ids.push(id.to_string());
    }
    ids
}

fn read_models(store: &EventStore) -> Projector {
    Projector::new(store.clone(), Arc::new(ReadModels))
}

async fn movie_versions(store: &EventStore) -> BTreeMap<String, i64> {
    sqlx::query("SELECT id, version FROM rm_movies")
        .fetch_all(store.database().pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                event_store::text_column(row, 0).unwrap().unwrap(),
                row.try_get(1).unwrap(),
            )
        })
        .collect()
}

/// Everything in the queue, in the order received, each deleted once received.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let messages = received.messages().to_vec();
        if messages.is_empty() {
            return all;
        }
        for message in &messages {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        all.extend(messages);
    }
}

fn bus_messages(messages: &[Message]) -> Vec<BusMessage> {
    messages
        .iter()
        .map(|m| BusMessage {
            id: m.message_id().unwrap().to_string(),
            body: m.body().unwrap().to_string(),
        })
        .collect()
}

fn events_of(messages: &[Message]) -> Vec<RecordedEvent> {
    messages
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

async fn relay_everything(relay: &Relay) -> Vec<usize> {
    let mut pages = Vec::new();
    loop {
        let count = relay.run_once().await.unwrap();
        pages.push(count);
        if count == 0 {
            return pages;
        }
    }
}

async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provisioning_twice_creates_each_resource_once() {
    let config = moto::sdk_config().await;
    let topology = topology();
    topology.provision(&config, &PROJECTIONS).await.unwrap();
    topology.provision(&config, &PROJECTIONS).await.unwrap();

    let sns = aws_sdk_sns::Client::new(&config);
    let mut arns = Vec::new();
    let mut pages = sns.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        for topic in page.unwrap().topics() {
            let arn = topic.topic_arn().unwrap();
            if arn.contains(&format!(":{}", topology.prefix)) {
                arns.push(arn.to_string());
            }
        }
    }
    arns.sort();
    let mut expected: Vec<String> = [Topic::Alerts, Topic::Logins, Topic::Movies]
        .into_iter()
        .map(|t| topology.topic(t))
        .chain([topology.events_topic()])
        .collect();
    expected.sort();
    let names: Vec<&str> = arns.iter().map(|a| a.rsplit(':').next().unwrap()).collect();
    assert_eq!(names, expected);

    let events_arn = arns.iter().find(|a| a.ends_with(".fifo")).unwrap();
    let attributes = sns
        .get_topic_attributes()
        .topic_arn(events_arn)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    assert_eq!(
        attributes.get("FifoTopic").map(String::as_str),
        Some("true")
    );

    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(events_arn)
        .send()
        .await
        .unwrap();
    let subscriptions = subscriptions.subscriptions();
    assert_eq!(subscriptions.len(), PROJECTIONS.len(), "{subscriptions:?}");
    for subscription in subscriptions {
        assert_eq!(subscription.protocol(), Some("sqs"));
        let attributes = sns
            .get_subscription_attributes()
            .subscription_arn(subscription.subscription_arn().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            attributes
                .attributes()
                .unwrap()
                .get("RawMessageDelivery")
                .map(String::as_str),
            Some("true")
        );
    }

    let sqs = aws_sdk_sqs::Client::new(&config);
    for projection in PROJECTIONS {
        let url = queue_url(&sqs, &topology.queue(projection)).await.unwrap();
        let dead_letters = queue_url(&sqs, &topology.dead_letter_queue(projection))
            .await
            .unwrap();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = attributes.attributes().unwrap();
        let attribute =
            |name: QueueAttributeName| attributes.get(&name).cloned().unwrap_or_default();
        assert_eq!(attribute(QueueAttributeName::FifoQueue), "true");
        assert_eq!(attribute(QueueAttributeName::VisibilityTimeout), "30");
        let redrive: serde_json::Value =
            serde_json::from_str(&attribute(QueueAttributeName::RedrivePolicy)).unwrap();
        assert_eq!(redrive["maxReceiveCount"], 5);
        assert!(redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", topology.dead_letter_queue(projection))));
        let policy = attribute(QueueAttributeName::Policy);
        assert!(policy.contains(events_arn.as_str()), "{policy}");
        assert!(dead_letters.ends_with(&topology.dead_letter_queue(projection)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_delivers_every_event_once_in_stream_order_to_every_queue() {
    let db = TestDatabase::new(Backend::MySql).await;
    let store = db.store().await;
    let config = moto::sdk_config().await;
    let topology = topology();
    topology.provision(&config, &PROJECTIONS).await.unwrap();
    let movies = movies_with_history(&store, 4).await;

    let publisher = SnsFifoPublisher::connect(&config, &topology).await.unwrap();
    let relay = Relay::new(store.clone(), Arc::new(publisher), 5);
    assert_eq!(relay_everything(&relay).await, [5, 5, 2, 0]);
    assert_eq!(
        relay.checkpoint().await.unwrap(),
        store.head().await.unwrap()
    );
    let status = statuses(&store)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == RELAY)
        .expect("the relay's status");
    assert_eq!((status.lag, status.last_error), (0, None));

    // As the relay publishes them: personal fields sealed, secrets redacted.
    let mut stored = store.read_all_stored(0, 100).await.unwrap();
    stored
        .iter_mut()
        .for_each(|event| store.redact_secrets(event));
    let sqs = aws_sdk_sqs::Client::new(&config);
    for projection in PROJECTIONS {
        let url = queue_url(&sqs, &topology.queue(projection)).await.unwrap();
        let messages = drain(&sqs, &url).await;
        let events = events_of(&messages);
        assert_eq!(events.len(), stored.len(), "{projection}: each event once");
        let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, stored.iter().map(|e| e.event_id).collect());
        for event in &events {
            assert!(stored.contains(event), "{projection}: delivered as stored");
        }
        for movie in &movies {
            let sequences: Vec<i64> = events
                .iter()
                .filter(|e| &e.aggregate_id == movie)
                .map(|e| e.sequence)
                .collect();
            assert_eq!(
                sequences,
                [1, 2, 3],
                "{projection}: stream order of {movie}"
            );
        }
        for (message, event) in messages.iter().zip(&events) {
            let group = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId));
            assert_eq!(group, Some(&event.aggregate_id));
            let attribute = |name: &str| {
                message
                    .message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .map(str::to_string)
            };
            assert_eq!(attribute("eventType"), Some(event.event_type.clone()));
            assert_eq!(attribute("aggregateType"), Some("Movie".to_string()));
        }
        assert_eq!(
            dead_letter_depth(&sqs, &topology, projection)
                .await
                .unwrap(),
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_that_crashed_before_its_checkpoint_has_no_duplicate_effect() {
    let db = TestDatabase::new(Backend::MySql).await;
    let store = db.store().await;
    let config = moto::sdk_config().await;
    let topology = topology();
    topology.provision(&config, &[READ_MODELS]).await.unwrap();
    movies_with_history(&store, 2).await;
    let publisher = SnsFifoPublisher::connect(&config, &topology).await.unwrap();
    let relay = Relay::new(store.clone(), Arc::new(publisher), 100);

    assert_eq!(relay.run_once().await.unwrap(), 6);
    // The crash: the events went out, the checkpoint did not move.
    db.execute(&format!(
        "UPDATE projection_status SET position = 0 WHERE name = '{RELAY}'"
    ))
    .await;
    assert_eq!(relay.run_once().await.unwrap(), 6);
    assert_eq!(relay.checkpoint().await.unwrap(), 6);

    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = queue_url(&sqs, &topology.queue(READ_MODELS)).await.unwrap();
    let messages = drain(&sqs, &url).await;
    assert_eq!(
        messages.len(),
        6,
        "FIFO deduplication drops the republished copies"
    );

    let projector = read_models(&store);
    let delivered = bus_messages(&messages);
    assert!(handle_messages(&projector, &delivered).await.is_empty());
    let versions = movie_versions(&store).await;
    assert_eq!(versions.values().copied().collect::<Vec<_>>(), [3, 3]);

    // Past the deduplication window the copies do arrive: the projector's guard drops them.
    assert!(handle_messages(&projector, &delivered).await.is_empty());
    let again = projector
        .apply(events_of(&messages), Source::Bus)
        .await
        .unwrap();
    assert_eq!((again.applied, again.duplicates), (0, 6));
    assert_eq!(movie_versions(&store).await, versions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudwatch_receives_each_count_once() {
    let db = TestDatabase::new(Backend::MySql).await;
    let store = db.store().await;
    let config = moto::sdk_config().await;
    // A namespace of its own: tests share the emulator's account.
    let namespace = format!("Marquee-test-{}", uuid::Uuid::new_v4());
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    movies_with_history(&store, 3).await;
    let projector = Projector::new(
        store.clone(),
        Arc::new(Metrics::new(Arc::new(CloudWatchMetrics::new(
            cloudwatch.clone(),
            namespace.clone(),
        )))),
    );

    // Applying flushes after the commit.
    assert_eq!(projector.catch_up(100).await.unwrap(), 9);
    let outbox = Outbox::new("cloudwatch");
    assert_eq!(
        outbox.pending(store.database()).await.unwrap(),
        0,
        "{:?}",
        statuses(&store).await.unwrap()
    );
    assert_eq!(
        moto::metric_sum(&cloudwatch, &namespace, "MoviesAdded").await,
        3.0
    );
    assert_eq!(
        moto::metric_sum(&cloudwatch, &namespace, "MoviesUpdated").await,
        6.0
    );

    // Redelivered events and a second flush send nothing more.
    let events = store.read_all(0, 100).await.unwrap();
    let again = projector.apply(events, Source::Bus).await.unwrap();
    assert_eq!(again.duplicates, 9);
    projector.deliver().await;
    assert_eq!(
        moto::metric_sum(&cloudwatch, &namespace, "MoviesAdded").await,
        3.0
    );
    assert_eq!(
        moto::metric_sum(&cloudwatch, &namespace, "MoviesUpdated").await,
        6.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sns_notifications_carry_a_clean_subject_and_the_username() {
    let config = moto::sdk_config().await;
    let topology = topology();
    let notifier = SnsNotifier::connect(&config, &topology).await.unwrap();
    let message = "amélie signed in with a passkey. If this was not you, change your password.";
    notifier
        .send(&Notification {
            topic: Topic::Logins,
            subject: "Marquee: new sign-in\nto amélie's account".into(),
            message: message.into(),
            username: Some("amelie".into()),
        })
        .await
        .unwrap();

    let sent = moto::published(&topology.topic(Topic::Logins)).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0][1], message);
    assert_eq!(sent[0][2], "Marquee: new sign-in to am?lie's account");
    let username = &sent[0][3]["username"];
    assert_eq!(username["Value"], "amelie", "{username}");
    assert_eq!(username["Type"], "String", "{username}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_and_forged_messages_fail_alone() {
    let db = TestDatabase::new(Backend::MySql).await;
    let store = db.store().await;
    let movies = movies_with_history(&store, 2).await;
    let stored = store.read_all(0, 100).await.unwrap();
    let mut forged = stored.last().unwrap().clone();
    forged.event_id = uuid::Uuid::new_v4();
    forged.position += 100;
    forged.sequence += 1;
    forged.event_type = "MovieRemoved".into();
    forged.payload = serde_json::json!({"by": "mallory", "at": Utc::now()});
    forged.hash = "f".repeat(64);

    let mut messages: Vec<BusMessage> = stored
        .iter()
        .map(|event| BusMessage {
            id: format!("good-{}", event.position),
            body: serde_json::to_string(event).unwrap(),
        })
        .collect();
    messages.insert(
        2,
        BusMessage {
            id: "garbage".into(),
            body: "{\"not\": \"an event\"".into(),
        },
    );
    messages.insert(
        4,
        BusMessage {
            id: "forged".into(),
            body: serde_json::to_string(&forged).unwrap(),
        },
    );

    let projector = read_models(&store);
    let mut failed = handle_messages(&projector, &messages).await;
    failed.sort();
    assert_eq!(failed, ["forged", "garbage"]);
    let versions = movie_versions(&store).await;
    assert_eq!(versions.len(), 2);
    for movie in &movies {
        assert_eq!(versions[movie], 3, "every real event applied to {movie}");
    }
    let status = statuses(&store)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == READ_MODELS)
        .unwrap();
    assert_eq!(status.position, 6);
    assert!(status.last_error.is_some(), "the failure is on record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_consumer_projects_good_messages_and_dead_letters_a_poison_one() {
    let db = TestDatabase::new(Backend::MySql).await;
    let store = db.store().await;
    let config = moto::sdk_config().await;
    let topology = topology();
    topology.provision(&config, &[READ_MODELS]).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = queue_url(&sqs, &topology.queue(READ_MODELS)).await.unwrap();
    // Redelivery after one second instead of thirty keeps the five receives short.
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap();
    let movies = movies_with_history(&store, 3).await;

    let mut poison = store.read_all(0, 1).await.unwrap().remove(0);
    poison.event_id = uuid::Uuid::new_v4();
    poison.aggregate_id = new_movie_id().to_string();
    poison.hash = "0".repeat(64);
    let poison_body = serde_json::to_string(&poison).unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body(&poison_body)
        .message_group_id(&poison.aggregate_id)
        .message_deduplication_id(poison.event_id.to_string())
        .send()
        .await
        .unwrap();

    let (stop, stopped) = watch::channel(false);
    let publisher = SnsFifoPublisher::connect(&config, &topology).await.unwrap();
    let relay = Relay::new(store.clone(), Arc::new(publisher), 4);
    let relay_task = tokio::spawn({
        let stopped = stopped.clone();
        async move { relay.run(stopped, Duration::from_millis(100)).await }
    });
    let consumer = SqsConsumer::new(sqs.clone(), url.clone(), Duration::from_secs(1));
    let projector = read_models(&store);
    let consumer_task = tokio::spawn({
        let projector = projector.clone();
        async move { consumer.run(&projector, stopped).await }
    });

    wait_for("the movies in the read model", || async {
        movie_versions(&store)
            .await
            .values()
            .filter(|v| **v == 3)
            .count()
            == movies.len()
    })
    .await;
    wait_for("the poison message in the dead-letter queue", || async {
        dead_letter_depth(&sqs, &topology, READ_MODELS)
            .await
            .unwrap()
            == 1
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        relay_task.await.unwrap();
        consumer_task.await.unwrap();
    })
    .await
    .expect("the relay and the consumer stop when told");

    let left = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    for count in left.attributes().unwrap().values() {
        assert_eq!(count, "0", "every good message was deleted: {left:?}");
    }
    let dead_letters = queue_url(&sqs, &topology.dead_letter_queue(READ_MODELS))
        .await
        .unwrap();
    let dead = drain(&sqs, &dead_letters).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some(poison_body.as_str()));
    let receives: u32 = dead[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        receives > Topology::MAX_RECEIVE_COUNT,
        "{receives} receives"
    );
    assert_eq!(movie_versions(&store).await.len(), movies.len());
    assert_eq!(projector.position().await.unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_records_an_error_and_resumes_when_the_topic_is_back() {
    let db = TestDatabase::new(Backend::MySql).await;
    let store = db.store().await;
    let config = moto::sdk_config().await;
    let topology = topology();
    topology.provision(&config, &[READ_MODELS]).await.unwrap();
    let publisher = SnsFifoPublisher::connect(&config, &topology).await.unwrap();
    let sns = aws_sdk_sns::Client::new(&config);
    let topic_arn = sns
        .create_topic()
        .name(topology.events_topic())
        .attributes("FifoTopic", "true")
        .attributes("ContentBasedDeduplication", "false")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    sns.delete_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
        .unwrap();
    movies_with_history(&store, 1).await;

    let (stop, stopped) = watch::channel(false);
    let relay = Relay::new(store.clone(), Arc::new(publisher), 10);
    let task = tokio::spawn(async move { relay.run(stopped, Duration::from_millis(100)).await });
    let relay_status = || async {
        statuses(&store)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.name == RELAY)
    };
    wait_for("the relay's error on record", || async {
        relay_status().await.is_some_and(|s| s.last_error.is_some())
    })
    .await;
    assert_eq!(relay_status().await.unwrap().position, 0);
    assert!(!task.is_finished(), "the relay keeps going");

    topology.provision(&config, &[READ_MODELS]).await.unwrap();
    wait_for("the relay to catch up", || async {
        relay_status()
            .await
            .is_some_and(|s| s.position == 3 && s.last_error.is_none())
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the relay stops when told")
        .unwrap();

    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = queue_url(&sqs, &topology.queue(READ_MODELS)).await.unwrap();
    assert_eq!(drain(&sqs, &url).await.len(), 3);
}
