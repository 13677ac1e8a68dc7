//! The real app on a random port, against each backend.

use marquee_tests::fixtures::{append, movie_added, movie_stream, new_movie_id};
use marquee_tests::{on_both_backends, TestDatabase};
use serde_json::{json, Value};

on_both_backends!(
    health_readiness_and_metrics_answer,
    unknown_routes_answer_the_contract_error,
    the_openapi_document_describes_the_command_api,
);

async fn health_readiness_and_metrics_answer(db: TestDatabase) {
    let app = db.spawn_app().await;
    let client = reqwest::Client::new();
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );

    let id = new_movie_id();
    app.app
        .store
        .append(append(
            &movie_stream(id),
            0,
            vec![movie_added(id, "Paths of Glory")],
        ))
        .await
        .unwrap();
    let ready: Value = client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({ "status": "ready", "position": 1 }));

    app.app.store.seal_checkpoint().await.unwrap();
    let metrics = client.get(app.url("/metrics")).send().await.unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains("marquee_event_store_position 1\n"), "{text}");
    assert!(
        text.contains("marquee_ledger_checkpoint_position 1\n"),
        "{text}"
    );
    app.app.shutdown().await.unwrap();
}

async fn unknown_routes_answer_the_contract_error(db: TestDatabase) {
    let app = db.spawn_app().await;
    let response = reqwest::Client::new()
        .get(app.url("/no/such/route"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/no/such/route"));
    app.app.shutdown().await.unwrap();
}

async fn the_openapi_document_describes_the_command_api(db: TestDatabase) {
    let app = db.spawn_app().await;
    let response = reqwest::Client::new()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let document: Value = response.json().await.unwrap();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    let edit = &document["paths"]["/api/movies/{id}"]["patch"];
    assert!(
        edit.is_object(),
        "PATCH /api/movies/{{id}} is not described"
    );
    assert!(edit["responses"]["409"].is_object());
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    app.app.shutdown().await.unwrap();
}
