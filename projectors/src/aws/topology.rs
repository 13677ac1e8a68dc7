//! The names of the bus and the notification topics, in one place, and their provisioning for
//! local runs and tests (production creates the same resources from its SAM template).

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use tracing::info;

use super::aws_error;
use crate::error::{ProjectorError, Result};
use crate::notifications::Topic;

/// The topics people subscribe to, as the command API creates them.
const STANDARD_TOPICS: [Topic; 3] = [Topic::Alerts, Topic::Movies, Topic::Logins];

/// How long a received message stays hidden from other consumers while it is handled.
const VISIBILITY_TIMEOUT_SECONDS: u32 = 30;

/// SQS's longest retention, so a poison message waits for an operator as long as possible.
const DEAD_LETTER_RETENTION_SECONDS: u32 = 14 * 24 * 60 * 60;

/// Every resource of one deployment (or one test), named `{prefix}…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    /// The CloudWatch namespace of the metrics (`Marquee`; another one separates a deployment
    /// that shares the account, such as staging or a test).
    pub metrics_namespace: String,
}

impl Topology {
    /// Receives before SQS moves a message that keeps failing to the dead-letter queue.
    pub const MAX_RECEIVE_COUNT: u32 = 5;

    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            metrics_namespace: crate::metrics::NAMESPACE.to_owned(),
        }
    }

    pub fn with_metrics_namespace(self, namespace: impl Into<String>) -> Self {
        Self {
            metrics_namespace: namespace.into(),
            ..self
        }
    }

    /// The SNS FIFO topic the relay publishes every stored event to.
    pub fn events_topic(&self) -> String {
        format!("{}events.fifo", self.prefix)
    }

    /// A projector's SQS FIFO queue, subscribed to the events topic.
    pub fn queue(&self, projection: &str) -> String {
        format!("{}{projection}.fifo", self.prefix)
    }

    /// Where SQS moves the messages a projector failed on `MAX_RECEIVE_COUNT` times.
    pub fn dead_letter_queue(&self, projection: &str) -> String {
        format!("{}{projection}-dlq.fifo", self.prefix)
    }

    /// A notification topic, named as the command API's subscriptions name it.
    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.as_str())
    }

    /// Creates whatever is missing and brings the rest to the settings below; safe to run again.
    pub async fn provision(&self, config: &SdkConfig, projections: &[&str]) -> Result<()> {
        let sns = aws_sdk_sns::Client::new(config);
        let sqs = aws_sdk_sqs::Client::new(config);
        let events_arn = self.events_topic_arn(&sns).await?;
        self.topic_arns(&sns).await?;
        for projection in projections {
            let dead_letters = create_fifo_queue(&sqs, &self.dead_letter_queue(projection)).await?;
            sqs.set_queue_attributes()
                .queue_url(&dead_letters)
                .attributes(
                    QueueAttributeName::MessageRetentionPeriod,
                    DEAD_LETTER_RETENTION_SECONDS.to_string(),
                )
                .send()
                .await
                .map_err(|e| aws_error("SQS", e))?;
            let dead_letters_arn = queue_arn(&sqs, &dead_letters).await?;
            let queue = create_fifo_queue(&sqs, &self.queue(projection)).await?;
            let arn = queue_arn(&sqs, &queue).await?;
            let redrive = json!({
                "deadLetterTargetArn": dead_letters_arn,
                "maxReceiveCount": Self::MAX_RECEIVE_COUNT,
            });
            let policy = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "events-topic-sends",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": events_arn}},
                }],
            });
            // Set after creation rather than in CreateQueue, which refuses an existing queue
            // whose attributes differ: a changed setting then converges instead of failing.
            sqs.set_queue_attributes()
                .queue_url(&queue)
                .attributes(
                    QueueAttributeName::VisibilityTimeout,
                    VISIBILITY_TIMEOUT_SECONDS.to_string(),
                )
                .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
                .attributes(QueueAttributeName::Policy, policy.to_string())
                .send()
                .await
                .map_err(|e| aws_error("SQS", e))?;
            // SNS returns the existing subscription for the same topic, endpoint and attributes.
            sns.subscribe()
                .topic_arn(&events_arn)
                .protocol("sqs")
                .endpoint(&arn)
                .attributes("RawMessageDelivery", "true")
                .return_subscription_arn(true)
                .send()
                .await
                .map_err(|e| aws_error("SNS", e))?;
        }
        info!(prefix = %self.prefix, ?projections, "bus and notification topics provisioned");
        Ok(())
    }

    /// The events topic's ARN; CreateTopic returns an existing topic's ARN.
    pub(crate) async fn events_topic_arn(&self, sns: &aws_sdk_sns::Client) -> Result<String> {
        let created = sns
            .create_topic()
            .name(self.events_topic())
            .attributes("FifoTopic", "true")
            .attributes("ContentBasedDeduplication", "false")
            .send()
            .await
            .map_err(|e| aws_error("SNS", e))?;
        arn_of(created.topic_arn(), &self.events_topic())
    }

    /// The notification topics' ARNs, creating the topics when missing.
    pub(crate) async fn topic_arns(
        &self,
        sns: &aws_sdk_sns::Client,
    ) -> Result<Vec<(Topic, String)>> {
        let mut arns = Vec::with_capacity(STANDARD_TOPICS.len());
        for topic in STANDARD_TOPICS {
            let name = self.topic(topic);
            let created = sns
                .create_topic()
                .name(&name)
                .send()
                .await
                .map_err(|e| aws_error("SNS", e))?;
            arns.push((topic, arn_of(created.topic_arn(), &name)?));
        }
        Ok(arns)
    }
}

fn arn_of(arn: Option<&str>, topic: &str) -> Result<String> {
    arn.map(str::to_owned).ok_or_else(|| ProjectorError::Aws {
        service: "SNS",
        message: format!("CreateTopic {topic} answered without an ARN"),
    })
}

/// The queue's URL; CreateQueue returns an existing queue's URL when the attributes given match.
async fn create_fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    let created = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .map_err(|e| aws_error("SQS", e))?;
    created
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| ProjectorError::Aws {
            service: "SQS",
            message: format!("CreateQueue {name} answered without a URL"),
        })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_error("SQS", e))?;
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| ProjectorError::Aws {
            service: "SQS",
            message: format!("GetQueueAttributes {url} answered without the QueueArn"),
        })
}
