use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers", body = crate::openapi::Health))
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the event store answers and, in the aws profile, so does SNS (the bus).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The event store and the bus answer", body = crate::openapi::Readiness),
        (status = 503, description = "The database (`database_unavailable`) or the bus (`service_unavailable`) is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (head, bus) = tokio::join!(state.store.head(), state.subscriptions.reachable());
    let head = head.map_err(ApiError::DatabaseUnavailable)?;
    bus?;
    Ok(Json(json!({ "status": "ready", "position": head })))
}

/// Prometheus text exposition of the store's own gauges.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "The database is unavailable (`database_unavailable`)", body = crate::openapi::ErrorBody),
    )
)]
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
