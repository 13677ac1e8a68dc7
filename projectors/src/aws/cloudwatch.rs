//! CloudWatch metrics, sent from an outbox so that each count arrives once.

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{MetricDatum as CloudWatchDatum, StandardUnit};
use chrono::{TimeDelta, Utc};
use event_store::{Backend, Database};
use tracing::{debug, warn};

use super::{effect_error, no_retries};
use crate::error::Result;
use crate::metrics::{MetricDatum, MetricSink};
use crate::outbox::{each, Outbox};
use crate::sql::Tx;

const OUTBOX: Outbox = Outbox::new("cloudwatch");

/// PutMetricData's limit on datums per call.
const MAX_DATUMS_PER_CALL: usize = 1000;
/// Its payload limit, and a bound on one datum's encoding: CloudWatch refuses metric names over
/// 255 characters, and the rest of a datum (value, unit, timestamp, field names) is fixed-size.
const MAX_PAYLOAD_BYTES: usize = 1_000_000;
const MAX_DATUM_BYTES: usize = 512;
// One outbox batch is one call: a second call failing after a first succeeded would resend it.
const _: () = assert!(MAX_DATUMS_PER_CALL * MAX_DATUM_BYTES <= MAX_PAYLOAD_BYTES);

/// CloudWatch refuses datums older than two weeks; such a datum would fail its batch forever.
const OLDEST_ACCEPTED: TimeDelta = TimeDelta::days(14);

/// The aws profile's metric sink: datums go into the outbox with the projection's transaction
/// and to CloudWatch (namespace `Marquee` unless configured otherwise, no dimensions) after it
/// commits.
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl CloudWatchMetrics {
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }

    async fn put(&self, datums: Vec<MetricDatum>) -> Result<()> {
        // A margin so that a datum close to the limit is not refused on its way there.
        let oldest = Utc::now() - OLDEST_ACCEPTED + TimeDelta::minutes(5);
        let (sendable, too_old): (Vec<_>, Vec<_>) =
            datums.into_iter().partition(|d| d.at >= oldest);
        if !too_old.is_empty() {
            warn!(
                datums = too_old.len(),
                "metric values older than CloudWatch accepts are dropped"
            );
        }
        if sendable.is_empty() {
            return Ok(());
        }
        let count = sendable.len();
        let data = sendable
            .into_iter()
            .map(|datum| {
                CloudWatchDatum::builder()
                    .metric_name(datum.name)
                    .value(datum.value)
                    .unit(StandardUnit::from(datum.unit.as_str()))
                    .timestamp(DateTime::from_millis(datum.at.timestamp_millis()))
                    .build()
            })
            .collect();
        self.client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .customize()
            .config_override(
                aws_sdk_cloudwatch::config::Builder::default().retry_config(no_retries()),
            )
            .send()
            .await
            .map_err(|e| effect_error("CloudWatch", e))?;
        debug!(datums = count, "metrics sent to CloudWatch");
        Ok(())
    }
}

#[async_trait]
impl MetricSink for CloudWatchMetrics {
    async fn record(
        &self,
        tx: &mut Tx,
        backend: Backend,
        datums: &[(String, MetricDatum)],
    ) -> Result<()> {
        OUTBOX.put(tx, backend, datums).await
    }

    async fn flush(&self, db: &Database) -> Result<()> {
        OUTBOX
            .drain(db, MAX_DATUMS_PER_CALL, |datums| async move {
                let count = datums.len();
                each(count, self.put(datums).await)
            })
            .await
            .map(|_| ())
    }

    fn is_local(&self) -> bool {
        false
    }
}
