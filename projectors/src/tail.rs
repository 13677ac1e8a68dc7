//! The embedded profile's delivery: each projector tails the store from its own checkpoint,
//! woken by this process's commits and polling for those of other processes (the CLI).

use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use crate::engine::Projector;

/// Events per transaction while catching up.
const PAGE: u32 = 500;

/// Runs `projector` until `stop` turns true.
pub async fn tail(projector: Projector, poll: Duration, mut stop: watch::Receiver<bool>) {
    let mut commits = projector.store().commits();
    let mut backoff = Duration::from_millis(100);
    projector.deliver().await;
    loop {
        match projector.catch_up(PAGE).await {
            Ok(count) if count == PAGE as usize => continue,
            Ok(_) => backoff = Duration::from_millis(100),
            Err(error) => {
                warn!(projection = projector.name(), %error, "projection failed; retrying");
                projector.record_error(&error.to_string()).await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}
