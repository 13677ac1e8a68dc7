//! Marquee's HTTP command API: every command is validated into domain types, run against its
//! aggregate and answered with the position of the events it stored.

mod auth;
mod error;
mod extract;
mod health;
mod idempotency;
mod movies;
pub mod openapi;
mod passkeys;
mod passwords;
mod posters;
mod rate_limit;
mod subscriptions;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post, put};
use axum::Router;
use domain::{PasswordVerifier, UserServices};
use event_store::EventStore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use auth::{cross_site_cookie, session_token, Session, Sessions, SESSION_COOKIE};
pub use error::ApiError;
pub use passwords::Argon2Passwords;
pub use posters::{DiskPosters, ImageKind, NoRegion, PosterStorage, S3Posters};
pub use rate_limit::RateLimiter;
pub use subscriptions::{SnsSubscriptions, SubscriptionDirectory, TableSubscriptions};

/// Settings the API needs, validated by the binary's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The site's origin as browsers send it (`https://marquee.example.com`): the CSRF check
    /// and the passkey relying party (its host is the relying-party id).
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
    pub posters: Arc<dyn PosterStorage>,
    pub subscriptions: Arc<dyn SubscriptionDirectory>,
    /// The passkey relying party, from `config.public_origin`.
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// Checked against when the user does not exist, so that costs what a wrong password costs.
    decoy_password_hash: Arc<String>,
}

impl AppState {
    pub fn new(
        store: EventStore,
        config: ApiConfig,
        posters: Arc<dyn PosterStorage>,
        subscriptions: Arc<dyn SubscriptionDirectory>,
    ) -> Result<Self, ApiError> {
        let decoy = Argon2Passwords
            .hash(&uuid::Uuid::new_v4().to_string())
            .map_err(ApiError::internal)?;
        Ok(Self {
            sessions: Sessions::new(store.database().pool().clone()),
            sign_in_limiter: Arc::new(RateLimiter::per_minute(config.sign_in_attempts_per_minute)),
            webauthn: Arc::new(passkeys::relying_party(&config.public_origin)?),
            config: Arc::new(config),
            user_services: users::user_services(),
            posters,
            subscriptions,
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
        .route("/api/users/{username}/unlock", post(users::unlock))
        .route("/api/users/{username}/forget", post(users::forget))
        .route(
            "/api/admin/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/api/admin/subscriptions/{id}",
            axum::routing::delete(subscriptions::delete),
        )
        .route("/api/movies", post(movies::add))
        .route(
            "/api/movies/{id}",
            patch(movies::edit).delete(movies::remove),
        )
        .route(
            "/api/movies/{id}/poster",
            // Images are bigger than JSON bodies; the handler answers 413 itself past the limit.
            put(posters::upload).layer(DefaultBodyLimit::max(state.config.max_upload_bytes)),
        )
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotent));
    let sessions = Router::new().route(
        "/api/sessions",
        post(users::sign_in).delete(users::sign_out),
    );
    let passkey_routes = Router::new()
        .route(
            "/api/passkeys/registration/options",
            post(passkeys::registration_options),
        )
        .route("/api/passkeys/registration", post(passkeys::register))
        .route(
            "/api/passkeys/authentication/options",
            post(passkeys::authentication_options),
        )
        .route("/api/passkeys/authentication", post(passkeys::sign_in));
    let mut app = Router::new()
        .merge(commands)
        .merge(sessions)
        .merge(passkey_routes)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/openapi.json", get(openapi::document));
    if state.posters.local_dir().is_some() {
        app = app.route(
            &format!("{}/{{*key}}", posters::DISK_ROUTE),
            get(posters::serve),
        );
    }
    app.fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_string()) })
        .layer(DefaultBodyLimit::max(state.config.max_json_bytes))
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
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
                })
                // One access-log line per request, carrying the span's correlation id.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
