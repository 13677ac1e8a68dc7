//! The `marquee` binary's library half: configuration, start-up and the operator commands, kept
//! here so integration tests start the same app the binary does.

pub mod cli;
pub mod config;
mod operator;
pub mod serve;
pub mod telemetry;

use std::sync::Arc;

use event_store::{Database, EventStore, Upcaster};

use config::Settings;

/// The domain's upcasters, as the store's read paths call them.
pub fn upcaster() -> Arc<dyn Upcaster> {
    Arc::new(
        |event_type: &str, version: u32, payload: serde_json::Value| {
            domain::upcast(event_type, version, payload).map_err(|e| e.to_string())
        },
    )
}

/// Connects to the configured database, creating the embedded data directory first.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<Database> {
    if settings.profile == config::Profile::Embedded {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data directory {}: {e}",
                settings.data_dir.display()
            )
        })?;
    }
    Ok(Database::connect(&settings.database_url, settings.pool).await?)
}

/// Opens the configured event store with its migrations applied.
pub async fn open_store(settings: &Settings) -> anyhow::Result<EventStore> {
    let db = connect_database(settings).await?;
    db.migrate().await?;
    Ok(EventStore::with_database(db, upcaster()).await?)
}
