//! Contender (a), the limit: one bare axum handler, `GET /movies?search=…`, running the
//! catalogue's SQL and answering the page as JSON; no GraphQL parsing, validation or execution.
//! Run as a child process of its own (`graphql --serve-limit ADDR`), like the other contenders.

use std::net::SocketAddr;

use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::Row;

use crate::load::FIRST;

/// Marquee's default pool size (MARQUEE_DB_MAX_CONNECTIONS), as every contender gets.
pub const POOL_SIZE: u32 = 16;

#[derive(Deserialize)]
struct Search {
    search: String,
}

pub async fn serve(address: SocketAddr, database_url: &str) -> Result<()> {
    let pool = MySqlPoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect(database_url)
        .await?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/movies", get(movies))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(address).await?;
    // SIGTERM ends the process: nothing here needs a graceful stop.
    axum::serve(listener, app).await?;
    Ok(())
}

async fn movies(State(pool): State<MySqlPool>, Query(query): Query<Search>) -> Response {
    match page(&pool, &query.search).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn page(pool: &MySqlPool, search: &str) -> Result<Value> {
    let rows = sqlx::query(
        "SELECT m.id, m.title, m.year, m.director, m.genres, m.description, m.poster_key, \
         COALESCE(u.username, m.added_by) AS added_by, m.added_at, m.version \
         FROM rm_movies m LEFT JOIN rm_users u ON u.id = m.added_by WHERE m.removed = 0 \
         AND MATCH (m.title, m.director, m.description) AGAINST (? IN BOOLEAN MODE) \
         ORDER BY m.added_at DESC, m.id DESC LIMIT ?",
    )
    .bind(format!("+{search}*"))
    .bind(FIRST as i64 + 1)
    .fetch_all(pool)
    .await?;
    let mut edges = Vec::with_capacity(FIRST);
    for row in rows.iter().take(FIRST) {
        let id = text(row, "id")?;
        let added_at = text(row, "added_at")?;
        let genres = text(row, "genres")?;
        let poster = row
            .try_get::<Option<Vec<u8>>, _>("poster_key")?
            .map(String::from_utf8)
            .transpose()?;
        edges.push(json!({
            "cursor": format!("{added_at}|{id}"),
            "node": {
                "id": id,
                "title": text(row, "title")?,
                "year": row.try_get::<i64, _>("year")?,
                "director": text(row, "director")?,
                "genres": serde_json::from_str::<Value>(&genres)?,
                "description": text(row, "description")?,
                "posterUrl": poster.map(|key| format!("/posters/{key}")),
                "addedBy": text(row, "added_by")?,
                "addedAt": added_at,
                "version": row.try_get::<i64, _>("version")?,
            },
        }));
    }
    let end_cursor = edges.last().map(|edge| edge["cursor"].clone());
    Ok(json!({
        "edges": edges,
        "pageInfo": { "hasNextPage": rows.len() > FIRST, "endCursor": end_cursor },
    }))
}

/// A text column; MySQL reports the `utf8mb4_bin` ones as VARBINARY.
fn text(row: &MySqlRow, column: &str) -> Result<String> {
    Ok(String::from_utf8(row.try_get::<Vec<u8>, _>(column)?)?)
}
