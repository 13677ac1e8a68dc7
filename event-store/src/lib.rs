//! Marquee's event store: an append-only log on SQLite or MySQL with optimistic concurrency,
//! group commit, a global order that readers can tail without skipping, per-stream hash chains,
//! signed-off checkpoints, upcasting of old payloads and export for auditors.

mod bulk;
mod db;
mod error;
mod execute;
mod export;
mod hash;
mod ledger;
mod model;
mod personal;
mod redact;
mod store;

pub use bulk::EventBatches;
pub use db::{redact_url, text_column, Backend, Database, PoolSettings};
pub use error::{Result, StoreError};
pub use execute::{decode_event, encode_event, CommandContext, ExecuteError, Executed};
pub use export::ExportFormat;
pub use hash::{canonical_json, event_hash, running_hash};
pub use ledger::{LedgerReport, Problem, ProblemKind};
pub use model::{
    format_timestamp, now_micros, parse_timestamp, AppendRequest, Appended, Checkpoint,
    EventMetadata, NewEvent, RecordedEvent, StreamId,
};
pub use personal::ERASED;
pub use redact::{redact, REDACTED};
pub use store::{no_upcasting, EventQuery, EventStore, Upcaster};
