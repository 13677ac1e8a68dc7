//! The one error of the query API, mapped to a GraphQL error with `extensions.code` in one place.
//! Messages say what the caller can act on; causes of server-side failures go to the log only.

use std::time::Duration;

use async_graphql::ErrorExtensions;
use event_store::StoreError;

/// The code of `QueryError::DatabaseUnavailable`, which also makes the HTTP answer a 503.
pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Input the caller can correct; the code names what was wrong.
    #[error("{1}")]
    BadInput(&'static str, String),
    #[error("sign in first: send a bearer token or the session cookie")]
    Unauthenticated,
    #[error("this needs the {0} role")]
    Forbidden(String),
    #[error("the read models did not reach position {position} within {} ms; retry later", .waited.as_millis())]
    MinPositionTimeout { position: i64, waited: Duration },
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] StoreError),
    #[error("a backing service is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl QueryError {
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::BadInput(code, _) => code,
            QueryError::Unauthenticated => "unauthenticated",
            QueryError::Forbidden(_) => "forbidden",
            QueryError::MinPositionTimeout { .. } => "min_position_timeout",
            QueryError::DatabaseUnavailable(_) => DATABASE_UNAVAILABLE,
            QueryError::Unavailable(_) => "service_unavailable",
            QueryError::Internal(_) => "internal",
        }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        QueryError::Internal(error.to_string())
    }

    fn is_server_error(&self) -> bool {
        matches!(
            self,
            QueryError::DatabaseUnavailable(_)
                | QueryError::Unavailable(_)
                | QueryError::Internal(_)
        )
    }
}

/// A `QueryError` on its way out of a resolver. It is kept apart from `QueryError` (and is not
/// `Display`) so that this, not async-graphql's catch-all conversion, turns it into a GraphQL
/// error: the one place that sets `extensions.code`.
#[derive(Debug)]
pub struct FieldError(pub QueryError);

pub type FieldResult<T> = std::result::Result<T, FieldError>;

impl From<FieldError> for async_graphql::Error {
    fn from(FieldError(error): FieldError) -> Self {
        if error.is_server_error() {
            // The cause goes to the log, never to the client.
            tracing::error!(error = ?error, code = error.code(), "query failed");
        }
        let code = error.code();
        async_graphql::Error::new(error.to_string()).extend_with(|_, e| e.set("code", code))
    }
}

impl From<QueryError> for FieldError {
    fn from(error: QueryError) -> Self {
        FieldError(error)
    }
}

impl From<StoreError> for FieldError {
    fn from(error: StoreError) -> Self {
        FieldError(error.into())
    }
}

impl From<sqlx::Error> for FieldError {
    fn from(error: sqlx::Error) -> Self {
        FieldError(error.into())
    }
}

impl From<projectors::ProjectorError> for FieldError {
    fn from(error: projectors::ProjectorError) -> Self {
        FieldError(error.into())
    }
}

impl From<StoreError> for QueryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(_) => QueryError::DatabaseUnavailable(error),
            other => QueryError::internal(other),
        }
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        QueryError::DatabaseUnavailable(StoreError::Database(error))
    }
}

impl From<projectors::ProjectorError> for QueryError {
    fn from(error: projectors::ProjectorError) -> Self {
        match error {
            projectors::ProjectorError::Store(store) => store.into(),
            projectors::ProjectorError::Database(db) => db.into(),
            other => QueryError::internal(other),
        }
    }
}

impl From<command_api::ApiError> for QueryError {
    fn from(error: command_api::ApiError) -> Self {
        match error {
            command_api::ApiError::DatabaseUnavailable(store) => {
                QueryError::DatabaseUnavailable(store)
            }
            command_api::ApiError::Unavailable(service) => QueryError::Unavailable(service),
            other => QueryError::internal(other),
        }
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
