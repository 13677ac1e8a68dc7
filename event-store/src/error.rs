use crate::model::StreamId;

/// Everything that can go wrong in the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stream moved on since the command read it.
    #[error("stream {stream} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        stream: StreamId,
        expected: u64,
        actual: u64,
    },
    #[error("an append must carry at least one event")]
    EmptyAppend,
    #[error("unsupported database URL {0:?}: use sqlite://PATH or mysql://USER@HOST/DB")]
    UnsupportedDatabase(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt { position: i64, reason: String },
    #[error("cannot upcast {event_type} v{schema_version} at position {position}: {reason}")]
    Upcast {
        position: i64,
        event_type: String,
        schema_version: u32,
        reason: String,
    },
    #[error("the event store's writer has stopped")]
    WriterStopped,
    #[error("the log has a gap after position {after}: position {missing} is not readable")]
    Gap { after: i64, missing: i64 },
    #[error("personal field {field} names no data subject whose key could protect it")]
    NoDataSubject { field: String },
    #[error("personal data encryption failed: {0}")]
    Crypto(&'static str),
    #[error("export failed: {0}")]
    Export(#[from] std::io::Error),
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::VersionConflict { .. })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
