use std::time::Duration;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{MovieError, UserError, ValidationError};
use event_store::{ExecuteError, StoreError};
use serde_json::json;

/// Every error the HTTP API answers with, mapped to its status and JSON body in one place:
/// `{"error": {"code": "snake_case_code", "message": "…"}}` (plus `field` for invalid input).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("{message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("sign in first: send a bearer token or the session cookie")]
    Unauthenticated,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("this account is locked after too many failed sign-ins; try again later")]
    AccountLocked,
    #[error("{0}")]
    Forbidden(String),
    #[error("cross-site request refused: the Origin header must be this site's")]
    CsrfRejected,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    VersionConflict(String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("too many attempts; try again in {} seconds", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] StoreError),
    /// A service Marquee depends on (SNS, S3) did not answer.
    #[error("a backing service is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            ApiError::Invalid(_) | ApiError::InvalidField { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::AccountLocked => (StatusCode::UNAUTHORIZED, "account_locked"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::CsrfRejected => (StatusCode::FORBIDDEN, "csrf_rejected"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::VersionConflict(_) => (StatusCode::CONFLICT, "version_conflict"),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::DatabaseUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            // The cause goes to the log, never to the client.
            tracing::error!(error = ?self, code, "request failed");
        }
        let mut error = json!({ "code": code, "message": self.to_string() });
        match &self {
            ApiError::Invalid(invalid) => error["field"] = json!(invalid.field()),
            ApiError::InvalidField { field, .. } => error["field"] = json!(field),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let ApiError::RateLimited(wait) = &self {
            let seconds = wait.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(_) => ApiError::DatabaseUnavailable(error),
            StoreError::VersionConflict { .. } => ApiError::VersionConflict(
                "someone else changed this at the same moment; reload and try again".into(),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::DatabaseUnavailable(StoreError::Database(error))
    }
}

impl From<MovieError> for ApiError {
    fn from(error: MovieError) -> Self {
        match error {
            MovieError::NotFound => ApiError::NotFound("movie".into()),
            MovieError::VersionConflict { .. } => ApiError::VersionConflict(error.to_string()),
            MovieError::AlreadyExists => ApiError::Conflict("movie_exists", error.to_string()),
            MovieError::Removed | MovieError::AlreadyRemoved => {
                ApiError::Conflict("movie_removed", error.to_string())
            }
            MovieError::NothingToChange => {
                ApiError::Unprocessable("nothing_to_change", error.to_string())
            }
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::AlreadyRegistered => ApiError::Conflict("username_taken", error.to_string()),
            UserError::UnknownUser => ApiError::InvalidCredentials,
            UserError::NotFound => ApiError::NotFound("user".into()),
            UserError::UnknownPasskey => ApiError::InvalidCredentials,
            UserError::PasskeyAlreadyRegistered => {
                ApiError::Conflict("passkey_exists", error.to_string())
            }
            UserError::RoleAlreadyGranted { .. } => {
                ApiError::Conflict("role_already_granted", error.to_string())
            }
            UserError::NotLocked => ApiError::Conflict("not_locked", error.to_string()),
            UserError::AlreadyErased => ApiError::Conflict("already_forgotten", error.to_string()),
            UserError::IdDoesNotMatchUsername => ApiError::internal(error),
        }
    }
}

impl<E> From<ExecuteError<E>> for ApiError
where
    E: std::error::Error + Into<ApiError>,
{
    fn from(error: ExecuteError<E>) -> Self {
        match error {
            ExecuteError::Domain(domain) => domain.into(),
            ExecuteError::Store(store) => store.into(),
        }
    }
}
