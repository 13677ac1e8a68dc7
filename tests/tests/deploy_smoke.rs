//! The aws profile as `deploy/template.yaml` deploys it, run on this machine: the topics, queues
//! and subscriptions are created on moto from the template's own resources (so their names are
//! the template's), the database user is bootstrapped with `deploy/app-user.sql`, `marquee serve`
//! and `marquee relay` run as processes with the environment the instances' user data writes, and
//! the packaged `projector` Lambda (the `bootstrap` in its zip) runs through the Runtime API
//! emulator with the template's environment on real SQS messages. A command then reaches the
//! read model. Also: readiness needs SNS, logs are JSON lines carrying the correlation id, and
//! serve drains a request in flight on SIGTERM.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_config::SdkConfig;
use marquee_tests::lambda_function::{failures, Function, Queue};
use marquee_tests::template::{resolve, scalar, Scope, Template};
use marquee_tests::{
    eventually, free_port, marquee_binary, moto, wait_ready, Backend, TestDatabase, PASSWORD,
};
use projectors::aws::Topology;
use projectors::{Topic, PROJECTIONS, READ_MODELS};
use serde_json::{json, Value};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The template's parameters with their defaults, this test's prefix and namespace, and what
/// CloudFormation itself would supply.
fn cloudformation_scope(template: &Template, db: &TestDatabase) -> Scope {
    let mut scope = template.parameter_defaults();
    scope.insert("Prefix".into(), db.sns_topic_prefix());
    scope.insert("MetricsNamespace".into(), db.metrics_namespace());
    scope.insert("AWS::Region".into(), "us-east-1".into());
    scope.insert("AWS::Partition".into(), "aws".into());
    scope.insert("AWS::AccountId".into(), "123456789012".into());
    scope.insert("AWS::StackName".into(), "marquee-smoke".into());
    scope
}

/// Creates the template's SNS topics, SQS queues (dead-letter queues first, so redrive policies
/// can name them) and subscriptions on moto, and records their ARNs, URLs and names in `scope`.
async fn create_bus_from_template(template: &Template, scope: &mut Scope, aws: &SdkConfig) {
    let sns = aws_sdk_sns::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    for (id, properties) in template.resources("AWS::SNS::Topic") {
        let mut create = sns
            .create_topic()
            .name(resolve(&properties["TopicName"], scope));
        for attribute in ["FifoTopic", "ContentBasedDeduplication"] {
            if let Some(value) = scalar(&properties[attribute]) {
                create = create.attributes(attribute, value);
            }
        }
        let arn = create
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();
        scope.insert(id, arn);
    }
    let mut queues = template.resources("AWS::SQS::Queue");
    queues.sort_by_key(|(_, properties)| !properties["RedrivePolicy"].is_null());
    for (id, properties) in queues {
        let name = resolve(&properties["QueueName"], scope);
        let mut create = sqs.create_queue().queue_name(&name);
        for attribute in ["FifoQueue", "VisibilityTimeout", "MessageRetentionPeriod"] {
            if let Some(value) = scalar(&properties[attribute]) {
                create = create.attributes(attribute.into(), value);
            }
        }
        let redrive = &properties["RedrivePolicy"];
        if !redrive.is_null() {
            let policy = json!({
                "deadLetterTargetArn": resolve(&redrive["deadLetterTargetArn"], scope),
                "maxReceiveCount": resolve(&redrive["maxReceiveCount"], scope).parse::<u32>().unwrap(),
            });
            create = create.attributes("RedrivePolicy".into(), policy.to_string());
        }
        let url = create
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let queue = Queue::open(sqs.clone(), &name).await;
        scope.insert(format!("{id}.Arn"), queue.arn);
        scope.insert(format!("{id}.QueueName"), name);
        scope.insert(id, url);
    }
    for (_, properties) in template.resources("AWS::SNS::Subscription") {
        let mut subscribe = sns
            .subscribe()
            .topic_arn(resolve(&properties["TopicArn"], scope))
            .protocol(resolve(&properties["Protocol"], scope))
            .endpoint(resolve(&properties["Endpoint"], scope));
        if let Some(raw) = scalar(&properties["RawMessageDelivery"]) {
            subscribe = subscribe.attributes("RawMessageDelivery", raw);
        }
        subscribe.send().await.unwrap();
    }
}

/// The names the binaries derive from the prefix (`projectors::aws::Topology`).
fn topology_names(topology: &Topology) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [Topic::Alerts, Topic::Movies, Topic::Logins]
        .into_iter()
        .map(|topic| topology.topic(topic))
        .collect();
    names.insert(topology.events_topic());
    for projection in PROJECTIONS {
        names.insert(topology.queue(projection));
        names.insert(topology.dead_letter_queue(projection));
    }
    names
}

/// The database name at the end of a test database's URL.
fn database_name(db: &TestDatabase) -> String {
    db.url.rsplit('/').next().unwrap().to_string()
}

/// The instances' database bootstrap (docs/deploy.md) on the test database: the app user,
/// created with a password, then `deploy/app-user.sql` (its user and database renamed for this
/// test). Returns the user's name and DATABASE_URL.
async fn bootstrap_app_user(db: &TestDatabase) -> (String, String) {
    let database = database_name(db);
    let user = format!("app_{}", &database[database.len() - 12..]);
    let password = uuid::Uuid::new_v4().simple().to_string();
    db.execute(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .await;
    let grants = std::fs::read_to_string(Template::path().with_file_name("app-user.sql")).unwrap();
    for statement in statements(&grants) {
        let statement = statement
            .replace("'marquee_app'@'%'", &format!("'{user}'@'%'"))
            .replace("`marquee`.", &format!("`{database}`."));
        db.execute(&statement).await;
    }
    let server = marquee_tests::mysql_server_url();
    let host = server.rsplit('@').next().unwrap();
    let url = format!("mysql://{user}:{password}@{host}/{database}");
    (user, url)
}

/// The SQL statements of a script, comments dropped.
fn statements(script: &str) -> Vec<String> {
    let code: String = script
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The environment file the instances' user data writes (between `<<ENV` and `ENV`), resolved.
fn instance_environment(template: &Template, scope: &Scope) -> Vec<(String, String)> {
    let (_, launch) = template
        .resources("AWS::EC2::LaunchTemplate")
        .pop()
        .expect("a launch template");
    let user_data = resolve(&launch["LaunchTemplateData"]["UserData"], scope);
    for expected in [
        "for service in serve relay",
        "ExecStart=/usr/local/bin/marquee $service",
        "EnvironmentFile=/etc/marquee/marquee.env",
        "systemctl enable --now marquee-serve.service marquee-relay.service",
        "http://127.0.0.1:8080/readyz",
    ] {
        assert!(user_data.contains(expected), "user data lacks {expected:?}");
    }
    let start = user_data.find("<<ENV\n").expect("the environment file") + "<<ENV\n".len();
    let end = start + user_data[start..].find("\nENV\n").expect("its end");
    user_data[start..end]
        .lines()
        .map(|line| {
            let (name, value) = line.split_once('=').expect("NAME=value");
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// A Lambda function's environment from the template: the globals, then its own.
fn function_environment(
    template: &Template,
    function: &str,
    scope: &Scope,
) -> HashMap<String, String> {
    let (_, properties) = template
        .resources("AWS::Serverless::Function")
        .into_iter()
        .find(|(id, _)| id == function)
        .expect("the function");
    let globals = &template.section("Globals")["Function"]["Environment"]["Variables"];
    let own = &properties["Environment"]["Variables"];
    [globals, own]
        .into_iter()
        .filter_map(|variables| variables.as_mapping())
        .flat_map(|variables| variables.iter())
        .map(|(name, value)| (name.as_str().unwrap().to_string(), resolve(value, scope)))
        .collect()
}

/// A `marquee` command as its own process; its stderr (the log) goes to `log`.
fn spawn_marquee(command: &str, env: &[(String, String)], log: &Path) -> Child {
    Command::new(marquee_binary())
        .arg(command)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // The emulator, its credentials and region, as an instance role and its metadata would
        // provide them; `env` may override any of them.
        .envs(
            [
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_REGION",
                "AWS_EC2_METADATA_DISABLED",
            ]
            .into_iter()
            .filter_map(|name| Some((name, std::env::var(name).ok()?))),
        )
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("marquee starts")
}

/// The JSON log lines of a process.
fn json_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
        })
        .collect()
}

/// The `bootstrap` of a zip made by scripts/package-lambdas, extracted into `dir`.
fn packaged_bootstrap(function: &str, dir: &Path) -> PathBuf {
    let zip = marquee_tests::lambda_package_dir().join(format!("{function}.zip"));
    assert!(
        zip.exists(),
        "{} is missing: run scripts/package-lambdas (scripts/test does)",
        zip.display()
    );
    let status = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let bootstrap = dir.join("bootstrap");
    // Python's extraction drops the mode; the zip's own is checked by lambda_packages.rs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    bootstrap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_deployed_aws_profile_takes_a_command_to_the_read_model() {
    let db = TestDatabase::new(Backend::MySql).await;
    let template = Template::load();
    let mut scope = cloudformation_scope(&template, &db);
    let aws = moto::sdk_config().await;

    // The bus: exactly the names the binaries derive, created from the template's resources.
    let topology = Topology::new(db.sns_topic_prefix());
    let declared: BTreeSet<String> = template
        .resources("AWS::SNS::Topic")
        .iter()
        .map(|(_, p)| resolve(&p["TopicName"], &scope))
        .chain(
            template
                .resources("AWS::SQS::Queue")
                .iter()
                .map(|(_, p)| resolve(&p["QueueName"], &scope)),
        )
        .collect();
    assert_eq!(declared, topology_names(&topology));
    create_bus_from_template(&template, &mut scope, &aws).await;
    db.create_poster_bucket().await;

    // The database: migrated by the admin (root here), then the app user's bootstrap.
    let migrated = db.marquee(&["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let (app_user, app_url) = bootstrap_app_user(&db).await;

    // serve and relay as the instances run them.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    scope.insert("Origin".into(), base.clone());
    scope.insert("PosterBucket".into(), db.poster_bucket().unwrap());
    for name in [
        "ArtifactBucket",
        "Release",
        "AppDbSecret",
        "Database.Endpoint.Address",
        "Database.Endpoint.Port",
        "Database.MasterUserSecret.SecretArn",
    ] {
        scope.insert(name.into(), format!("<{name}>"));
    }
    let mut env = instance_environment(&template, &scope);
    for (name, value) in &mut env {
        match name.as_str() {
            // The user data fills these in from the secret and the database endpoint.
            "DATABASE_URL" => *value = app_url.clone(),
            "MARQUEE_BIND" => *value = format!("127.0.0.1:{port}"),
            _ => {}
        }
    }
    env.push(("MARQUEE_LOG".into(), "info".into()));
    env.push(("MARQUEE_RELAY_POLL_MS".into(), "20".into()));
    let logs = tempfile::tempdir().unwrap();
    let serve_log = logs.path().join("serve.log");
    let _serve = spawn_marquee("serve", &env, &serve_log);
    let _relay = spawn_marquee("relay", &env, &logs.path().join("relay.log"));
    wait_ready(&base, &serve_log).await;

    // A user signs up, signs in and adds a movie, all under one correlation id.
    let correlation = format!("smoke-{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder| {
        let correlation = correlation.clone();
        async move {
            let answer = request
                .header("X-Request-Id", correlation)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{status}: {body}");
            body
        }
    };
    send(client.post(format!("{base}/api/users")).json(&json!({
        "username": "smoky", "email": "smoky@example.com", "password": PASSWORD,
    })))
    .await;
    let session = send(client.post(format!("{base}/api/sessions")).json(&json!({
        "username": "smoky", "password": PASSWORD,
    })))
    .await;
    let token = session["token"].as_str().unwrap();
    let added = send(
        client
            .post(format!("{base}/api/movies"))
            .bearer_auth(token)
            .json(&json!({
                "title": "Smoke", "year": 1995, "director": "Wayne Wang",
                "genres": ["Comedy"], "description": "A cigar shop in Brooklyn.",
            })),
    )
    .await;
    let movie = added["id"].as_str().unwrap().to_string();
    // Positions are dense from 1: the movie's is the number of events stored so far.
    let events = usize::try_from(added["position"].as_u64().unwrap()).unwrap();

    // The relay has put every event on the read-models queue; the packaged projector
    // Lambda, configured as the template configures it, applies them.
    let (_, function) = template
        .resources("AWS::Serverless::Function")
        .into_iter()
        .find(|(id, _)| id == "ReadModelsProjector")
        .unwrap();
    let mapping = &function["Events"]["Queue"]["Properties"];
    assert_eq!(
        resolve(&mapping["Queue"], &scope),
        scope["ReadModelsQueue.Arn"]
    );
    assert_eq!(
        mapping["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    let queue = Queue::open(aws_sdk_sqs::Client::new(&aws), &topology.queue(READ_MODELS)).await;
    let messages = queue.receive(events).await;
    let mut function_env: Vec<(String, String)> =
        function_environment(&template, "ReadModelsProjector", &scope)
            .into_iter()
            .map(|(name, value)| match name.as_str() {
                "DATABASE_URL" => (name, app_url.clone()),
                _ => (name, value),
            })
            .collect();
    function_env.push(("AWS_ENDPOINT_URL".into(), marquee_tests::moto_endpoint()));
    assert!(function_env.contains(&("MARQUEE_PROJECTION".into(), READ_MODELS.into())));
    let unpacked = tempfile::tempdir().unwrap();
    let bootstrap = packaged_bootstrap("projector", unpacked.path());
    let projector = Function::start(&bootstrap, function_env).await;
    let answer = projector.invoke(queue.event(&messages)).await;
    assert_eq!(failures(&answer), Vec::<String>::new(), "{answer}");

    let store = db.store().await;
    let title: String = eventually("the movie in the read model", || {
        let (store, movie) = (store.clone(), movie.clone());
        async move {
            let row = sqlx::query("SELECT title FROM rm_movies WHERE id = ?")
                .bind(movie)
                .fetch_optional(store.database().pool())
                .await
                .unwrap()?;
            event_store::text_column(&row, 0).unwrap()
        }
    })
    .await;
    assert_eq!(title, "Smoke");

    // One correlation id from the HTTP request to the Lambda's log line, both JSON.
    let served = json_lines(&serve_log);
    assert!(
        served.iter().any(
            |line| line["span"]["correlation_id"] == correlation.as_str() && line["status"] == 201
        ),
        "no access-log line with the correlation id: {served:?}"
    );
    let projected = projector.log_lines();
    assert!(
        projected
            .iter()
            .any(|line| line["correlation_id"] == correlation.as_str()),
        "{}",
        projector.log()
    );

    // The app user cannot rewrite history, whatever the triggers say, nor change the schema.
    let app = event_store::Database::connect(&app_url, event_store::PoolSettings::default())
        .await
        .unwrap();
    for forbidden in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "DELETE FROM ledger_checkpoints",
        "DROP TABLE rm_movies",
        "CREATE TABLE sneaky (id INT)",
    ] {
        let error = sqlx::query(forbidden)
            .execute(app.pool())
            .await
            .expect_err(forbidden)
            .to_string();
        assert!(error.contains("denied"), "{forbidden}: {error}");
    }
    app.close().await;
    // And every table has its grant in the bootstrap script.
    let grants = std::fs::read_to_string(Template::path().with_file_name("app-user.sql")).unwrap();
    let tables =
        sqlx::query("SELECT table_name FROM information_schema.tables WHERE table_schema = ?")
            .bind(database_name(&db))
            .fetch_all(store.database().pool())
            .await
            .unwrap();
    for row in tables {
        let table = event_store::text_column(&row, 0).unwrap().unwrap();
        assert!(
            grants.contains(&format!("`marquee`.`{table}`")),
            "deploy/app-user.sql grants nothing on {table}"
        );
    }
    let verified = db.marquee(&["verify"]);
    assert!(verified.status.success(), "{verified:?}");
    // Users outlive the test database; this one has served its purpose.
    db.execute(&format!("DROP USER '{app_user}'@'%'")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_needs_the_bus() {
    let db = TestDatabase::new(Backend::MySql).await;
    let app = db.spawn_app().await;
    let ready = || async { reqwest::get(app.url("/readyz")).await.unwrap() };
    assert_eq!(ready().await.status(), 200);
    // SNS stops answering for the server's topics: not ready, though the database answers.
    let sns = aws_sdk_sns::Client::new(&moto::sdk_config().await);
    let alerts = sns
        .create_topic()
        .name(format!("{}alerts", db.sns_topic_prefix()))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    sns.delete_topic().topic_arn(&alerts).send().await.unwrap();
    let answer = ready().await;
    assert_eq!(answer.status(), 503);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    // Back (CreateTopic gives the same ARN): ready again.
    sns.create_topic()
        .name(format!("{}alerts", db.sns_topic_prefix()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready().await.status(), 200);
    app.app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_drains_a_request_in_flight_on_sigterm() {
    let db = TestDatabase::new(Backend::MySql).await;
    let provisioned = db.marquee(&["provision"]);
    assert!(provisioned.status.success(), "{provisioned:?}");
    let port = free_port();
    let mut env: Vec<(String, String)> = db
        .env()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    env.push(("MARQUEE_BIND".into(), format!("127.0.0.1:{port}")));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let mut serve = spawn_marquee("serve", &env, &log);
    wait_ready(&format!("http://127.0.0.1:{port}"), &log).await;

    // Half a registration is on the wire when SIGTERM arrives; the rest follows after it.
    let body =
        json!({"username": "drained", "email": "d@example.com", "password": PASSWORD}).to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    connection.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = serve.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    connection.write_all(second.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        connection.read_to_string(&mut answer),
    )
    .await
    .expect("an answer")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = tokio::time::timeout(Duration::from_secs(10), serve.wait())
        .await
        .expect("serve exits after draining")
        .unwrap();
    assert!(status.success(), "{status}");
    // Nothing listens any more, and the drained registration was stored.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    let stored = db.store().await;
    let users: i64 = sqlx::query("SELECT COUNT(*) FROM events WHERE event_type = 'UserRegistered'")
        .fetch_one(stored.database().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(users, 1);
}
