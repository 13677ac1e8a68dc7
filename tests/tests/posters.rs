//! Poster uploads on the real app: on disk and served by the app in the embedded profile (SQLite),
//! in S3 on moto in the aws profile (MariaDB).

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use marquee_tests::fixtures::movie_stream;
use marquee_tests::images::png_declaring;
use marquee_tests::{Backend, TestApp, TestDatabase};
use reqwest::{Response, StatusCode};
use serde_json::Value;

const MAX_UPLOAD: usize = 5 * 1024 * 1024;

/// A 400×600 gradient, so every format really has to encode pixels.
fn poster(format: ImageFormat) -> Vec<u8> {
    let image = match format {
        ImageFormat::WebP => DynamicImage::ImageRgba8(RgbaImage::from_fn(400, 600, |x, y| {
            Rgba([(x % 256) as u8, (y % 256) as u8, 90, 200])
        })),
        _ => DynamicImage::ImageRgb8(RgbImage::from_fn(400, 600, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        })),
    };
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

async fn upload(
    app: &TestApp,
    token: Option<&str>,
    movie: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Response {
    let mut request = reqwest::Client::new()
        .put(app.url(&format!("/api/movies/{movie}/poster")))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn expect_error(response: Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// The payload of the movie's last event, which must be a `PosterAttached`.
async fn poster_attached(app: &TestApp, movie: &str) -> Value {
    let events = app
        .app
        .store
        .read_stream(&movie_stream(movie.parse().unwrap()), 0)
        .await
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event_type, "PosterAttached");
    last.payload["poster"].clone()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn assert_records_keys_and_hash_only(poster: &Value, original: &[u8], content_type: &str) {
    let hash = sha256_hex(original);
    assert_eq!(poster["content_hash"], hash.as_str());
    assert_eq!(poster["content_type"], content_type);
    assert_eq!(poster["bytes"], original.len());
    assert_eq!(
        (poster["width"].as_u64(), poster["height"].as_u64()),
        (Some(400), Some(600))
    );
    assert!(poster["original_key"].as_str().unwrap().contains(&hash));
    assert!(poster["thumbnail_key"].as_str().unwrap().contains(&hash));
    assert!(
        poster.to_string().len() < 1024,
        "the event must not carry the image: {poster}"
    );
}

async fn get(url: &str) -> Response {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response
}

fn width_of(image: &[u8]) -> u32 {
    image::load_from_memory(image).unwrap().width()
}

const FORMATS: [(ImageFormat, &str); 3] = [
    (ImageFormat::Png, "image/png"),
    (ImageFormat::Jpeg, "image/jpeg"),
    (ImageFormat::WebP, "image/webp"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_posters_are_kept_on_disk_and_served_by_the_app() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = db.spawn_app().await;
    let token = app.signed_in("ava").await;
    let movie = app.add_movie(&token, "Metropolis").await;
    for (format, content_type) in FORMATS {
        let image = poster(format);
        let response = upload(&app, Some(&token), &movie, content_type, image.clone()).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["position"], app.app.store.head().await.unwrap());
        let poster_url = body["posterUrl"].as_str().unwrap();
        assert!(
            poster_url.starts_with(&app.url("/posters/")),
            "{poster_url}"
        );

        let original = get(poster_url).await;
        assert_eq!(original.headers()["content-type"], content_type);
        assert_eq!(original.headers()["x-content-type-options"], "nosniff");
        assert!(original.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        assert_eq!(original.bytes().await.unwrap(), image);

        let thumbnail = get(body["thumbnailUrl"].as_str().unwrap()).await;
        let thumbnail_type = thumbnail.headers()["content-type"].clone();
        let thumbnail = thumbnail.bytes().await.unwrap();
        assert_eq!(width_of(&thumbnail), 320);
        // Transparency survives only in PNG; opaque thumbnails are JPEG.
        let expected = match format {
            ImageFormat::WebP => "image/png",
            _ => "image/jpeg",
        };
        assert_eq!(thumbnail_type, expected);

        let attached = poster_attached(&app, &movie).await;
        assert_records_keys_and_hash_only(&attached, &image, content_type);
        let key = attached["original_key"].as_str().unwrap();
        assert_eq!(poster_url, app.url(&format!("/posters/{key}")));
    }
    app.app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn served_posters_cannot_be_reached_around_their_keys() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = db.spawn_app().await;
    let client = reqwest::Client::new();
    let movie = uuid::Uuid::new_v4();
    let hash = "0".repeat(64);
    for path in [
        format!("/posters/{movie}/{hash}.png"),
        format!("/posters/{movie}/..%2F..%2Fmarquee.db"),
        "/posters/%2e%2e/marquee.db".to_string(),
        "/posters/marquee.db".to_string(),
    ] {
        let response = client.get(app.url(&path)).send().await.unwrap();
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    app.app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_uploads_store_nothing() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let app = db.spawn_app().await;
    let token = app.signed_in("boris").await;
    let movie = app.add_movie(&token, "Nosferatu").await;
    let png = poster(ImageFormat::Png);
    let mut too_big = png.clone();
    too_big.resize(MAX_UPLOAD + 1, 0);
    let truncated = png[..png.len() / 2].to_vec();
    let unknown = uuid::Uuid::new_v4().to_string();
    let head = app.app.store.head().await.unwrap();
    let refused = [
        (
            &movie,
            "image/jpeg",
            png.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            &movie,
            "image/png",
            b"plain text".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            &movie,
            "image/gif",
            png.clone(),
            415,
            "unsupported_media_type",
        ),
        (&movie, "image/png", too_big, 413, "payload_too_large"),
        (&movie, "image/png", truncated, 422, "undecodable_image"),
        (&unknown, "image/png", png.clone(), 404, "not_found"),
    ];
    for (movie, content_type, body, status, code) in refused {
        let response = upload(&app, Some(&token), movie, content_type, body).await;
        expect_error(response, StatusCode::from_u16(status).unwrap(), code).await;
    }
    let anonymous = upload(&app, None, &movie, "image/png", png.clone()).await;
    expect_error(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    // Refused before it is read, a large upload still gets its answer, not a broken pipe.
    let anonymous_large = upload(&app, None, &movie, "image/png", vec![0; 4 * MAX_UPLOAD]).await;
    expect_error(anonymous_large, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let started = Instant::now();
    let bomb = upload(
        &app,
        Some(&token),
        &movie,
        "image/png",
        png_declaring(100_000, 100_000),
    )
    .await;
    expect_error(bomb, StatusCode::UNPROCESSABLE_ENTITY, "image_too_large").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let stale = reqwest::Client::new()
        .put(app.url(&format!("/api/movies/{movie}/poster")))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .header("if-match", "\"7\"")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    expect_error(stale, StatusCode::CONFLICT, "version_conflict").await;
    assert_eq!(
        app.app.store.head().await.unwrap(),
        head,
        "a refused upload appended"
    );
    assert!(
        !db.settings().data_dir.join("posters").exists(),
        "a refused upload left files behind"
    );

    let removed = reqwest::Client::new()
        .delete(app.url(&format!("/api/movies/{movie}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let head = app.app.store.head().await.unwrap();
    let response = upload(&app, Some(&token), &movie, "image/png", png).await;
    expect_error(response, StatusCode::CONFLICT, "movie_removed").await;
    assert_eq!(app.app.store.head().await.unwrap(), head);
    app.app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_posters_land_in_s3_with_their_content_type() {
    let db = TestDatabase::new(Backend::MySql).await;
    let s3 = db.create_poster_bucket().await;
    let bucket = db.poster_bucket().unwrap();
    let app = db.spawn_app().await;
    let token = app.signed_in("cyrus").await;
    let movie = app.add_movie(&token, "Sunrise").await;

    let head = app.app.store.head().await.unwrap();
    let lie = upload(
        &app,
        Some(&token),
        &movie,
        "image/webp",
        poster(ImageFormat::Png),
    )
    .await;
    expect_error(
        lie,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(app.app.store.head().await.unwrap(), head);
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "a refused upload left objects");

    for (format, content_type) in FORMATS {
        let image = poster(format);
        let response = upload(&app, Some(&token), &movie, content_type, image.clone()).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let attached = poster_attached(&app, &movie).await;
        assert_records_keys_and_hash_only(&attached, &image, content_type);

        let key = attached["original_key"].as_str().unwrap();
        let stored = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(stored.content_type(), Some(content_type));
        assert!(stored.cache_control().unwrap().contains("immutable"));
        assert_eq!(stored.body.collect().await.unwrap().into_bytes(), image);

        let thumbnail_key = attached["thumbnail_key"].as_str().unwrap();
        let thumbnail = s3
            .get_object()
            .bucket(&bucket)
            .key(thumbnail_key)
            .send()
            .await
            .unwrap();
        assert!(thumbnail.content_type().unwrap().starts_with("image/"));
        let thumbnail = thumbnail.body.collect().await.unwrap().into_bytes();
        assert_eq!(width_of(&thumbnail), 320);

        let poster_url = body["posterUrl"].as_str().unwrap();
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
        assert_eq!(poster_url, format!("{endpoint}/{bucket}/{key}"));
        let fetched = get(poster_url).await;
        assert_eq!(fetched.headers()["content-type"], content_type);
        assert_eq!(fetched.bytes().await.unwrap(), image);
    }
    app.app.shutdown().await.unwrap();
}
