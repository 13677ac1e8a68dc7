//! Assembling the pipeline: the three projectors and the maintenance job over the adapters the
//! profile chose, in one place shared by `marquee` and the Lambda functions.

use std::sync::Arc;

use async_trait::async_trait;
use event_store::{EventStore, Upcaster};

use crate::aws::{dead_letter_depth, CloudWatchMetrics, SnsNotifier, Topology};
use crate::engine::Projector;
use crate::error::{ProjectorError, Result};
use crate::maintenance::{DeadLetterProbe, Maintenance};
use crate::metrics::{LocalMetricSeries, MetricSink, Metrics, METRICS};
use crate::notifications::{AlertRules, LogNotifier, Notifications, Notifier, NOTIFICATIONS};
use crate::read_models::{ReadModels, READ_MODELS};

/// Every projection, in the order they are started and listed.
pub const PROJECTIONS: [&str; 3] = [READ_MODELS, METRICS, NOTIFICATIONS];

/// Where effects go: chosen once at start-up.
#[derive(Clone)]
pub struct Adapters {
    pub metrics: Arc<dyn MetricSink>,
    pub notifier: Arc<dyn Notifier>,
    /// Only where there are queues (aws).
    pub dead_letters: Option<Arc<dyn DeadLetterProbe>>,
}

impl Adapters {
    /// The embedded profile's: a local metric series and notifications to the log.
    pub fn local() -> Self {
        Self {
            metrics: Arc::new(LocalMetricSeries),
            notifier: Arc::new(LogNotifier),
            dead_letters: None,
        }
    }
}

impl Adapters {
    /// The aws profile's: CloudWatch, SNS, and the projectors' dead-letter queues.
    pub async fn aws(config: &aws_config::SdkConfig, topology: &Topology) -> Result<Self> {
        Ok(Self {
            metrics: Arc::new(CloudWatchMetrics::new(
                aws_sdk_cloudwatch::Client::new(config),
                topology.metrics_namespace.clone(),
            )),
            notifier: Arc::new(SnsNotifier::connect(config, topology).await?),
            dead_letters: Some(sqs_dead_letters(config, topology)),
        })
    }
}

/// The probe of every projector's dead-letter queue (asks SQS only when called).
pub fn sqs_dead_letters(
    config: &aws_config::SdkConfig,
    topology: &Topology,
) -> Arc<dyn DeadLetterProbe> {
    Arc::new(SqsDeadLetters {
        client: aws_sdk_sqs::Client::new(config),
        topology: topology.clone(),
    })
}

/// The depth of every projector's dead-letter queue.
struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    topology: Topology,
}

#[async_trait]
impl DeadLetterProbe for SqsDeadLetters {
    async fn depths(&self) -> Result<Vec<(String, i64)>> {
        let mut depths = Vec::new();
        for projection in PROJECTIONS {
            let depth = dead_letter_depth(&self.client, &self.topology, projection).await?;
            depths.push((self.topology.dead_letter_queue(projection), depth));
        }
        Ok(depths)
    }
}

/// Thresholds of the alerts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineSettings {
    pub alert_rules: AlertRules,
    /// Projection lag, in events, above which admins are alerted.
    pub lag_alert: i64,
    /// Off (`None`) except in crash tests.
    pub failpoint: Option<Failpoint>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            alert_rules: AlertRules::default(),
            lag_alert: 1000,
            failpoint: None,
        }
    }
}

/// A point where the process aborts on purpose, so tests can prove what survives a crash there.
/// Set only by `MARQUEE_FAILPOINT`, which nothing but the tests sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// Right after a guarded apply that applied events committed, before its effects leave the
    /// outbox and before the bus message is acknowledged (SQS delete): in every projection, or
    /// only in the one named.
    ProjectorAfterApply { projection: Option<&'static str> },
    /// In a replay of the read models on MySQL, right after the new guards and position
    /// committed, before the new tables are swapped in (see `replay::swap`).
    ReplayBeforeSwap,
}

impl std::str::FromStr for Failpoint {
    type Err = ProjectorError;

    /// `projector-after-apply`, `projector-after-apply:PROJECTION` or `replay-before-swap`.
    fn from_str(text: &str) -> Result<Self> {
        let (point, projection) = match text.split_once(':') {
            Some((point, name)) => (point, Some(name)),
            None => (text, None),
        };
        let projection = match projection {
            None => None,
            Some(name) => Some(
                PROJECTIONS
                    .into_iter()
                    .find(|known| *known == name)
                    .ok_or_else(|| ProjectorError::UnknownProjection(name.to_owned()))?,
            ),
        };
        match point {
            "projector-after-apply" => Ok(Failpoint::ProjectorAfterApply { projection }),
            "replay-before-swap" if projection.is_none() => Ok(Failpoint::ReplayBeforeSwap),
            other => Err(ProjectorError::UnknownFailpoint(other.to_owned())),
        }
    }
}

/// The projector called `name`.
pub fn projector(
    store: &EventStore,
    adapters: &Adapters,
    settings: &PipelineSettings,
    name: &str,
) -> Result<Projector> {
    let projection: Arc<dyn crate::Projection> = match name {
        READ_MODELS => Arc::new(ReadModels),
        METRICS => Arc::new(Metrics::new(Arc::clone(&adapters.metrics))),
        NOTIFICATIONS => Arc::new(Notifications::new(
            Arc::clone(&adapters.notifier),
            settings.alert_rules,
        )),
        other => return Err(ProjectorError::UnknownProjection(other.to_owned())),
    };
    Ok(Projector::new(store.clone(), projection).with_failpoint(settings.failpoint))
}

/// All three projectors.
pub fn projectors(
    store: &EventStore,
    adapters: &Adapters,
    settings: &PipelineSettings,
) -> Vec<Projector> {
    PROJECTIONS
        .iter()
        .map(|name| projector(store, adapters, settings, name).expect("PROJECTIONS are all known"))
        .collect()
}

/// The periodic job over all three projectors.
pub fn maintenance(
    store: &EventStore,
    adapters: &Adapters,
    settings: &PipelineSettings,
) -> Maintenance {
    Maintenance::new(
        store.clone(),
        projectors(store, adapters, settings),
        Arc::clone(&adapters.metrics),
        adapters.dead_letters.clone(),
        settings.lag_alert,
    )
}

/// The domain's upcasters, personal and secret fields, as the store calls them.
pub fn domain_upcaster() -> Arc<dyn Upcaster> {
    Arc::new(DomainSchema)
}

struct DomainSchema;

impl Upcaster for DomainSchema {
    fn upcast(
        &self,
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> std::result::Result<(u32, serde_json::Value), String> {
        domain::upcast(event_type, schema_version, payload).map_err(|e| e.to_string())
    }

    fn personal_fields(&self, event_type: &str) -> &'static [&'static str] {
        domain::personal_fields(event_type)
    }

    fn secret_fields(&self, event_type: &str) -> &'static [&'static str] {
        domain::secret_fields(event_type)
    }

    fn erases_personal_data(&self, event_type: &str) -> bool {
        domain::erases_personal_data(event_type)
    }
}

#[cfg(test)]
mod tests {
    /// The store writes its marker where the domain reads its own: they must be one text.
    #[test]
    fn the_store_and_the_domain_erase_alike() {
        assert_eq!(event_store::ERASED, domain::ERASED);
    }

    /// Likewise the marker for secret fields.
    #[test]
    fn the_store_and_the_domain_redact_alike() {
        assert_eq!(event_store::REDACTED, domain::REDACTED);
    }
}
