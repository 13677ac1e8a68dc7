//! The store sweep: the store is the source of truth and the bus only an accelerator.
//!
//! SQS may deliver late, or never: a message whose receive count ran out (receives nobody waited
//! for, after client timeouts, count too) sits in the dead-letter queue, and a slow bus can stay
//! minutes behind. Each sweep reads the events after the projection's watermark (`swept_to` in
//! `projection_status`) that are older than `SWEEP_GRACE`, so that it does not race messages in
//! flight; applies, through the same guarded apply, the ones the per-stream guards have not
//! seen; and moves the watermark past them. Every event up to the watermark is therefore
//! applied, and a sweep reads only what came after it. `marquee project` sweeps every
//! `SWEEP_INTERVAL`, the scheduler's maintenance on every run. The embedded profile needs no
//! sweep: it reads the store in position order, which has no holes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use event_store::{text_column, RecordedEvent};
use sqlx::Row;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::engine::{guard_key, Projector, Source};
use crate::error::Result;
use crate::relay::pause;
use crate::sql::{self, placeholders, Value};
use crate::status;

/// How old an event must be before a sweep applies it: the bus has had its chance by then
/// (SQS FIFO delivers within a second when healthy).
pub const SWEEP_GRACE: TimeDelta = TimeDelta::seconds(30);

/// How often `marquee project` sweeps each projection.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Events read per page of a sweep…
const PAGE: u32 = 500;
/// …and pages per sweep at most, so that one sweep stays short (a first sweep of a large store
/// goes on where the previous one stopped).
const PAGES_PER_SWEEP: usize = 20;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Events past the old watermark, old enough to be checked.
    pub checked: usize,
    /// Of those, the ones the projection had not applied, now applied from the store.
    pub applied: usize,
    /// The watermark after the sweep.
    pub swept_to: i64,
}

impl Projector {
    /// Applies every event older than `now - SWEEP_GRACE` that this projection has not applied.
    /// Their effects wait in the outbox for the caller's `deliver`, so that a sweep's length does
    /// not depend on the services it sends to.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<Swept> {
        let db = self.store().database();
        let cutoff = now - SWEEP_GRACE;
        let mut swept = Swept {
            swept_to: status::swept_to(db, self.name()).await?,
            ..Swept::default()
        };
        for _ in 0..PAGES_PER_SWEEP {
            let page = self.store().read_all(swept.swept_to, PAGE).await?;
            let read = page.len();
            let settled = settled(page, cutoff);
            let Some(last) = settled.last().map(|e| e.position) else {
                break;
            };
            let checked = settled.len();
            let applied = self.applied_sequences(&settled).await?;
            let missing = missing(settled, &applied);
            if !missing.is_empty() {
                swept.applied += self.apply_durably(missing, Source::Store).await?.applied;
            }
            status::sweep_to(db, self.name(), last).await?;
            swept.checked += checked;
            swept.swept_to = last;
            if checked < read || read < PAGE as usize {
                break;
            }
        }
        if swept.applied > 0 {
            warn!(
                projection = self.name(),
                applied = swept.applied,
                swept_to = swept.swept_to,
                "the store sweep applied events the bus had not delivered"
            );
        } else {
            debug!(
                projection = self.name(),
                checked = swept.checked,
                swept_to = swept.swept_to,
                "store swept"
            );
        }
        Ok(swept)
    }

    /// The last sequence applied of each stream of `events` (a plain read: the apply that
    /// follows locks and checks again).
    async fn applied_sequences(&self, events: &[RecordedEvent]) -> Result<BTreeMap<String, i64>> {
        let mut keys: Vec<String> = events.iter().map(|e| guard_key(&e.stream())).collect();
        keys.sort();
        keys.dedup();
        let mut applied = BTreeMap::new();
        for chunk in sql::key_chunks(&keys) {
            let statement = format!(
                "SELECT aggregate_id, last_sequence FROM projection_streams \
                 WHERE projection = ? AND aggregate_id IN ({})",
                placeholders(chunk.len())
            );
            let mut values = vec![Value::from(self.name())];
            values.extend(chunk.iter().map(|key| Value::from(key.as_str())));
            for row in sql::bind_all(sqlx::query(&statement), &values)
                .fetch_all(self.store().database().pool())
                .await?
            {
                let key = text_column(&row, 0)?.unwrap_or_default();
                applied.insert(key, row.try_get::<i64, _>(1)?);
            }
        }
        Ok(applied)
    }
}

/// Sweeps `projector` every `SWEEP_INTERVAL` until `stop` turns true, then sends what waits in
/// its outbox (effects whose sending failed). Failures are logged and recorded; the next round
/// tries again.
pub async fn sweep_periodically(projector: Projector, mut stop: watch::Receiver<bool>) {
    while pause(&mut stop, SWEEP_INTERVAL).await {
        if let Err(error) = projector.sweep(Utc::now()).await {
            warn!(projection = projector.name(), %error, "store sweep failed; retrying");
            projector.record_error(&error.to_string()).await;
        }
        projector.deliver().await;
    }
}

/// The leading events of `page` recorded at or before `cutoff`: the watermark may pass them.
fn settled(mut page: Vec<RecordedEvent>, cutoff: DateTime<Utc>) -> Vec<RecordedEvent> {
    let young = page
        .iter()
        .position(|e| e.recorded_at > cutoff)
        .unwrap_or(page.len());
    page.truncate(young);
    page
}

/// The events of `events` past their stream's last applied sequence in `applied`.
fn missing(events: Vec<RecordedEvent>, applied: &BTreeMap<String, i64>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .filter(|e| e.sequence > applied.get(&guard_key(&e.stream())).copied().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: i64, movie: &str, sequence: i64, age_seconds: i64) -> RecordedEvent {
        RecordedEvent {
            position,
            event_id: uuid::Uuid::new_v4(),
            aggregate_type: "Movie".into(),
            aggregate_id: movie.into(),
            sequence,
            event_type: "MovieDetailsUpdated".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            metadata: serde_json::json!({}),
            data_subject: None,
            recorded_at: Utc::now() - TimeDelta::seconds(age_seconds),
            prev_hash: None,
            hash: position.to_string(),
        }
    }

    fn positions(events: &[RecordedEvent]) -> Vec<i64> {
        events.iter().map(|e| e.position).collect()
    }

    #[test]
    fn the_watermark_stops_at_the_first_event_too_young_to_sweep() {
        let cutoff = Utc::now() - SWEEP_GRACE;
        let page = vec![
            event(1, "a", 1, 90),
            event(2, "a", 2, 60),
            event(3, "b", 1, 5),
            // Older again (a clock step, a slow writer): still behind the young one.
            event(4, "b", 2, 60),
        ];
        assert_eq!(positions(&settled(page, cutoff)), [1, 2]);
        assert!(settled(vec![event(1, "a", 1, 5)], cutoff).is_empty());
        assert!(settled(Vec::new(), cutoff).is_empty());
    }

    #[test]
    fn only_events_past_their_streams_guard_are_missing() {
        let events = vec![
            event(1, "a", 1, 60),
            event(2, "b", 1, 60),
            event(3, "a", 2, 60),
            event(4, "c", 1, 60),
            event(5, "b", 2, 60),
        ];
        let applied = BTreeMap::from([
            (guard_key(&events[0].stream()), 1),
            (guard_key(&events[1].stream()), 2),
        ]);
        // a: 2 is missing; b: both applied; c: never seen.
        assert_eq!(positions(&missing(events, &applied)), [3, 4]);
    }
}
