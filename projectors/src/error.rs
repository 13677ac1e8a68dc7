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
    /// A call that must not be repeated failed after its request may have reached the service
    /// (it timed out, or the connection broke): whether it took effect is unknown.
    #[error("{service} call may or may not have taken effect, so it is not repeated: {message}")]
    InDoubt {
        service: &'static str,
        message: String,
    },
    #[error("unknown projection {0:?} (read-models, metrics, notifications)")]
    UnknownProjection(String),
    #[error("unknown failpoint {0:?} (projector-after-apply, replay-before-swap)")]
    UnknownFailpoint(String),
    #[error("the replay's reader stopped: {0}")]
    ReplayReader(#[from] tokio::task::JoinError),
    #[error("the {0} projection sends messages and cannot be replayed")]
    NotReplayable(&'static str),
    /// A replay committed the projection's new guards and has not swapped its new tables in yet:
    /// applying now would apply again what the replay folded. Retried like any failure.
    #[error(
        "a replay of {projection} has been swapping its tables in since {since}; if no replay \
         is running it was interrupted: run `marquee replay --projection {projection}`"
    )]
    ReplaySwapping {
        projection: &'static str,
        since: String,
    },
}

pub type Result<T, E = ProjectorError> = std::result::Result<T, E>;

impl ProjectorError {
    pub fn aws(service: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Aws {
            service,
            message: error.to_string(),
        }
    }

    /// The same failure for another effect of the call that failed: in doubt if this one is,
    /// an AWS failure (which the outbox retries) otherwise.
    pub(crate) fn again(&self) -> Self {
        match self {
            Self::InDoubt { service, message } => Self::InDoubt {
                service,
                message: message.clone(),
            },
            Self::Aws { service, message } => Self::Aws {
                service,
                message: message.clone(),
            },
            other => Self::aws("outbox", other),
        }
    }
}
