//! SQS: a projector's queue, long-polled by `marquee project` (the Lambda gets the same messages
//! from its event source mapping), and the dead-letter depth the scheduler alerts on.

use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{aws_error, Topology};
use crate::bus::{handle_messages, BusMessage};
use crate::engine::Projector;
use crate::error::{ProjectorError, Result};
use crate::relay::{pause, Backoff};

/// ReceiveMessage's and DeleteMessageBatch's most messages per call.
const MAX_MESSAGES: i32 = 10;
/// SQS's longest long poll.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// Feeds one projector from its queue.
pub struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
}

impl SqsConsumer {
    /// `wait` is the long poll (at most 20 s): how long a receive waits for a first message.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>, wait: Duration) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            wait: wait.min(MAX_WAIT),
        }
    }

    /// Receives, projects and deletes until `stop` turns true; errors are logged and retried.
    pub async fn run(&self, projector: &Projector, mut stop: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        // Effects a previous process committed but did not get to send.
        projector.deliver().await;
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            // Only the receive is given up on stop: a batch being handled is finished first.
            let received = tokio::select! {
                received = self.receive() => received,
                _ = stop.changed() => break,
            };
            let outcome = match received {
                Ok(messages) => self.handle(projector, &messages).await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(()) => backoff.reset(),
                Err(error) => {
                    let wait = backoff.next();
                    warn!(projection = projector.name(), %error, retry_in = ?wait, "queue not consumed; retrying");
                    projector.record_error(&error.to_string()).await;
                    if !pause(&mut stop, wait).await {
                        break;
                    }
                }
            }
        }
        debug!(projection = projector.name(), "queue consumer stopped");
    }

    async fn receive(&self) -> Result<Vec<Message>> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(MAX_MESSAGES)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default()
                    .timeout_config(super::timeouts_with_wait(self.wait)),
            )
            .send()
            .await
            .map_err(|e| aws_error("SQS", e))?;
        Ok(received.messages().to_vec())
    }

    /// Projects the messages, deletes the ones that succeeded and leaves the others to come back
    /// after the visibility timeout, until SQS moves them to the dead-letter queue.
    async fn handle(&self, projector: &Projector, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let bus: Vec<BusMessage> = messages
            .iter()
            .map(|m| BusMessage {
                id: m.message_id().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
            })
            .collect();
        let failed = handle_messages(projector, &bus).await;
        let mut entries = Vec::with_capacity(messages.len());
        for (index, (message, sent)) in messages.iter().zip(&bus).enumerate() {
            if failed.contains(&sent.id) {
                let attribute = |name| {
                    message
                        .attributes()
                        .and_then(|a| a.get(&name))
                        .map(String::as_str)
                };
                warn!(
                    projection = projector.name(),
                    message_id = %sent.id,
                    group = attribute(MessageSystemAttributeName::MessageGroupId),
                    receives = attribute(MessageSystemAttributeName::ApproximateReceiveCount),
                    max_receives = Topology::MAX_RECEIVE_COUNT,
                    "message left for redelivery; SQS dead-letters it after the last receive"
                );
                continue;
            }
            entries.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .build()
                    .map_err(|e| aws_error("SQS", e))?,
            );
        }
        if entries.is_empty() {
            return Ok(());
        }
        let deleted = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_error("SQS", e))?;
        for failure in deleted.failed() {
            // Harmless: the message comes back and the projector's guard sees a duplicate.
            warn!(
                projection = projector.name(),
                code = failure.code(),
                message = failure.message(),
                "a handled message was not deleted and will be redelivered"
            );
        }
        Ok(())
    }
}

/// A queue's URL from its name.
pub async fn queue_url(client: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    let found = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| aws_error("SQS", e))?;
    found.queue_url().map(str::to_owned).ok_or_else(|| {
        ProjectorError::aws("SQS", format!("GetQueueUrl {name} answered without a URL"))
    })
}

/// How many messages wait in the projection's dead-letter queue (SQS's approximate count).
pub async fn dead_letter_depth(
    client: &aws_sdk_sqs::Client,
    topology: &Topology,
    projection: &str,
) -> Result<i64> {
    let url = queue_url(client, &topology.dead_letter_queue(projection)).await?;
    let attributes = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| aws_error("SQS", e))?;
    let depth = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .ok_or_else(|| {
            ProjectorError::aws("SQS", format!("{url} has no ApproximateNumberOfMessages"))
        })?;
    depth.parse().map_err(|e| {
        ProjectorError::aws(
            "SQS",
            format!("{url}: ApproximateNumberOfMessages {depth:?}: {e}"),
        )
    })
}
