//! SNS: the relay's events topic and the notification topics.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use event_store::RecordedEvent;
use tracing::debug;

use super::{aws_error, effect_error, no_retries, Topology};
use crate::error::{ProjectorError, Result};
use crate::notifications::{Notification, Notifier, Topic};
use crate::relay::EventPublisher;

/// PublishBatch takes at most ten entries…
const MAX_BATCH_ENTRIES: usize = 10;
/// …of at most 256 KiB together (messages and attributes).
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Publishes stored events to the SNS FIFO events topic, one message group per aggregate so that
/// every queue receives a stream's events in order.
pub struct SnsFifoPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsFifoPublisher {
    pub async fn connect(config: &SdkConfig, topology: &Topology) -> Result<Self> {
        let client = aws_sdk_sns::Client::new(config);
        let topic_arn = topology.events_topic_arn(&client).await?;
        Ok(Self { client, topic_arn })
    }

    async fn publish_batch(&self, entries: Vec<PublishBatchRequestEntry>) -> Result<()> {
        let ids: Vec<String> = entries.iter().map(|e| e.id().to_owned()).collect();
        let published = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_error("SNS", e))?;
        if let Some(failed) = published.failed().first() {
            return Err(ProjectorError::aws(
                "SNS",
                format!(
                    "PublishBatch refused the event at position {}: {} {}",
                    failed.id(),
                    failed.code(),
                    failed.message().unwrap_or_default()
                ),
            ));
        }
        // An entry reported neither way was not published either.
        let succeeded: HashSet<&str> = published
            .successful()
            .iter()
            .filter_map(|s| s.id())
            .collect();
        if let Some(missing) = ids.iter().find(|id| !succeeded.contains(id.as_str())) {
            return Err(ProjectorError::aws(
                "SNS",
                format!("PublishBatch did not report the event at position {missing} as published"),
            ));
        }
        debug!(events = ids.len(), "events published");
        Ok(())
    }
}

/// A batch entry for `event` and the bytes it counts towards the batch's limit.
fn entry(event: &RecordedEvent) -> Result<(PublishBatchRequestEntry, usize)> {
    let message = serde_json::to_string(event).map_err(|e| ProjectorError::Undecodable {
        position: event.position,
        event_type: event.event_type.clone(),
        reason: e.to_string(),
    })?;
    let attributes = [
        ("eventType", event.event_type.as_str()),
        ("aggregateType", event.aggregate_type.as_str()),
    ];
    let mut size = message.len();
    let mut builder = PublishBatchRequestEntry::builder()
        .id(event.position.to_string())
        .message_group_id(&event.aggregate_id)
        .message_deduplication_id(event.event_id.to_string());
    for (name, value) in attributes {
        size += name.len() + "String".len() + value.len();
        builder = builder.message_attributes(name, string_attribute(value)?);
    }
    let entry = builder
        .message(message)
        .build()
        .map_err(|e| aws_error("SNS", e))?;
    Ok((entry, size))
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| aws_error("SNS", e))
}

#[async_trait]
impl EventPublisher for SnsFifoPublisher {
    /// Publishes in order; an event fails the call unless SNS accepted it.
    async fn publish(&self, events: &[RecordedEvent]) -> Result<()> {
        let mut batch = Vec::with_capacity(MAX_BATCH_ENTRIES);
        let mut batch_bytes = 0;
        for event in events {
            let (entry, size) = entry(event)?;
            if size > MAX_BATCH_BYTES {
                return Err(ProjectorError::aws(
                    "SNS",
                    format!(
                        "the event at position {} is {size} bytes, more than an SNS message may carry",
                        event.position
                    ),
                ));
            }
            if batch.len() == MAX_BATCH_ENTRIES || batch_bytes + size > MAX_BATCH_BYTES {
                self.publish_batch(std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
            batch.push(entry);
            batch_bytes += size;
        }
        if !batch.is_empty() {
            self.publish_batch(batch).await?;
        }
        Ok(())
    }
}

/// Sends notifications to the `alerts`, `movies` and `logins` topics.
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topics: Vec<(Topic, String)>,
}

impl SnsNotifier {
    /// Finds the topics' ARNs once (CreateTopic returns an existing topic's ARN).
    pub async fn connect(config: &SdkConfig, topology: &Topology) -> Result<Self> {
        let client = aws_sdk_sns::Client::new(config);
        let topics = topology.topic_arns(&client).await?;
        Ok(Self { client, topics })
    }

    fn arn(&self, topic: Topic) -> &str {
        self.topics
            .iter()
            .find(|(t, _)| *t == topic)
            .map_or("", |(_, arn)| arn.as_str())
    }
}

impl SnsNotifier {
    /// One PublishBatch of `chunk` (indices into `notifications`, all to `topic`): the outcome of
    /// each, or the failure of the whole call.
    async fn publish_batch(
        &self,
        topic: Topic,
        notifications: &[Notification],
        chunk: &[usize],
    ) -> Result<Vec<(usize, Result<()>)>> {
        let mut entries = Vec::with_capacity(chunk.len());
        for &index in chunk {
            let notification = &notifications[index];
            let mut entry = PublishBatchRequestEntry::builder()
                .id(index.to_string())
                .subject(subject(&notification.subject))
                .message(&notification.message);
            if let Some(username) = &notification.username {
                entry = entry.message_attributes("username", string_attribute(username)?);
            }
            entries.push(entry.build().map_err(|e| aws_error("SNS", e))?);
        }
        let published = self
            .client
            .publish_batch()
            .topic_arn(self.arn(topic))
            .set_publish_batch_request_entries(Some(entries))
            .customize()
            .config_override(aws_sdk_sns::config::Builder::default().retry_config(no_retries()))
            .send()
            .await
            .map_err(|e| effect_error("SNS", e))?;
        let succeeded: HashSet<&str> = published
            .successful()
            .iter()
            .filter_map(|s| s.id())
            .collect();
        Ok(chunk
            .iter()
            .map(|&index| {
                let id = index.to_string();
                let outcome = if succeeded.contains(id.as_str()) {
                    Ok(())
                } else if let Some(failed) = published.failed().iter().find(|f| f.id() == id) {
                    // Refused by the service: not published, so sent again later.
                    Err(ProjectorError::aws(
                        "SNS",
                        format!(
                            "PublishBatch refused a notification: {} {}",
                            failed.code(),
                            failed.message().unwrap_or_default()
                        ),
                    ))
                } else {
                    Err(ProjectorError::InDoubt {
                        service: "SNS",
                        message:
                            "PublishBatch reported a notification neither published nor failed"
                                .into(),
                    })
                };
                (index, outcome)
            })
            .collect())
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    /// One PublishBatch per topic and ten notifications.
    async fn send_all(&self, notifications: &[Notification]) -> Vec<Result<()>> {
        let mut outcomes = Vec::with_capacity(notifications.len());
        for (topic, chunk) in batches(notifications) {
            match self.publish_batch(topic, notifications, &chunk).await {
                Ok(published) => outcomes.extend(published),
                Err(error) => {
                    outcomes.extend(chunk.iter().map(|&index| (index, Err(error.again()))));
                }
            }
        }
        // Each index once, in some topic's batch: back in the notifications' order.
        outcomes.sort_by_key(|(index, _)| *index);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    async fn send(&self, notification: &Notification) -> Result<()> {
        let mut publish = self
            .client
            .publish()
            .topic_arn(self.arn(notification.topic))
            .subject(subject(&notification.subject))
            .message(&notification.message);
        if let Some(username) = &notification.username {
            // Subscription filter policies match a user's own sign-ins on this attribute.
            publish = publish.message_attributes("username", string_attribute(username)?);
        }
        publish
            .customize()
            .config_override(aws_sdk_sns::config::Builder::default().retry_config(no_retries()))
            .send()
            .await
            .map_err(|e| effect_error("SNS", e))?;
        Ok(())
    }
}

/// The PublishBatch calls for `notifications`: per topic, in the order topics first appear, the
/// indices of its notifications, ten at most per call.
fn batches(notifications: &[Notification]) -> Vec<(Topic, Vec<usize>)> {
    let mut topics: Vec<Topic> = Vec::new();
    for notification in notifications {
        if !topics.contains(&notification.topic) {
            topics.push(notification.topic);
        }
    }
    let mut batches = Vec::new();
    for topic in topics {
        let indices: Vec<usize> = (0..notifications.len())
            .filter(|&index| notifications[index].topic == topic)
            .collect();
        for chunk in indices.chunks(MAX_BATCH_ENTRIES) {
            batches.push((topic, chunk.to_vec()));
        }
    }
    batches
}

/// SNS subjects are ASCII without line breaks or control characters, under 100 characters.
const MAX_SUBJECT_CHARS: usize = 99;

fn subject(text: &str) -> String {
    let mut subject = String::with_capacity(text.len().min(MAX_SUBJECT_CHARS));
    for c in text.chars() {
        let c = match c {
            c if c.is_ascii_graphic() => c,
            c if c.is_whitespace() || c.is_control() => ' ',
            _ => '?',
        };
        if c == ' ' && (subject.is_empty() || subject.ends_with(' ')) {
            continue;
        }
        subject.push(c);
    }
    if subject.len() > MAX_SUBJECT_CHARS {
        subject.truncate(MAX_SUBJECT_CHARS - 3);
        subject.truncate(subject.trim_end().len());
        subject.push_str("...");
    }
    subject.truncate(subject.trim_end().len());
    if subject.is_empty() {
        subject.push_str("Marquee");
    }
    subject
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_short_single_line_ascii() {
        assert_eq!(subject("New on Marquee: Amélie"), "New on Marquee: Am?lie");
        assert_eq!(subject("  a\r\n\tb  "), "a b");
        assert_eq!(subject("\n"), "Marquee");
        let long = subject(&"word ".repeat(40));
        assert!(long.len() <= MAX_SUBJECT_CHARS, "{long}");
        assert!(
            long.starts_with("word word ") && long.ends_with("..."),
            "{long}"
        );
    }

    #[test]
    fn notifications_are_batched_per_topic_ten_at_a_time() {
        let notification = |topic| Notification {
            topic,
            subject: "s".into(),
            message: "m".into(),
            username: None,
        };
        let mut notifications: Vec<Notification> =
            (0..12).map(|_| notification(Topic::Movies)).collect();
        notifications.insert(3, notification(Topic::Logins));
        let calls = batches(&notifications);
        let movies: Vec<usize> = (0..13).filter(|&i| i != 3).collect();
        assert_eq!(
            calls,
            [
                (Topic::Movies, movies[..10].to_vec()),
                (Topic::Movies, movies[10..].to_vec()),
                (Topic::Logins, vec![3]),
            ]
        );
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn entries_are_keyed_by_position_grouped_by_aggregate_and_deduplicated_by_event() {
        let event = RecordedEvent {
            position: 7,
            event_id: uuid::Uuid::new_v4(),
            aggregate_type: "Movie".into(),
            aggregate_id: "m-1".into(),
            sequence: 2,
            event_type: "MovieRemoved".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            metadata: serde_json::json!({}),
            data_subject: None,
            recorded_at: chrono::Utc::now(),
            prev_hash: Some("a".into()),
            hash: "b".into(),
        };
        let (entry, size) = entry(&event).unwrap();
        assert_eq!(entry.id(), "7");
        assert_eq!(entry.message_group_id(), Some("m-1"));
        assert_eq!(
            entry.message_deduplication_id(),
            Some(event.event_id.to_string().as_str())
        );
        let decoded: RecordedEvent = serde_json::from_str(entry.message()).unwrap();
        assert_eq!(decoded, event);
        assert!(size > entry.message().len());
    }
}
