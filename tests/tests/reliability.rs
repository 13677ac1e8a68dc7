//! Faults and load (issue 8): the real `marquee serve` killed with SIGKILL under concurrent
//! commands loses nothing it acknowledged and leaves no half-written command; a storm of
//! concurrent edits of one movie (each client retrying until its edit is in) gives each success
//! its own version, each loser a 409, and a final state equal to the replay of the stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use domain::Movie;
use event_store::{RecordedEvent, StreamId};
use marquee_tests::{
    eventually_within, free_port, on_both_backends, signed_in_at, Backend, TestDatabase,
};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

on_both_backends!(
    acknowledged_commands_survive_kill_9_of_serve,
    conflict_storm_on_one_movie,
);

/// What a 2xx answer acknowledged: the movie, the version it reached and the event's position.
#[derive(Debug, Clone)]
struct Acknowledged {
    movie: String,
    version: i64,
    position: i64,
}

/// Adds a movie, then edits it, again and again, until the server stops answering.
async fn writer(base: String, token: String, n: usize) -> Vec<Acknowledged> {
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    for round in 0.. {
        let Ok(added) = client
            .post(format!("{base}/api/movies"))
            .bearer_auth(&token)
            .json(&json!({
                "title": format!("Reel {n}-{round}"),
                "year": 1970,
                "director": "Agnès Varda",
                "genres": ["Drama"],
                "description": "",
            }))
            .send()
            .await
        else {
            return acknowledged;
        };
        if !added.status().is_success() {
            return acknowledged;
        }
        let Ok(body) = added.json::<Value>().await else {
            return acknowledged;
        };
        let movie = body["id"].as_str().unwrap().to_string();
        acknowledged.push(Acknowledged {
            movie: movie.clone(),
            version: body["version"].as_i64().unwrap(),
            position: body["position"].as_i64().unwrap(),
        });
        for edit in 1..=3 {
            let Ok(edited) = client
                .patch(format!("{base}/api/movies/{movie}"))
                .bearer_auth(&token)
                .header("if-match", format!("\"{edit}\""))
                .json(&json!({ "title": format!("Reel {n}-{round}, cut {edit}") }))
                .send()
                .await
            else {
                return acknowledged;
            };
            if !edited.status().is_success() {
                return acknowledged;
            }
            let Ok(body) = edited.json::<Value>().await else {
                return acknowledged;
            };
            acknowledged.push(Acknowledged {
                movie: movie.clone(),
                version: body["version"].as_i64().unwrap(),
                position: body["position"].as_i64().unwrap(),
            });
        }
    }
    acknowledged
}

/// A long-running `marquee` command (relay, project) as its own process.
fn start(db: &TestDatabase, command: &str) -> Child {
    Command::new(marquee_tests::marquee_binary())
        .arg(command)
        .envs(db.env())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("marquee starts")
}

/// Every event in the store, in order.
async fn all_events(db: &TestDatabase) -> Vec<RecordedEvent> {
    let store = db.store().await;
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.position);
        let page = store.read_all(after, 1000).await.unwrap();
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

async fn acknowledged_commands_survive_kill_9_of_serve(db: TestDatabase) {
    if db.backend == Backend::MySql {
        db.create_poster_bucket().await;
        let provisioned = db.marquee(&["provision"]);
        assert!(provisioned.status.success(), "{provisioned:?}");
    }
    let migrated = db.marquee(&["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = db.serve_binary(port, &log).await;
    let token = signed_in_at(&base, "stuntman").await;

    let writers: Vec<_> = (0..16)
        .map(|n| tokio::spawn(writer(base.clone(), token.clone(), n)))
        .collect();
    // Let the load build up, then kill -9 in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    serve.kill().await.expect("SIGKILL");
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(
        acknowledged.len() >= 16,
        "too little load before the kill: {} acknowledged commands",
        acknowledged.len()
    );

    // Restart on the same database; it takes commands again.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _serve = db.serve_binary(port, &log).await;
    let (_relay, _project) = match db.backend {
        Backend::MySql => (Some(start(&db, "relay")), Some(start(&db, "project"))),
        Backend::Sqlite => (None, None),
    };
    let after = Client::new()
        .post(format!("{base}/api/movies"))
        .bearer_auth(&token)
        .json(
            &json!({ "title": "After the crash", "year": 1971, "director": "Agnès Varda",
                       "genres": ["Drama"], "description": "" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 201, "{}", after.text().await.unwrap());

    // Every stream is whole: sequences 1, 2, 3… and a movie starts with its MovieAdded.
    let events = all_events(&db).await;
    let mut streams: BTreeMap<(String, String), Vec<&RecordedEvent>> = BTreeMap::new();
    for event in &events {
        streams
            .entry((event.aggregate_type.clone(), event.aggregate_id.clone()))
            .or_default()
            .push(event);
    }
    for ((kind, id), stream) in &streams {
        let sequences: Vec<i64> = stream.iter().map(|e| e.sequence).collect();
        let expected: Vec<i64> = (1..=stream.len() as i64).collect();
        assert_eq!(sequences, expected, "{kind} {id} has a hole");
        if kind == "Movie" {
            assert_eq!(stream[0].event_type, "MovieAdded", "movie {id}");
        }
    }
    // Every acknowledged command has its event, where the answer said.
    for ack in &acknowledged {
        let stream = streams
            .get(&("Movie".to_string(), ack.movie.clone()))
            .unwrap_or_else(|| panic!("acknowledged movie {} is not in the store", ack.movie));
        let event = stream
            .iter()
            .find(|e| e.sequence == ack.version)
            .unwrap_or_else(|| panic!("acknowledged {ack:?} is not in the store"));
        assert_eq!(event.position, ack.position, "{ack:?}");
    }

    // The read models catch up with everything, acknowledged or not, and match a replay.
    eventually_within(
        "replay --compare to find no drift",
        Duration::from_secs(60),
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
    println!(
        "{:?}: {} commands acknowledged before the kill, {} events in the store",
        db.backend,
        acknowledged.len(),
        events.len()
    );
}

/// The GraphQL `movie` at or after `min_position`.
async fn movie_in_graphql(base: &str, id: &str, min_position: i64) -> Value {
    let answer: Value = Client::new()
        .post(format!("{base}/graphql"))
        .header("x-min-position", min_position.to_string())
        .json(&json!({
            "query": "query($id: ID!) { movie(id: $id) { title year director genres description version removed } }",
            "variables": { "id": id },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"]["movie"].clone()
}

async fn conflict_storm_on_one_movie(db: TestDatabase) {
    if db.backend == Backend::MySql {
        db.create_poster_bucket().await;
    }
    let app = db.spawn_app().await;
    app.project_in_process(&db).await;
    let token = app.signed_in("stormy").await;
    let (id, added_at) = app.add_movie_at(&token, "Storm").await;

    const CLIENTS: usize = 50;
    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (base, token, id, start) = (
                app.base_url.clone(),
                token.clone(),
                id.clone(),
                start.clone(),
            );
            tokio::spawn(async move {
                start.wait().await;
                // Each client reads the version, edits with it, and on a conflict reads again,
                // until its edit is in.
                let mut outcomes = Vec::new();
                for attempt in 0..500 {
                    let read = movie_in_graphql(&base, &id, added_at).await;
                    let version = read["version"].as_i64().unwrap();
                    let title = format!("Take {n}-{attempt}");
                    let answer = Client::new()
                        .patch(format!("{base}/api/movies/{id}"))
                        .bearer_auth(&token)
                        .header("if-match", format!("\"{version}\""))
                        .json(&json!({ "title": title }))
                        .send()
                        .await
                        .unwrap();
                    let status = answer.status();
                    let body: Value = answer.json().await.unwrap();
                    outcomes.push((status, body, title));
                    if status == StatusCode::OK {
                        return outcomes;
                    }
                }
                panic!("client {n} never got its edit in: {outcomes:?}");
            })
        })
        .collect();
    let mut wins = Vec::new();
    let mut losses = 0;
    for client in clients {
        for (status, body, title) in client.await.unwrap() {
            match status {
                StatusCode::OK => wins.push((
                    body["version"].as_i64().unwrap(),
                    body["position"].as_i64().unwrap(),
                    title,
                )),
                StatusCode::CONFLICT => {
                    assert_eq!(body["error"]["code"], "version_conflict", "{body}");
                    losses += 1;
                }
                other => panic!("{other}: {body}"),
            }
        }
    }
    assert_eq!(wins.len(), CLIENTS, "one win per client");
    assert!(losses > 0, "no conflict in a storm of {CLIENTS} clients");
    wins.sort();
    let versions: BTreeSet<i64> = wins.iter().map(|(version, ..)| *version).collect();
    assert_eq!(versions.len(), wins.len(), "two successes share a version");
    assert_eq!(
        versions,
        (2..=wins.len() as i64 + 1).collect::<BTreeSet<_>>()
    );

    // The stream holds exactly the winners' edits, at the versions and positions they were told.
    let stream = app
        .app
        .store
        .read_stream(&StreamId::new("Movie", &id), 0)
        .await
        .unwrap();
    assert_eq!(stream.len(), wins.len() + 1);
    for (version, position, title) in &wins {
        let event = &stream[*version as usize - 1];
        assert_eq!(event.position, *position);
        assert_eq!(
            event.payload["changes"]["title"], *title,
            "{}",
            event.payload
        );
    }

    // The final state: the aggregate folded from the stream, the read model, the last winner.
    let (movie, version) = app.app.store.load::<Movie>(&id).await.unwrap();
    let folded = movie.state().unwrap();
    let (last_version, last_position, last_title) = wins.last().unwrap();
    assert_eq!(version as i64, *last_version);
    assert_eq!(folded.title.to_string(), *last_title);
    let read = movie_in_graphql(&app.base_url, &id, *last_position).await;
    assert_eq!(
        read,
        json!({
            "title": folded.title.to_string(),
            "year": serde_json::to_value(folded.year).unwrap(),
            "director": folded.director.to_string(),
            "genres": serde_json::to_value(&folded.genres).unwrap(),
            "description": folded.description.to_string(),
            "version": version,
            "removed": folded.removed,
        })
    );
    println!("{:?}: {} wins, {losses} conflicts", db.backend, wins.len());
    // Stops the projectors this test started before its database goes.
    app.app.shutdown().await.unwrap();
}
