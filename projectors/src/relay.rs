//! The relay: publishes the store's events to the bus, in position order, from a checkpoint kept
//! in `projection_status` under the name `relay` (so operators see its lag like a projector's).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_store::{EventStore, RecordedEvent};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::error::Result;
use crate::status;

/// The relay's row in `projection_status`.
pub const RELAY: &str = "relay";

/// Where the relay sends events.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `events` in order; `Ok` only when every one of them was accepted.
    async fn publish(&self, events: &[RecordedEvent]) -> Result<()>;
}

pub struct Relay {
    store: EventStore,
    publisher: Arc<dyn EventPublisher>,
    page: u32,
}

impl Relay {
    /// `page`: the most events read and published per round.
    pub fn new(store: EventStore, publisher: Arc<dyn EventPublisher>, page: u32) -> Self {
        Self {
            store,
            publisher,
            page: page.max(1),
        }
    }

    /// Publishes the next page after the checkpoint and moves the checkpoint; returns how many.
    pub async fn run_once(&self) -> Result<usize> {
        let after = self.checkpoint().await?;
        // As stored: personal fields stay sealed on the bus; projectors read them from the store.
        // Secrets (a password hash) go out as the marker: projectors check a message's hash
        // against the store and take the payload from there.
        let mut events = self.store.read_all_stored(after, self.page).await?;
        for event in &mut events {
            self.store.redact_secrets(event);
        }
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(0);
        };
        self.publisher.publish(&events).await?;
        // A crash here, before the checkpoint moves, publishes these events again on restart.
        // That is harmless: SNS FIFO drops a repeated deduplication id (the event id) within five
        // minutes, and after that each projector's guard recognises the event as applied.
        self.advance(last).await?;
        debug!(from = after + 1, to = last, "events relayed");
        Ok(events.len())
    }

    /// Relays until `stop` turns true: at once again after a full page, after `idle_poll` when
    /// caught up, and after a growing pause on errors, which it records and never gives up on.
    pub async fn run(&self, mut stop: watch::Receiver<bool>, idle_poll: Duration) {
        info!(page = self.page, ?idle_poll, "relay started");
        let mut backoff = Backoff::default();
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            let wait = match self.run_once().await {
                Ok(count) => {
                    backoff.reset();
                    if count >= self.page as usize {
                        continue;
                    }
                    idle_poll
                }
                Err(error) => {
                    let wait = backoff.next();
                    warn!(%error, retry_in = ?wait, "relay failed; retrying");
                    self.record_error(&error.to_string()).await;
                    wait
                }
            };
            if !pause(&mut stop, wait).await {
                break;
            }
        }
        info!("relay stopped");
    }

    /// The last position published.
    pub async fn checkpoint(&self) -> Result<i64> {
        status::position(self.store.database(), RELAY).await
    }

    async fn advance(&self, position: i64) -> Result<()> {
        let db = self.store.database();
        status::advance(db.pool(), db.backend(), RELAY, position).await
    }

    async fn record_error(&self, error: &str) {
        status::record_error(self.store.database(), RELAY, error).await;
    }
}

/// Pauses after failures: 100 ms, doubling up to 10 s, back to the start after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LONGEST_BACKOFF: Duration = Duration::from_secs(10);

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(LONGEST_BACKOFF);
        wait
    }

    pub(crate) fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

/// Sleeps for `wait` unless told to stop first; `false` when it is time to stop (a dropped
/// sender included: nobody could stop the loop any more).
pub(crate) async fn pause(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        changed = stop.changed() => changed.is_ok() && !*stop.borrow_and_update(),
        () = tokio::time::sleep(wait) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_seconds_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = (0..10).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        backoff.reset();
        assert_eq!(backoff.next(), FIRST_BACKOFF);
    }
}
