//! The `projector` function: one projection fed by its SQS FIFO queue. Messages that fail are
//! named in `batchItemFailures`, so SQS redelivers only those (and dead-letters them after the
//! queue's last receive) while the rest of the batch is deleted.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use projectors::{handle_messages, BusMessage, Projector};
use serde::Deserialize;
use tokio::sync::OnceCell;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::FunctionError;

pub struct ProjectorFunction {
    config: Config,
    projection: &'static str,
    aws: SdkConfig,
    /// Opened by the first invocation; a failed attempt is retried by the next one.
    projector: OnceCell<Projector>,
}

/// What the logs need from a message body: enough to follow one request from the HTTP call
/// that caused the event to this function's lines.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    position: Option<i64>,
    event_type: Option<String>,
    metadata: Option<EnvelopeMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeMetadata {
    correlation_id: Option<String>,
}

impl Envelope {
    /// A body that is no event gives an empty envelope: the projector reports it as failed.
    fn of(body: &str) -> Self {
        serde_json::from_str(body).unwrap_or_default()
    }

    fn correlation_id(&self) -> Option<&str> {
        self.metadata.as_ref()?.correlation_id.as_deref()
    }
}

impl ProjectorFunction {
    pub fn new(config: Config, projection: &'static str, aws: SdkConfig) -> Self {
        Self {
            config,
            projection,
            aws,
            projector: OnceCell::new(),
        }
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, FunctionError> {
        let records = event.payload.records;
        let mut messages = Vec::with_capacity(records.len());
        let mut correlation_ids = HashMap::with_capacity(records.len());
        for (index, record) in records.into_iter().enumerate() {
            let id = record.message_id.ok_or(FunctionError::NoMessageId(index))?;
            let body = record.body.unwrap_or_default();
            let envelope = Envelope::of(&body);
            info!(
                projection = self.projection,
                message_id = %id,
                correlation_id = envelope.correlation_id(),
                event_type = envelope.event_type.as_deref(),
                position = envelope.position,
                receive_count = record.attributes.get("ApproximateReceiveCount").map(String::as_str),
                "message received"
            );
            correlation_ids.insert(id.clone(), envelope.metadata.and_then(|m| m.correlation_id));
            messages.push(BusMessage { id, body });
        }
        let projector = self.projector().await.inspect_err(|e| {
            error!(projection = self.projection, error = %e, "cannot open the pipeline; the whole batch will be retried");
        })?;
        let failed = handle_messages(projector, &messages).await;
        for id in &failed {
            warn!(
                projection = self.projection,
                message_id = %id,
                correlation_id = correlation_ids.get(id).cloned().flatten(),
                "message failed; SQS delivers it again"
            );
        }
        info!(
            projection = self.projection,
            messages = messages.len(),
            failed = failed.len(),
            "batch projected"
        );
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        Ok(response)
    }

    async fn projector(&self) -> Result<&Projector, FunctionError> {
        self.projector
            .get_or_try_init(|| async {
                let (store, adapters) = crate::connect(&self.config, &self.aws).await?;
                let projector = projectors::projector(
                    &store,
                    &adapters,
                    &self.config.pipeline,
                    self.projection,
                )?;
                info!(projection = self.projection, "pipeline opened");
                Ok(projector)
            })
            .await
    }
}
