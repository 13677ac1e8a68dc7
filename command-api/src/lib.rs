//! Marquee's HTTP command API: every command is validated into domain types, run against its
//! aggregate and answered with the position of the events it stored.

mod auth;
mod error;
mod extract;
mod health;
mod idempotency;
mod movies;
mod passwords;
mod rate_limit;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};
use axum::Router;
use domain::{PasswordVerifier, UserServices};
use event_store::EventStore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{Session, Sessions, SESSION_COOKIE};
pub use error::ApiError;
pub use passwords::Argon2Passwords;
pub use rate_limit::RateLimiter;

/// Settings the API needs, validated by the binary's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The site's origin as browsers send it (`https://marquee.example.com`): the CSRF check
    /// and, later, the passkey relying party.
    pub public_origin: String,
    /// Take the client address from X-Forwarded-For (only behind a load balancer that sets it).
    pub trust_forwarded_for: bool,
    pub sign_in_attempts_per_minute: u32,
    pub max_json_bytes: usize,
    pub max_upload_bytes: usize,
}

impl ApiConfig {
    pub fn secure_cookies(&self) -> bool {
        self.public_origin.starts_with("https://")
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub sessions: Sessions,
    pub config: Arc<ApiConfig>,
    pub user_services: UserServices,
    pub sign_in_limiter: Arc<RateLimiter>,
    /// Checked against when the user does not exist, so that costs what a wrong password costs.
    decoy_password_hash: Arc<String>,
}

impl AppState {
    pub fn new(store: EventStore, config: ApiConfig) -> Result<Self, ApiError> {
        let decoy = Argon2Passwords
            .hash(&uuid::Uuid::new_v4().to_string())
            .map_err(ApiError::internal)?;
        Ok(Self {
            sessions: Sessions::new(store.database().pool().clone()),
            sign_in_limiter: Arc::new(RateLimiter::per_minute(config.sign_in_attempts_per_minute)),
            config: Arc::new(config),
            user_services: users::user_services(),
            decoy_password_hash: Arc::new(decoy),
            store,
        })
    }

    /// Spends a password check's time, then refuses like a wrong password.
    async fn refuse_unknown_user(&self, password: String) -> ApiError {
        let decoy = Arc::clone(&self.decoy_password_hash);
        let _ =
            tokio::task::spawn_blocking(move || Argon2Passwords.verify(&password, &decoy)).await;
        ApiError::InvalidCredentials
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API's routes with request ids (taken from `X-Request-Id` or made new) and request tracing.
pub fn router(state: AppState) -> Router {
    let commands = Router::new()
        .route("/api/users", post(users::register))
        .route("/api/users/{username}/roles", post(users::grant_role))
        .route("/api/movies", post(movies::add))
        .route(
            "/api/movies/{id}",
            patch(movies::edit).delete(movies::remove),
        )
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotent));
    let sessions = Router::new().route(
        "/api/sessions",
        post(users::sign_in).delete(users::sign_out),
    );
    Router::new()
        .merge(commands)
        .merge(sessions)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_string()) })
        .layer(DefaultBodyLimit::max(state.config.max_json_bytes))
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
