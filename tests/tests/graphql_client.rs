//! A GraphQL client no one here wrote, Python's gql (installed by scripts/test), runs the
//! contract's queries over HTTP and a `movieChanged` subscription over WebSocket
//! (graphql-transport-ws) against the real app: tests/graphql_client/contract.py, whose JSON
//! answers are checked here.

use std::path::Path;

use domain::Role;
use marquee_tests::{venv_python_with, Backend, TestDatabase};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gql_runs_the_contract_queries_and_a_subscription() {
    let python = venv_python_with("gql");
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = db.spawn_app().await;
    let user = app.signed_in("viewer").await;
    let admin = app.signed_in_with_role("overseer", Role::Admin).await;
    let auditor = app.signed_in_with_role("inspector", Role::Auditor).await;
    let mut solaris = Vec::new();
    for title in ["Solaris", "Solaris Redux", "Solaris Again"] {
        solaris.push(app.add_movie(&user, title).await);
    }
    let (_, position) = app.add_movie_at(&user, "Stalker").await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphql_client/contract.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--url", &app.base_url])
        .args(["--user-token", &user])
        .args(["--admin-token", &admin])
        .args(["--auditor-token", &auditor])
        .args(["--search", "solaris"])
        .args(["--min-position", &position.to_string()])
        .output()
        .await
        .expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "contract.py failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("contract.py prints JSON");
    let r = &report["results"];

    // Search and keyset pagination by title: two pages, nothing twice, nothing left out.
    let page1 = &r["moviesPage1"]["movies"];
    let page2 = &r["moviesPage2"]["movies"];
    assert_eq!(page1["totalCount"], 3, "{page1}");
    assert_eq!(titles(page1), ["Solaris", "Solaris Again"]);
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    assert_eq!(titles(page2), ["Solaris Redux"]);
    assert_eq!(page2["pageInfo"]["hasNextPage"], false);
    assert_eq!(r["moviesAll"]["movies"]["totalCount"], 4);
    let first = &page1["edges"][0]["node"];
    assert!(solaris.iter().any(|id| first["id"] == id.as_str()));
    assert_eq!(r["movie"]["movie"], *first);
    assert_eq!(first["addedBy"], "viewer");
    assert_eq!(first["genres"], serde_json::json!(["Science Fiction"]));

    let me = &r["me"]["me"];
    assert_eq!(me["username"], "viewer");
    assert!(
        me["roles"].as_array().unwrap().contains(&"user".into()),
        "{me}"
    );
    assert_eq!(me["passkeys"], 0);
    assert!(
        me["logins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["succeeded"] == true),
        "{me}"
    );

    // History in position order, every event hash-chained; the same for an admin.
    let events = r["events"]["events"]["edges"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["node"]["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert!(events
        .iter()
        .all(|e| e["node"]["hash"].as_str().unwrap().len() == 64));
    assert_eq!(
        r["eventsAsAdmin"]["events"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(r["ledger"]["ledger"]["intact"], true);
    assert!(r["ledger"]["ledger"]["checkedEvents"].as_i64().unwrap() >= position);

    let stats = &r["stats"]["stats"];
    assert_eq!(stats["movies"], 4, "{stats}");
    assert_eq!(stats["users"], 3, "{stats}");
    assert!(r["metrics"]["metrics"].is_array());
    let projections = r["projections"]["projections"].as_array().unwrap();
    assert!(
        projections.iter().any(|p| p["name"] == "read-models"),
        "{projections:?}"
    );

    assert!(r["eventsRefusedToUser"]["errors"].is_array());
    assert!(r["statsRefusedToAnonymous"]["errors"].is_array());

    // The subscription saw a movie the client added after subscribing.
    let subscription = &r["subscription"];
    assert_eq!(subscription["transport"], "graphql-transport-ws");
    let change = &subscription["change"];
    assert_eq!(change["kind"], "ADDED", "{change}");
    assert!(subscription["added"]
        .as_array()
        .unwrap()
        .contains(&change["movie"]["id"]));
    assert!(change["position"].as_i64().unwrap() > position);
}

/// The titles of a page of movies, in order.
fn titles(page: &Value) -> Vec<&str> {
    page["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges in {page}"))
        .iter()
        .map(|edge| edge["node"]["title"].as_str().unwrap())
        .collect()
}
