//! The `marquee` binary's library half: configuration, start-up and the operator commands, kept
//! here so integration tests start the same app the binary does.

pub mod cli;
pub mod config;
mod operator;
pub mod serve;
pub mod telemetry;
mod unread_body;
pub mod web;

pub mod pipeline;

use event_store::{Database, EventStore};

use config::Settings;

/// The AWS SDK's configuration, pointed at `AWS_ENDPOINT_URL` when one is set.
pub async fn aws_config(settings: &Settings) -> aws_config::SdkConfig {
    let mut aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(projectors::aws::timeouts());
    if let Some(endpoint) = &settings.aws_endpoint_url {
        aws = aws.endpoint_url(endpoint);
    }
    aws.load().await
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
    Ok(EventStore::with_database(db, projectors::domain_upcaster()).await?)
}
