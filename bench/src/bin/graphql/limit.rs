//! Contender (a), the limit: one bare axum handler, `GET /movies?search=…`, running the
//! catalogue's own data layer (`query_api::catalogue::Catalogue::page`, so exactly the SQL
//! Marquee's `movies` runs) and answering the page as JSON; no GraphQL parsing, validation or
//! execution. Run as a child process of its own (`graphql --serve-limit ADDR`), like the others.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use command_api::DiskPosters;
use event_store::{Database, PoolSettings};
use query_api::catalogue::{Catalogue, MovieFilter, MovieOrder};
use serde::Deserialize;
use serde_json::json;

use crate::load::FIRST;

/// Marquee's default pool size (MARQUEE_DB_MAX_CONNECTIONS), as every contender gets.
pub const POOL_SIZE: u32 = 16;

#[derive(Deserialize)]
struct Search {
    search: String,
}

pub async fn serve(address: SocketAddr, database_url: &str) -> Result<()> {
    let db = Database::connect(
        database_url,
        PoolSettings {
            max_connections: POOL_SIZE,
            ..PoolSettings::default()
        },
    )
    .await?;
    // The catalogue only names poster URLs; the bench movies have no posters.
    let posters = Arc::new(DiskPosters::new(
        std::env::temp_dir(),
        None,
        &format!("http://{address}"),
    ));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/movies", get(movies))
        .with_state(Catalogue::new(db, posters));
    let listener = tokio::net::TcpListener::bind(address).await?;
    // SIGTERM ends the process: nothing here needs a graceful stop.
    axum::serve(listener, app).await?;
    Ok(())
}

async fn movies(State(catalogue): State<Catalogue>, Query(query): Query<Search>) -> Response {
    let filter = MovieFilter {
        search: Some(query.search),
        ..MovieFilter::default()
    };
    match catalogue
        .page(&filter, MovieOrder::AddedAtDesc, FIRST, None)
        .await
    {
        Ok(page) => Json(json!({
            "edges": page.edges,
            "pageInfo": { "hasNextPage": page.has_next_page, "endCursor": page.end_cursor },
        }))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
