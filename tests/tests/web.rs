//! The web UI as `marquee serve` answers it: the security headers on every kind of answer
//! (pages, assets, the API, errors, GraphQL's own query page with its scoped policy), every
//! embedded asset with its content type and cache rule, and the versioned URLs in `index.html`.

use marquee_tests::{on_both_backends, TestDatabase};

on_both_backends!(
    security_headers_on_every_answer,
    the_query_page_keeps_working_under_its_own_policy,
    every_asset_is_served_with_its_type_and_cache_rule,
);

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name}", response.url()))
        .to_str()
        .unwrap()
}

fn asset_url(path: &str) -> String {
    format!("/assets/{}/{path}", marquee::web::version())
}

async fn security_headers_on_every_answer(db: TestDatabase) {
    let app = db.spawn_app().await;
    let client = reqwest::Client::new();
    let port = app.app.address.port();
    for path in [
        "/".to_string(),
        asset_url("js/app.js"),
        asset_url("app.css"),
        "/api/openapi.json".into(),
        "/healthz".into(),
        "/no/such/page".into(),
    ] {
        let response = client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&response, "x-frame-options"), "DENY", "{path}");
        assert_eq!(
            header(&response, "referrer-policy"),
            "same-origin",
            "{path}"
        );
        let policy = header(&response, "content-security-policy");
        let connect = format!("connect-src 'self' ws://127.0.0.1:{port};");
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "style-src 'self';",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            connect.as_str(),
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        let images = policy
            .split(';')
            .find(|d| d.trim().starts_with("img-src"))
            .unwrap();
        // Posters come from the app itself (disk) or the bucket (S3): that origin is named.
        let poster_origin = match db.poster_bucket() {
            Some(_) => marquee_tests::moto_endpoint()
                .trim_end_matches('/')
                .to_string(),
            None => format!("http://127.0.0.1:{port}"),
        };
        assert_eq!(
            images.trim(),
            format!("img-src 'self' data: blob: {poster_origin}"),
            "{path}"
        );
    }
}

async fn the_query_page_keeps_working_under_its_own_policy(db: TestDatabase) {
    let app = db.spawn_app().await;
    let page = reqwest::get(app.url("/graphql")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let policy = header(&page, "content-security-policy").to_string();
    // Its script and style are inline: allowed there and nowhere else; framing is still denied.
    assert!(
        policy.contains("script-src 'self' 'unsafe-inline'"),
        "{policy}"
    );
    assert!(
        policy.contains("style-src 'self' 'unsafe-inline'"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<script>") && html.contains("fetch(\"/graphql\""));
    let answer: serde_json::Value = reqwest::Client::new()
        .post(app.url("/graphql"))
        .json(&serde_json::json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["data"]["__typename"], "Query");
}

async fn every_asset_is_served_with_its_type_and_cache_rule(db: TestDatabase) {
    let app = db.spawn_app().await;
    let client = reqwest::Client::new();

    let index = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&index, "cache-control"), "no-cache");
    let html = index.text().await.unwrap();
    assert!(html.contains(&format!(
        r#"<script type="module" src="{}"></script>"#,
        asset_url("js/app.js")
    )));
    assert!(html.contains(&format!(r#"href="{}""#, asset_url("app.css"))));
    assert!(!html.contains("@ASSETS@"));

    let mut served = 0;
    for (path, bytes) in marquee::web::ASSETS {
        if *path == "index.html" {
            continue;
        }
        let response = client.get(app.url(&asset_url(path))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            marquee::web::content_type(path).unwrap(),
            "{path}"
        );
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_eq!(&response.bytes().await.unwrap()[..], *bytes, "{path}");
        served += 1;
    }
    assert!(served >= 10, "only {served} assets");

    // A page from before an upgrade asks for its old version: today's file, not cached.
    let old = client
        .get(app.url("/assets/0123456789abcdef/js/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);
    assert_eq!(header(&old, "cache-control"), "no-cache");

    for missing in [
        asset_url("index.html"),
        asset_url("js/missing.js"),
        asset_url("../Cargo.toml"),
        asset_url("%2e%2e/build.rs"),
    ] {
        let response = client.get(app.url(&missing)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{missing}");
    }
}
