use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// Liveness: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the event store answers.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let head = state
        .store
        .head()
        .await
        .map_err(ApiError::DatabaseUnavailable)?;
    Ok(Json(json!({ "status": "ready", "position": head })))
}

/// Prometheus text exposition of the store's own gauges.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let head = state
        .store
        .head()
        .await
        .map_err(ApiError::DatabaseUnavailable)?;
    let checkpoint = state
        .store
        .checkpoints()
        .await
        .map_err(ApiError::from)?
        .last()
        .map_or(0, |c| c.to_position);
    let body = format!(
        "# HELP marquee_event_store_position Last committed global position.\n\
         # TYPE marquee_event_store_position gauge\n\
         marquee_event_store_position {head}\n\
         # HELP marquee_ledger_checkpoint_position Last position covered by a ledger checkpoint.\n\
         # TYPE marquee_ledger_checkpoint_position gauge\n\
         marquee_ledger_checkpoint_position {checkpoint}\n"
    );
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
