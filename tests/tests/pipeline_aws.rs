//! The aws profile end to end, on MariaDB and the moto server: `marquee serve` takes commands,
//! the real `marquee relay` publishes to SNS FIFO, the real `marquee project` consumes the SQS
//! queues; read models, CloudWatch datapoints and SNS notifications follow. Then the relay and
//! the projectors are killed mid-stream and restarted: nothing is lost or counted twice.

use std::process::Stdio;

use marquee_tests::{eventually, marquee_binary, moto, Backend, TestApp, TestDatabase};
use sqlx::Row;
use tokio::process::{Child, Command};

/// A long-running `marquee` command (relay, project) as its own process.
fn start(db: &TestDatabase, command: &str) -> Child {
    Command::new(marquee_binary())
        .arg(command)
        .envs(db.env())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("marquee starts")
}

async fn movies_in_read_model(app: &TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM rm_movies")
        .fetch_one(app.app.store.database().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn metric_sum(db: &TestDatabase, name: &str) -> f64 {
    let client = aws_sdk_cloudwatch::Client::new(&moto::sdk_config().await);
    moto::metric_sum(&client, &db.metrics_namespace(), name).await
}

async fn published(db: &TestDatabase, topic: &str) -> Vec<serde_json::Value> {
    moto::published(&format!("{}{topic}", db.sns_topic_prefix())).await
}

async fn setup() -> (TestDatabase, TestApp) {
    let db = TestDatabase::new(Backend::MySql).await;
    db.create_poster_bucket().await;
    let provisioned = db.marquee(&["provision"]);
    assert!(provisioned.status.success(), "{provisioned:?}");
    let app = db.spawn_app().await;
    (db, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_reaches_read_models_cloudwatch_and_sns() {
    let (db, app) = setup().await;
    let _relay = start(&db, "relay");
    let _project = start(&db, "project");
    let token = app.signed_in("nora").await;
    let id = app.add_movie(&token, "Playtime").await;

    let title: String = eventually("the movie in the read model", || {
        let store = app.app.store.clone();
        let id = id.clone();
        async move {
            let row = sqlx::query("SELECT title FROM rm_movies WHERE id = ?")
                .bind(id)
                .fetch_optional(store.database().pool())
                .await
                .unwrap()?;
            event_store::text_column(&row, 0).unwrap()
        }
    })
    .await;
    assert_eq!(title, "Playtime");
    for metric in ["MoviesAdded", "UsersRegistered", "LoginSucceeded"] {
        let sum = eventually(metric, || async {
            Some(metric_sum(&db, metric).await).filter(|sum| *sum > 0.0)
        })
        .await;
        assert_eq!(sum, 1.0, "{metric}");
    }
    let movies = eventually("the new-movie notification", || async {
        Some(published(&db, "movies").await).filter(|sent| !sent.is_empty())
    })
    .await;
    assert_eq!(movies.len(), 1);
    assert_eq!(movies[0][2], "New on Marquee: Playtime");
    let logins = eventually("the sign-in notification", || async {
        Some(published(&db, "logins").await).filter(|sent| !sent.is_empty())
    })
    .await;
    assert_eq!(logins[0][3]["username"]["Value"], "nora");
    let compared = db.marquee(&["replay", "--compare"]);
    assert!(compared.status.success(), "{compared:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_relay_and_projectors_lose_nothing_and_count_nothing_twice() {
    let (db, app) = setup().await;
    // Messages a killed consumer had received come back after the visibility timeout: 2 s here
    // instead of 30 s, so the test need not wait that long.
    let sqs = aws_sdk_sqs::Client::new(&moto::sdk_config().await);
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
    let token = app.signed_in("otto").await;
    let mut relay = start(&db, "relay");
    let mut project = start(&db, "project");
    let mut added = 0;
    for round in 0..3 {
        let writers: Vec<_> = (0..8)
            .map(|n| {
                let url = app.url("/api/movies");
                let token = token.clone();
                tokio::spawn(async move {
                    let response = reqwest::Client::new()
                        .post(url)
                        .bearer_auth(token)
                        .json(&serde_json::json!({
                            "title": format!("Reel {round}-{n}"),
                            "year": 1970,
                            "director": "Agnès Varda",
                            "genres": ["Drama"],
                            "description": "",
                        }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 201);
                })
            })
            .collect();
        // Mid-stream: the relay, then the projectors, die without a chance to clean up.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        match round {
            0 => relay.start_kill().unwrap(),
            1 => project.start_kill().unwrap(),
            _ => {}
        }
        for writer in writers {
            writer.await.unwrap();
        }
        added += 8;
        match round {
            0 => {
                relay.wait().await.unwrap();
                relay = start(&db, "relay");
            }
            1 => {
                project.wait().await.unwrap();
                project = start(&db, "project");
            }
            _ => {}
        }
    }
    eventually("every movie in the read model", || async {
        (movies_in_read_model(&app).await == added).then_some(())
    })
    .await;
    let sum = eventually("every MoviesAdded datapoint", || async {
        Some(metric_sum(&db, "MoviesAdded").await).filter(|sum| *sum >= added as f64)
    })
    .await;
    assert_eq!(sum, added as f64, "each movie counted once");
    let notified = eventually("every new-movie notification", || async {
        Some(published(&db, "movies").await).filter(|sent| sent.len() >= added as usize)
    })
    .await;
    assert_eq!(notified.len(), added as usize, "each movie announced once");
    let compared = db.marquee(&["replay", "--compare"]);
    assert!(compared.status.success(), "{compared:?}");
    let verified = db.marquee(&["verify"]);
    assert!(verified.status.success(), "{verified:?}");
    drop(relay);
    drop(project);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_message_is_dead_lettered_and_admins_are_alerted() {
    let (db, app) = setup().await;
    let config = moto::sdk_config().await;
    let topology = projectors::aws::Topology::new(db.sns_topic_prefix())
        .with_metrics_namespace(db.metrics_namespace());
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = projectors::aws::queue_url(&sqs, &topology.queue(projectors::READ_MODELS))
        .await
        .unwrap();
    // Redelivery at once instead of after 30 s, so the five receives take no time.
    sqs.set_queue_attributes()
        .queue_url(&queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "0",
        )
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queue)
        .message_body("{\"not\": \"an event\"}")
        .message_group_id("poison")
        .message_deduplication_id("poison-1")
        .send()
        .await
        .unwrap();
    let _relay = start(&db, "relay");
    let _project = start(&db, "project");
    let token = app.signed_in("pia").await;
    app.add_movie(&token, "Stalker").await;

    eventually("the good movie in the read model", || async {
        (movies_in_read_model(&app).await == 1).then_some(())
    })
    .await;
    eventually("the poison message in the dead-letter queue", || {
        let (sqs, topology) = (sqs.clone(), topology.clone());
        async move {
            let depth =
                projectors::aws::dead_letter_depth(&sqs, &topology, projectors::READ_MODELS)
                    .await
                    .unwrap();
            (depth == 1).then_some(())
        }
    })
    .await;
    let store = app.app.store.clone();
    let adapters = projectors::Adapters::aws(&config, &topology).await.unwrap();
    let maintenance =
        projectors::maintenance(&store, &adapters, &projectors::PipelineSettings::default());
    let report = maintenance.run(chrono::Utc::now()).await.unwrap();
    let dead_letter_queue = topology.dead_letter_queue(projectors::READ_MODELS);
    assert!(
        report
            .dead_letters
            .contains(&(dead_letter_queue.clone(), 1)),
        "{report:?}"
    );
    let alerts = published(&db, "alerts").await;
    let alert = alerts
        .iter()
        .find(|sent| {
            sent[1]
                .as_str()
                .unwrap_or_default()
                .contains(&dead_letter_queue)
        })
        .unwrap_or_else(|| panic!("no dead-letter alert in {alerts:?}"));
    assert_eq!(alert[2], "Marquee: messages in a dead-letter queue");
    // A second run in the same hour does not repeat the alert.
    maintenance.run(chrono::Utc::now()).await.unwrap();
    let repeated = published(&db, "alerts").await;
    let count = |sent: &[serde_json::Value]| {
        sent.iter()
            .filter(|s| {
                s[1].as_str()
                    .unwrap_or_default()
                    .contains(&dead_letter_queue)
            })
            .count()
    };
    assert_eq!(count(&repeated), 1);
}
