//! The GraphQL query API against the real app, on SQLite and on MariaDB: the catalogue, accounts,
//! history, the ledger, admin figures, read-your-writes, limits, roles and live updates over a
//! real WebSocket, also from a second app on the same database.

use std::collections::HashSet;
use std::time::Duration;

use domain::Role;
use marquee_tests::graphql_ws::Socket;
use marquee_tests::{eventually, on_both_backends, Backend, TestApp, TestDatabase};
use reqwest::Client;
use serde_json::{json, Value};

on_both_backends!(
    the_catalogue_pages_filters_and_searches,
    accounts_history_and_the_ledger,
    admins_see_stats_metrics_and_projections,
    admins_see_alerts_and_dead_letters,
    reads_wait_for_their_writes,
    abusive_queries_are_refused,
    every_role_sees_only_its_fields,
    subscriptions_follow_the_store_across_apps,
    a_quiet_subscriber_is_pinged_and_keeps_its_subscription,
    a_cookie_websocket_from_another_site_is_refused,
);

/// Starts the app with its projectors running (in this process on the aws profile).
async fn start(db: &TestDatabase) -> TestApp {
    let app = db.spawn_app().await;
    app.project_in_process(db).await;
    app
}

/// Runs a GraphQL request; returns the whole answer (`data` and `errors`).
async fn gql(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    gql_at(app, token, query, variables, None).await
}

async fn gql_at(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
    min_position: Option<&str>,
) -> Value {
    let mut request = Client::new()
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(position) = min_position {
        request = request.header("x-min-position", position);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The `data` of an answer that must have no errors.
fn data(answer: Value) -> Value {
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"].clone()
}

/// The `extensions.code` of an answer's first error.
fn error_code(answer: &Value) -> String {
    let error = &answer["errors"][0];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
    error["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {answer}"))
        .to_string()
}

/// Adds a movie; returns its id and the event's position.
async fn add(
    app: &TestApp,
    token: &str,
    title: &str,
    year: i64,
    director: &str,
    genres: &[&str],
) -> (String, i64) {
    let response = Client::new()
        .post(app.url("/api/movies"))
        .bearer_auth(token)
        .json(&json!({
            "title": title, "year": year, "director": director, "genres": genres,
            "description": format!("{title}, a film by {director}."),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_string(),
        body["position"].as_i64().unwrap(),
    )
}

async fn remove(app: &TestApp, token: &str, id: &str) -> i64 {
    let response = Client::new()
        .delete(app.url(&format!("/api/movies/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["position"].as_i64().unwrap()
}

const PAGE: &str = "query($first: Int, $after: String, $order: MovieOrder, $filter: MovieFilter) {
  movies(first: $first, after: $after, orderBy: $order, filter: $filter) {
    totalCount
    edges { cursor node { id title year director genres addedBy removed posterUrl } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Every movie in `order`, two at a time; checks the pages join without overlap.
async fn all_pages(app: &TestApp, order: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = data(
            gql(
                app,
                None,
                PAGE,
                json!({ "first": 2, "after": after, "order": order }),
            )
            .await,
        );
        let movies = &page["movies"];
        let edges = movies["edges"].as_array().unwrap();
        assert!(edges.len() <= 2);
        seen.extend(edges.iter().map(|e| e["node"].clone()));
        if !movies["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return seen;
        }
        after = movies["pageInfo"]["endCursor"].clone();
    }
}

async fn the_catalogue_pages_filters_and_searches(db: TestDatabase) {
    let app = start(&db).await;
    let token = app.signed_in("curator").await;
    let catalogue = [
        (
            "2001: A Space Odyssey",
            1968,
            "Stanley Kubrick",
            vec!["Science Fiction"],
        ),
        (
            "Alien",
            1979,
            "Ridley Scott",
            vec!["Horror", "Science Fiction"],
        ),
        (
            "Blade Runner",
            1982,
            "Ridley Scott",
            vec!["Science Fiction"],
        ),
        (
            "Amélie",
            2001,
            "Jean-Pierre Jeunet",
            vec!["Comedy", "Romance"],
        ),
        ("Barry Lyndon", 1975, "Stanley Kubrick", vec!["Drama"]),
        ("Cleo from 5 to 7", 1962, "Agnès Varda", vec!["Drama"]),
        ("Dr. Strangelove", 1964, "Stanley Kubrick", vec!["Comedy"]),
    ];
    let mut ids = Vec::new();
    let mut last = 0;
    for (title, year, director, genres) in &catalogue {
        let (id, position) = add(&app, &token, title, *year, director, genres).await;
        ids.push(id);
        last = position;
    }
    let (gone, _) = add(&app, &token, "Removed Picture", 1990, "Nobody", &["Drama"]).await;
    let removed_at = remove(&app, &token, &gone).await;
    assert!(removed_at > last);
    // Read-your-writes: the page answers once the removal is in the read model.
    let first = data(
        gql_at(
            &app,
            None,
            PAGE,
            json!({ "first": 3 }),
            Some(&removed_at.to_string()),
        )
        .await,
    );
    assert_eq!(first["movies"]["totalCount"], 7);
    assert_eq!(
        first["movies"]["edges"][0]["node"]["title"],
        "Dr. Strangelove"
    );
    assert_eq!(first["movies"]["edges"][0]["node"]["addedBy"], "curator");

    let expected: HashSet<String> = ids.iter().cloned().collect();
    for (order, key) in [
        ("ADDED_AT_DESC", ""),
        ("TITLE_ASC", "title"),
        ("YEAR_DESC", "year"),
    ] {
        let movies = all_pages(&app, order).await;
        let got: Vec<String> = movies
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got.len(), 7, "{order}: {got:?}");
        assert_eq!(
            got.iter().cloned().collect::<HashSet<_>>(),
            expected,
            "{order}"
        );
        match key {
            "title" => {
                let titles: Vec<String> = movies
                    .iter()
                    .map(|m| m["title"].as_str().unwrap().to_lowercase())
                    .collect();
                let mut sorted = titles.clone();
                sorted.sort();
                assert_eq!(titles, sorted);
            }
            "year" => {
                let years: Vec<i64> = movies.iter().map(|m| m["year"].as_i64().unwrap()).collect();
                assert!(years.windows(2).all(|w| w[0] >= w[1]), "{years:?}");
            }
            _ => {
                let mut newest_first = ids.clone();
                newest_first.reverse();
                assert_eq!(got, newest_first);
            }
        }
    }

    let titles = |answer: Value| -> Vec<String> {
        let mut titles: Vec<String> = data(answer)["movies"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["title"].as_str().unwrap().to_string())
            .collect();
        titles.sort();
        titles
    };
    let filtered = |filter: Value| gql(&app, None, PAGE, json!({ "first": 50, "filter": filter }));
    assert_eq!(titles(filtered(json!({ "year": 1979 })).await), ["Alien"]);
    assert_eq!(
        titles(filtered(json!({ "genre": "science fiction" })).await),
        ["2001: A Space Odyssey", "Alien", "Blade Runner"]
    );
    assert_eq!(
        titles(filtered(json!({ "director": "ridley scott" })).await),
        ["Alien", "Blade Runner"]
    );
    assert_eq!(
        titles(filtered(json!({ "search": "odyssey" })).await),
        ["2001: A Space Odyssey"]
    );
    assert_eq!(
        titles(filtered(json!({ "search": "Kubrick", "genre": "Comedy" })).await),
        ["Dr. Strangelove"]
    );
    assert_eq!(
        titles(filtered(json!({ "search": "blade runn" })).await),
        ["Blade Runner"]
    );
    let count = data(filtered(json!({ "director": "Stanley Kubrick" })).await);
    assert_eq!(count["movies"]["totalCount"], 3);
    for hostile in [
        "\"",
        "*",
        "')--",
        "NEAR(",
        "\"Odyssey",
        "odyssey\" OR \"",
        "title:alien",
        "-+~<>@()",
        "alien)--",
    ] {
        let answer = filtered(json!({ "search": hostile })).await;
        let found = titles(answer);
        assert!(
            found.is_empty() || found.len() == 1,
            "{hostile:?} found {found:?}"
        );
    }
    assert!(titles(filtered(json!({ "search": "alien)--" })).await) == ["Alien"]);

    let one = data(
        gql(
            &app,
            None,
            "query($id: ID!) { movie(id: $id) { title removed version } }",
            json!({ "id": gone }),
        )
        .await,
    );
    assert_eq!(one["movie"]["removed"], true);
    assert_eq!(one["movie"]["version"], 2);
    let missing = data(
        gql(
            &app,
            None,
            "{ movie(id: \"no-such-movie\") { title } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(missing["movie"], Value::Null);
    let too_big = gql(&app, None, PAGE, json!({ "first": 101 })).await;
    assert_eq!(error_code(&too_big), "page_size_exceeded");
    let bad_cursor = gql(&app, None, PAGE, json!({ "after": "not-a-cursor" })).await;
    assert_eq!(error_code(&bad_cursor), "bad_cursor");
}

async fn accounts_history_and_the_ledger(db: TestDatabase) {
    let app = start(&db).await;
    let auditor = app.signed_in_with_role("audrey", Role::Auditor).await;
    let user = app.signed_in("ulysses").await;
    let (id, _) = add(&app, &user, "Original Title", 1999, "Someone", &["Drama"]).await;
    let before_edit = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let edited = Client::new()
        .patch(app.url(&format!("/api/movies/{id}")))
        .bearer_auth(&user)
        .header("if-match", "\"1\"")
        .json(&json!({ "title": "New Title" }))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let position = edited.json::<Value>().await.unwrap()["position"]
        .as_i64()
        .unwrap();

    let me = data(
        gql_at(
            &app,
            Some(&auditor),
            "{ me { username email roles passkeys logins(first: 5) { at method succeeded } } }",
            json!({}),
            Some(&position.to_string()),
        )
        .await,
    );
    assert_eq!(me["me"]["username"], "audrey");
    assert_eq!(me["me"]["email"], "audrey@example.com");
    assert!(me["me"]["roles"]
        .as_array()
        .unwrap()
        .contains(&json!("auditor")));
    assert_eq!(me["me"]["passkeys"], 0);
    let logins = me["me"]["logins"].as_array().unwrap();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(logins
        .iter()
        .all(|l| l["succeeded"] == true && l["method"] == "password"));
    let anonymous = data(gql(&app, None, "{ me { username } }", json!({})).await);
    assert_eq!(anonymous["me"], Value::Null);

    let events = "query($after: String, $id: ID, $types: [String!], $from: DateTime) {
      events(first: 2, after: $after, aggregateId: $id, eventTypes: $types, from: $from) {
        edges { cursor node { position aggregateType aggregateId sequence eventType schemaVersion payload metadata recordedAt hash prevHash } }
        pageInfo { hasNextPage endCursor }
      }
    }";
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = data(gql(&app, Some(&auditor), events, json!({ "after": after })).await);
        let connection = &page["events"];
        all.extend(
            connection["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    let positions: Vec<i64> = all
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    let head = app.app.store.head().await.unwrap();
    assert_eq!(positions, (1..=head).collect::<Vec<_>>());
    let movie_events = data(gql(&app, Some(&auditor), events, json!({ "id": id })).await);
    let nodes = movie_events["events"]["edges"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["node"]["eventType"], "MovieAdded");
    assert_eq!(nodes[0]["node"]["payload"]["title"], "Original Title");
    assert!(nodes[0]["node"]["metadata"]["correlationId"].is_string());
    assert_eq!(nodes[1]["node"]["prevHash"], nodes[0]["node"]["hash"]);
    let typed = data(
        gql(
            &app,
            Some(&auditor),
            events,
            json!({ "types": ["MovieDetailsUpdated"] }),
        )
        .await,
    );
    assert_eq!(typed["events"]["edges"].as_array().unwrap().len(), 1);
    let recent = data(
        gql(
            &app,
            Some(&auditor),
            events,
            json!({ "from": before_edit.to_rfc3339() }),
        )
        .await,
    );
    assert_eq!(
        recent["events"]["edges"][0]["node"]["eventType"],
        "MovieDetailsUpdated"
    );

    let as_of = "query($id: ID!, $at: DateTime, $version: Int) {
      movieAsOf(id: $id, at: $at, version: $version) { title version addedBy }
    }";
    let v1 = data(
        gql(
            &app,
            Some(&auditor),
            as_of,
            json!({ "id": id, "version": 1 }),
        )
        .await,
    );
    assert_eq!(v1["movieAsOf"]["title"], "Original Title");
    assert_eq!(v1["movieAsOf"]["version"], 1);
    assert_eq!(v1["movieAsOf"]["addedBy"], "ulysses");
    let then = data(
        gql(
            &app,
            Some(&auditor),
            as_of,
            json!({ "id": id, "at": before_edit.to_rfc3339() }),
        )
        .await,
    );
    assert_eq!(then["movieAsOf"]["title"], "Original Title");
    let now = data(gql(&app, Some(&auditor), as_of, json!({ "id": id })).await);
    assert_eq!(now["movieAsOf"]["title"], "New Title");
    assert_eq!(now["movieAsOf"]["version"], 2);
    let before = data(
        gql(
            &app,
            Some(&auditor),
            as_of,
            json!({ "id": id, "at": "2000-01-01T00:00:00Z" }),
        )
        .await,
    );
    assert_eq!(before["movieAsOf"], Value::Null);

    let ledger = "query($incremental: Boolean) {
      ledger(incremental: $incremental) { intact checkedEvents firstBrokenPosition lastCheckpoint problems { position kind } }
    }";
    let intact = data(gql(&app, Some(&auditor), ledger, json!({})).await);
    assert_eq!(intact["ledger"]["intact"], true);
    assert_eq!(intact["ledger"]["checkedEvents"], head);
    app.app.store.seal_checkpoint().await.unwrap();
    let (_, _) = add(
        &app,
        &user,
        "After The Checkpoint",
        2000,
        "Someone",
        &["Drama"],
    )
    .await;
    let incremental = data(gql(&app, Some(&auditor), ledger, json!({ "incremental": true })).await);
    assert_eq!(incremental["ledger"]["intact"], true);
    assert_eq!(incremental["ledger"]["checkedEvents"], 1);
    assert_eq!(incremental["ledger"]["lastCheckpoint"], head);

    db.drop_append_only_triggers().await;
    db.execute(&format!(
        "UPDATE events SET payload = '{{\"by\":\"x\",\"changes\":{{\"title\":\"Tampered\"}},\"at\":\"2020-01-01T00:00:00Z\"}}' WHERE position = {position}"
    ))
    .await;
    let tampered = data(gql(&app, Some(&auditor), ledger, json!({})).await);
    assert_eq!(tampered["ledger"]["intact"], false);
    assert_eq!(tampered["ledger"]["firstBrokenPosition"], position);
    assert!(tampered["ledger"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["kind"] == "hash_mismatch"));
}

async fn admins_see_stats_metrics_and_projections(db: TestDatabase) {
    let app = start(&db).await;
    let admin = app.signed_in_with_role("adele", Role::Admin).await;
    let (_, position) = add(&app, &admin, "Counted", 2010, "Someone", &["Drama"]).await;
    let stats = data(
        gql_at(
            &app,
            Some(&admin),
            "{ stats { movies users moviesAddedToday loginsToday failedLoginsToday projectionLag } }",
            json!({}),
            Some(&position.to_string()),
        )
        .await,
    );
    assert_eq!(stats["stats"]["movies"], 1);
    assert_eq!(stats["stats"]["users"], 1);
    assert_eq!(stats["stats"]["moviesAddedToday"], 1);
    assert_eq!(stats["stats"]["loginsToday"], 2);
    assert_eq!(stats["stats"]["failedLoginsToday"], 0);

    let projections = data(
        gql(
            &app,
            Some(&admin),
            "{ projections { name position lag lastError } }",
            json!({}),
        )
        .await,
    );
    let read_models = projections["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "read-models")
        .cloned()
        .expect("the read-models projection is listed");
    assert!(read_models["position"].as_i64().unwrap() >= position);
    assert_eq!(read_models["lastError"], Value::Null);

    let metric = "query($name: String!) { metrics(name: $name, periodSeconds: 60) { at value } }";
    let added: f64 = eventually("the MoviesAdded metric", || async {
        let answer = data(gql(&app, Some(&admin), metric, json!({ "name": "MoviesAdded" })).await);
        let total: f64 = answer["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .sum();
        (total > 0.0).then_some(total)
    })
    .await;
    assert_eq!(added, 1.0);
    let unknown = gql(&app, Some(&admin), metric, json!({ "name": "Nope" })).await;
    assert_eq!(error_code(&unknown), "unknown_metric");
}

async fn admins_see_alerts_and_dead_letters(db: TestDatabase) {
    if db.backend == Backend::MySql {
        // The dead-letter queues the probe asks SQS about.
        let provisioned = db.marquee(&["provision"]);
        assert!(provisioned.status.success(), "{provisioned:?}");
    }
    let app = start(&db).await;
    let admin = app.signed_in_with_role("alma", Role::Admin).await;
    let auditor = app.signed_in_with_role("otto", Role::Auditor).await;
    let (id, _) = add(&app, &admin, "Doomed", 1999, "Someone", &["Drama"]).await;
    remove(&app, &admin, &id).await;
    let query = "{ alerts(first: 5) { at subject message sentAt attempts lastError } }";
    let alerts = eventually("the removal's alert, sent", || async {
        let answer = data(gql(&app, Some(&admin), query, json!({})).await);
        let alerts = answer["alerts"].as_array().unwrap().clone();
        alerts
            .iter()
            .any(|a| a["sentAt"].is_string())
            .then_some(alerts)
    })
    .await;
    // Only the `alerts` topic: the new movie's notification (`movies`) is left out.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["subject"], "Marquee: movie removed: Doomed");
    assert!(alerts[0]["message"].as_str().unwrap().contains(&id));
    assert_eq!(alerts[0]["attempts"], 1);
    assert_eq!(alerts[0]["lastError"], Value::Null);
    let too_many = gql(
        &app,
        Some(&admin),
        "{ alerts(first: 101) { at } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&too_many), "page_size_exceeded");

    let queues = data(
        gql(
            &app,
            Some(&admin),
            "{ deadLetters { queue messages } }",
            json!({}),
        )
        .await,
    );
    let queues = queues["deadLetters"].as_array().unwrap();
    match db.backend {
        // No queues in the embedded profile.
        Backend::Sqlite => assert!(queues.is_empty(), "{queues:?}"),
        Backend::MySql => {
            assert_eq!(queues.len(), 3, "{queues:?}");
            assert!(queues.iter().all(|q| q["messages"] == 0), "{queues:?}");
        }
    }
    for field in ["{ deadLetters { queue } }", "{ alerts { at } }"] {
        let refused = gql(&app, Some(&auditor), field, json!({})).await;
        assert_eq!(error_code(&refused), "forbidden", "{field}");
    }
}

async fn reads_wait_for_their_writes(db: TestDatabase) {
    let app = db
        .spawn_app_with(|settings| {
            settings.query.min_position_wait = Duration::from_millis(300);
        })
        .await;
    app.project_in_process(&db).await;
    let token = app.signed_in("reader").await;
    let (id, position) = add(&app, &token, "Fresh", 2020, "Someone", &["Drama"]).await;
    let query = "query($id: ID!) { movie(id: $id) { title } }";
    let fresh = data(
        gql_at(
            &app,
            None,
            query,
            json!({ "id": id }),
            Some(&position.to_string()),
        )
        .await,
    );
    assert_eq!(fresh["movie"]["title"], "Fresh");
    // The poster's URLs are the ones the command API answered with (disk or S3 alike).
    if db.backend == Backend::MySql {
        db.create_poster_bucket().await;
    }
    let mut png = Vec::new();
    image::RgbImage::from_pixel(64, 96, image::Rgb([200, 30, 30]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let uploaded = Client::new()
        .put(app.url(&format!("/api/movies/{id}/poster")))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    let uploaded: Value = uploaded.json().await.unwrap();
    let with_poster = data(
        gql_at(
            &app,
            None,
            "query($id: ID!) { movie(id: $id) { posterUrl thumbnailUrl } }",
            json!({ "id": id }),
            Some(&uploaded["position"].to_string()),
        )
        .await,
    );
    assert_eq!(with_poster["movie"]["posterUrl"], uploaded["posterUrl"]);
    assert_eq!(
        with_poster["movie"]["thumbnailUrl"],
        uploaded["thumbnailUrl"]
    );
    let beyond = (position + 1000).to_string();
    let timeout = gql_at(&app, None, query, json!({ "id": id }), Some(&beyond)).await;
    assert_eq!(error_code(&timeout), "min_position_timeout");
    assert_eq!(timeout["data"], Value::Null);
    let invalid = gql_at(&app, None, query, json!({ "id": id }), Some("soon")).await;
    assert_eq!(error_code(&invalid), "bad_min_position");
}

async fn abusive_queries_are_refused(db: TestDatabase) {
    let app = start(&db).await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(12),
        " }".repeat(12)
    );
    let answer = gql(&app, None, &deep, json!({})).await;
    assert_eq!(error_code(&answer), "invalid_query", "{answer}");
    let message = answer["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(message.contains("deep"), "{answer}");

    let costly = "{ a: movies(first: 100) { edges { node { id title year director genres description posterUrl addedBy addedAt updatedAt version removed } } }
                    b: movies(first: 100) { edges { node { id title year director genres description posterUrl addedBy addedAt updatedAt version removed } } } }";
    let answer = gql(&app, None, costly, json!({})).await;
    assert_eq!(error_code(&answer), "invalid_query", "{answer}");
    let message = answer["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(message.contains("complex"), "{answer}");

    let aliases: String = (0..(query_api::MAX_ALIASES + 1))
        .map(|i| format!("m{i}: movie(id: \"x\") {{ id }} "))
        .collect();
    let answer = gql(&app, None, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(error_code(&answer), "query_too_expensive", "{answer}");
    let nested: String = (0..(query_api::MAX_ALIASES + 1))
        .map(|i| format!("t{i}: title "))
        .collect();
    let answer = gql(
        &app,
        None,
        &format!("{{ movies {{ edges {{ node {{ {nested} }} }} }} }}"),
        json!({}),
    )
    .await;
    assert_eq!(error_code(&answer), "query_too_expensive", "{answer}");

    let answer = gql(
        &app,
        None,
        "{ movies(first: 1000) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&answer), "page_size_exceeded");

    let batch = Client::new()
        .post(app.url("/graphql"))
        .json(&json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 400, "batches are refused");

    let introspection =
        data(gql(&app, None, "{ __schema { queryType { name } } }", json!({})).await);
    assert_eq!(introspection["__schema"]["queryType"]["name"], "Query");
    let page = Client::new().get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/graphql") && !html.contains("unpkg") && !html.contains("cdn"));
    let by_get: Value = Client::new()
        .get(app.url("/graphql?query=%7Bmovies%7BtotalCount%7D%7D"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_get["data"]["movies"]["totalCount"], 0);
    let forged = gql(
        &app,
        Some("not-a-session"),
        "{ movies { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&forged), "unauthenticated");
}

async fn every_role_sees_only_its_fields(db: TestDatabase) {
    let app = start(&db).await;
    let user = app.signed_in("plain").await;
    let admin = app.signed_in_with_role("boss", Role::Admin).await;
    let auditor = app.signed_in_with_role("checker", Role::Auditor).await;
    let (movie, _) = add(&app, &user, "Guarded", 2001, "Someone", &["Drama"]).await;
    let fields = [
        (
            "events",
            "{ events { edges { cursor } } }",
            &["auditor", "admin"][..],
        ),
        ("ledger", "{ ledger { intact } }", &["auditor"][..]),
        (
            "movieAsOf",
            &*Box::leak(
                format!("{{ movieAsOf(id: \"{movie}\", version: 1) {{ title }} }}")
                    .into_boxed_str(),
            ),
            &["auditor"][..],
        ),
        ("stats", "{ stats { movies } }", &["admin"][..]),
        (
            "metrics",
            "{ metrics(name: \"MoviesAdded\") { value } }",
            &["admin"][..],
        ),
        ("projections", "{ projections { name } }", &["admin"][..]),
        ("alerts", "{ alerts { subject } }", &["admin"][..]),
    ];
    let callers = [
        ("anonymous", None, "unauthenticated"),
        ("user", Some(user.as_str()), "forbidden"),
        ("admin", Some(admin.as_str()), "forbidden"),
        ("auditor", Some(auditor.as_str()), "forbidden"),
    ];
    for (field, query, allowed) in fields {
        for (role, token, refusal) in callers {
            let answer = gql(&app, token, query, json!({})).await;
            if allowed.contains(&role) {
                assert!(
                    answer.get("errors").is_none(),
                    "{role} on {field}: {answer}"
                );
            } else {
                assert_eq!(error_code(&answer), refusal, "{role} on {field}: {answer}");
                assert_eq!(answer["data"], Value::Null, "{role} on {field}");
            }
        }
    }
    for (role, token, _) in callers {
        let answer = gql(&app, token, "{ movies { totalCount } }", json!({})).await;
        assert!(answer.get("errors").is_none(), "{role}: {answer}");
    }
}

async fn subscriptions_follow_the_store_across_apps(db: TestDatabase) {
    let writer = start(&db).await;
    let reader = db.spawn_app().await;
    let token = writer.signed_in("writer").await;
    let auditor = writer.signed_in_with_role("watcher", Role::Auditor).await;

    let mut anonymous = Socket::connect(&reader, json!({})).await;
    anonymous
        .subscribe(
            "changes",
            "subscription { movieChanged { kind position movie { id title version } } }",
        )
        .await;
    let mut audited = Socket::connect(
        &reader,
        json!({ "authorization": format!("Bearer {auditor}") }),
    )
    .await;
    audited
        .subscribe(
            "events",
            "subscription { eventAppended(aggregateType: \"Movie\") { position eventType aggregateId payload } }",
        )
        .await;
    let mut refused = Socket::connect(&reader, json!({})).await;
    refused
        .subscribe("no", "subscription { eventAppended { position } }")
        .await;
    let refusal = refused.next().await;
    assert!(
        refusal["type"] == "error"
            || refusal["payload"]["errors"][0]["extensions"]["code"] == "unauthenticated",
        "{refusal}"
    );
    // The subscriptions are registered once their socket has processed the subscribe message.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (id, position) = add(
        &writer,
        &token,
        "Live From Elsewhere",
        2024,
        "Someone",
        &["Drama"],
    )
    .await;
    let event = audited.next().await;
    assert_eq!(event["type"], "next", "{event}");
    assert_eq!(event["id"], "events");
    let node = &event["payload"]["data"]["eventAppended"];
    assert_eq!(node["position"], position);
    assert_eq!(node["eventType"], "MovieAdded");
    assert_eq!(node["aggregateId"], id);
    assert_eq!(node["payload"]["title"], "Live From Elsewhere");

    let change = anonymous.next().await;
    assert_eq!(change["type"], "next", "{change}");
    let change = &change["payload"]["data"]["movieChanged"];
    assert_eq!(change["kind"], "ADDED");
    assert_eq!(change["position"], position);
    assert_eq!(change["movie"]["id"], id);
    assert_eq!(change["movie"]["title"], "Live From Elsewhere");

    let mut one_movie = Socket::connect(&reader, json!({ "token": token })).await;
    one_movie
        .subscribe(
            "one",
            &format!(
                "subscription {{ movieChanged(id: \"{id}\") {{ kind movie {{ removed }} }} }}"
            ),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    add(&writer, &token, "Another One", 2024, "Someone", &["Drama"]).await;
    remove(&writer, &token, &id).await;
    let removed = one_movie.next().await;
    assert_eq!(
        removed["payload"]["data"]["movieChanged"]["kind"], "REMOVED",
        "{removed}"
    );
    assert_eq!(
        removed["payload"]["data"]["movieChanged"]["movie"]["removed"],
        true
    );
}

/// A client that only listens (the graphql-ws reference client, Python's gql) says nothing after
/// subscribing: the server pings it well within its keepalive, so answering keeps it connected.
async fn a_quiet_subscriber_is_pinged_and_keeps_its_subscription(db: TestDatabase) {
    let app = start(&db).await;
    let token = app.signed_in("talker").await;
    let mut quiet = Socket::connect(&app, json!({})).await;
    quiet
        .subscribe(
            "quiet",
            "subscription { movieChanged { kind movie { title } } }",
        )
        .await;
    let ping = quiet
        .next_within(query_api::WEBSOCKET_KEEPALIVE / 2 + Duration::from_secs(10))
        .await;
    assert_eq!(ping, json!({ "type": "ping" }));
    quiet.send(json!({ "type": "pong" })).await;
    add(&app, &token, "Still Listening", 2024, "Someone", &["Drama"]).await;
    let change = quiet.next().await;
    assert_eq!(
        change["payload"]["data"]["movieChanged"]["movie"]["title"], "Still Listening",
        "{change}"
    );
}

/// Browsers send the session cookie with a WebSocket handshake whatever page opens it, and name
/// that page in Origin: another site's page is refused before the upgrade, our own pages and
/// clients that are no browser (no Origin) are served as the cookie's user.
async fn a_cookie_websocket_from_another_site_is_refused(db: TestDatabase) {
    let app = start(&db).await;
    let writer = app.signed_in("writer").await;
    let auditor = app.signed_in_with_role("looker", Role::Auditor).await;
    let cookie = (
        "cookie",
        format!("{}={auditor}", command_api::SESSION_COOKIE),
    );
    let refused = Socket::open_with_headers(
        &app,
        &[cookie.clone(), ("origin", "https://evil.example".into())],
    )
    .await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(answer)) = refused else {
        panic!("a cross-site cookie handshake was upgraded")
    };
    assert_eq!(answer.status(), 403);
    let body: Value = serde_json::from_slice(answer.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["error"]["code"], "csrf_rejected", "{body}");

    for headers in [
        vec![cookie.clone(), ("origin", app.base_url.clone())],
        vec![cookie.clone()],
    ] {
        let mut socket = Socket::open_with_headers(&app, &headers).await.unwrap();
        socket
            .send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        assert_eq!(socket.next().await["type"], "connection_ack");
        // An auditor's subscription: the cookie's session was taken.
        socket
            .subscribe("events", "subscription { eventAppended { position } }")
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        add(&app, &writer, "Same Site", 2024, "Someone", &["Drama"]).await;
        let event = socket.next().await;
        assert_eq!(event["type"], "next", "{event}");
    }
}
