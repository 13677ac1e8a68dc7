use event_store::StoreError;

/// Everything that can go wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event {position} ({event_type}) cannot be projected: {reason}")]
    Undecodable {
        position: i64,
        event_type: String,
        reason: String,
    },
    #[error("message {message_id} is not an event of this store: {reason}")]
    Poison { message_id: String, reason: String },
    #[error("{service} call failed: {message}")]
    Aws {
        service: &'static str,
        message: String,
    },
    #[error("unknown projection {0:?} (read-models, metrics, notifications)")]
    UnknownProjection(String),
    #[error("unknown failpoint {0:?} (projector-after-apply)")]
    UnknownFailpoint(String),
    #[error("the replay's reader stopped: {0}")]
    ReplayReader(#[from] tokio::task::JoinError),
    #[error("the {0} projection sends messages and cannot be replayed")]
    NotReplayable(&'static str),
}

pub type Result<T, E = ProjectorError> = std::result::Result<T, E>;

impl ProjectorError {
    pub fn aws(service: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Aws {
            service,
            message: error.to_string(),
        }
    }
}
