//! The `marquee` binary as operators and auditors use it.

use std::process::Output;

use command_api::Argon2Passwords;
use domain::{Email, Role, User, UserCommand, UserId, Username};
use marquee_tests::fixtures::{
    append, movie_added, movie_retitled, movie_stream, new_movie_id, user_command,
};
use marquee_tests::{marquee_binary, on_both_backends, Backend, TestDatabase};
use serde_json::Value;

on_both_backends!(
    migrate_is_idempotent,
    events_export_as_jsonl_and_csv_with_filters,
    grant_role_bootstraps_the_first_admin,
);

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn help_lists_every_contract_command() {
    let help = std::process::Command::new(marquee_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    for command in [
        "serve", "migrate", "relay", "project", "replay", "verify", "events", "user",
    ] {
        assert!(
            stdout(&help).contains(&format!("  {command} ")),
            "{command} missing"
        );
    }
    let user_help = std::process::Command::new(marquee_binary())
        .args(["user", "--help"])
        .output()
        .unwrap();
    assert!(stdout(&user_help).contains("grant-role"));
    assert!(stdout(&user_help).contains("forget"));
}

#[tokio::test]
async fn bus_commands_outside_the_aws_profile_say_where_they_belong() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    for command in ["relay", "project", "provision"] {
        let output = db.marquee(&[command]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        assert!(
            stderr(&output).contains("belongs to the aws profile"),
            "{command}: {}",
            stderr(&output)
        );
    }
    let output = db.marquee(&["replay", "--compare", "--projection", "metrics"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("only the read-models projection"));
}

#[tokio::test]
async fn bad_configuration_stops_with_a_clear_message() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let run = |env: &[(&str, &str)]| {
        std::process::Command::new(marquee_binary())
            .arg("verify")
            .envs(db.env())
            .env_remove("DATABASE_URL")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let missing_url = run(&[("MARQUEE_PROFILE", "aws")]);
    assert_eq!(missing_url.status.code(), Some(2));
    assert!(stderr(&missing_url).contains("DATABASE_URL is required in the aws profile"));

    let wrong_url = run(&[("DATABASE_URL", "mysql://root:hunter2@db/m")]);
    assert_eq!(wrong_url.status.code(), Some(2));
    assert!(stderr(&wrong_url).contains("does not fit the embedded profile"));
    assert!(!stderr(&wrong_url).contains("hunter2"), "a password leaked");

    let bad_endpoint = run(&[("AWS_ENDPOINT_URL", "moto:5000")]);
    assert_eq!(bad_endpoint.status.code(), Some(2));
    assert!(stderr(&bad_endpoint).contains("AWS_ENDPOINT_URL \"moto:5000\""));

    let bad_profile = run(&[("MARQUEE_PROFILE", "cloud")]);
    assert_eq!(bad_profile.status.code(), Some(2));
    assert!(stderr(&bad_profile).contains("invalid value 'cloud'"));
}

async fn migrate_is_idempotent(db: TestDatabase) {
    for _ in 0..2 {
        let output = db.marquee(&["migrate"]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains("migrations applied"));
    }
    let verified = db.marquee(&["verify"]);
    assert!(verified.status.success(), "{}", stdout(&verified));
}

async fn events_export_as_jsonl_and_csv_with_filters(db: TestDatabase) {
    let store = db.store().await;
    let (first, second) = (new_movie_id(), new_movie_id());
    for id in [first, second] {
        store
            .append(append(
                &movie_stream(id),
                0,
                vec![movie_added(id, "Solaris, \"1972\"")],
            ))
            .await
            .unwrap();
    }
    store
        .append(append(
            &movie_stream(first),
            1,
            vec![movie_retitled("Solaris")],
        ))
        .await
        .unwrap();

    let all = db.marquee(&["events"]);
    assert!(all.status.success(), "{}", stderr(&all));
    let lines: Vec<Value> = stdout(&all)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["position"], 1);
    assert_eq!(lines[0]["eventType"], "MovieAdded");
    assert_eq!(lines[0]["payload"]["title"], "Solaris, \"1972\"");
    assert_eq!(lines[2]["prevHash"], lines[0]["hash"]);

    let one = db.marquee(&["events", "--aggregate", &first.to_string(), "--from", "2"]);
    let positions: Vec<i64> = stdout(&one)
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, vec![3]);

    let csv = db.marquee(&["events", "--format", "csv"]);
    let text = stdout(&csv);
    let mut rows = text.lines();
    assert!(rows
        .next()
        .unwrap()
        .starts_with("position,eventId,aggregateType"));
    let first_row = rows.next().unwrap();
    assert!(first_row.starts_with("1,"));
    assert!(
        first_row.contains(r#""title"":""Solaris, \""1972\"""""#),
        "{first_row}"
    );
    assert_eq!(rows.count(), 2);

    let bad = db.marquee(&["events", "--format", "xml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("use jsonl or csv"));
    let zero = db.marquee(&["events", "--from", "0"]);
    assert_eq!(zero.status.code(), Some(2));
}

async fn grant_role_bootstraps_the_first_admin(db: TestDatabase) {
    let store = db.store().await;
    let username = Username::parse("Alice").unwrap();
    let id = UserId::for_username(&username);
    let register = UserCommand::Register {
        id,
        username,
        email: Email::parse("alice@example.com").unwrap(),
        password_hash: Argon2Passwords
            .hash("correct horse battery")
            .unwrap()
            .into(),
        at: chrono::Utc::now(),
    };
    user_command(&store, "alice", register).await;

    let granted = db.marquee(&["user", "grant-role", "alice", "admin"]);
    assert!(granted.status.success(), "{}", stderr(&granted));
    assert!(stdout(&granted).contains("granted admin to alice (position 2)"));
    let (user, _) = store.load::<User>(&id.to_string()).await.unwrap();
    assert!(user.state().unwrap().roles.contains(&Role::Admin));
    let events = store
        .read_stream(&event_store::StreamId::new("User", id.to_string()), 1)
        .await
        .unwrap();
    assert_eq!(events[0].event_type, "RoleGranted");
    assert_eq!(events[0].metadata["actor"], "operator");

    let again = db.marquee(&["user", "grant-role", "alice", "admin"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already has the admin role"));
    let nobody = db.marquee(&["user", "grant-role", "bob", "auditor"]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(stderr(&nobody).contains("there is no user named bob"));
    let bad_role = db.marquee(&["user", "grant-role", "alice", "owner"]);
    assert_eq!(bad_role.status.code(), Some(1));
    assert!(stderr(&bad_role).contains("invalid role"));
}
