//! Messages from the bus, whoever received them: the `projector` Lambda (an SQS event, answered
//! with its `batchItemFailures`) and `marquee project` (long polling) run the same handler.

use event_store::RecordedEvent;
use tracing::{debug, warn};

use crate::engine::{Projector, Source};

/// One delivered message: the queue's id for it and its body, a `RecordedEvent` as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub id: String,
    pub body: String,
}

/// Projects `messages` and returns the ids of those that failed, for the queue to redeliver.
///
/// All messages go in one guarded apply; if that fails, each is applied alone, so that a poison
/// message (unreadable, or not an event of this store) fails by itself and never holds back the
/// rest of its batch.
pub async fn handle_messages(projector: &Projector, messages: &[BusMessage]) -> Vec<String> {
    let mut failed = Vec::new();
    let mut last_error = None;
    let mut events = Vec::with_capacity(messages.len());
    for message in messages {
        match serde_json::from_str::<RecordedEvent>(&message.body) {
            Ok(event) => events.push((message.id.as_str(), event)),
            Err(error) => {
                let error = format!("message {} is not an event: {error}", message.id);
                warn!(projection = projector.name(), %error, "unreadable message");
                failed.push(message.id.clone());
                last_error = Some(error);
            }
        }
    }
    if !events.is_empty() {
        let batch = events.iter().map(|(_, event)| event.clone()).collect();
        match projector.apply(batch, Source::Bus).await {
            Ok(applied) => debug!(
                projection = projector.name(),
                messages = messages.len(),
                applied = applied.applied,
                duplicates = applied.duplicates,
                filled = applied.filled,
                "messages projected"
            ),
            Err(error) => {
                warn!(projection = projector.name(), %error, "batch failed; applying its messages one by one");
                for (id, event) in events {
                    if let Err(error) = projector.apply(vec![event], Source::Bus).await {
                        warn!(projection = projector.name(), message_id = id, %error, "message failed");
                        failed.push(id.to_owned());
                        last_error = Some(error.to_string());
                    }
                }
            }
        }
    }
    // Recorded last: a successful apply clears the projection's error.
    if let Some(error) = last_error {
        projector.record_error(&error).await;
    }
    failed
}
