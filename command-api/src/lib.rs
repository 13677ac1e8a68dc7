//! Marquee's HTTP command API: health, readiness and metrics now; the command routes of the
//! contract build on the same state and error type.

mod error;
mod health;
mod passwords;

use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::Router;
use event_store::EventStore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use passwords::Argon2Passwords;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API's routes with request ids (taken from `X-Request-Id` or made new) and request tracing.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_string()) })
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    correlation_id = %request_id,
                )
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
