//! The `scheduler` function: the periodic maintenance (store sweep, ledger checkpoint, expired
//! lockouts, projection lag, dead letters, effects in doubt, daily digest), answered with what it
//! did.

use aws_config::SdkConfig;
use chrono::Utc;
use lambda_runtime::LambdaEvent;
use projectors::{Maintenance, MaintenanceReport};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{error, info};

use crate::config::Config;
use crate::FunctionError;

pub struct SchedulerFunction {
    config: Config,
    aws: SdkConfig,
    /// Opened by the first invocation; a failed attempt is retried by the next one.
    maintenance: OnceCell<Maintenance>,
}

/// The function's answer: `MaintenanceReport` as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The last position the new ledger checkpoint seals, if there was anything to seal.
    pub checkpoint: Option<i64>,
    /// Events the store sweep applied because the bus had not delivered them.
    pub swept: usize,
    pub unlocked: Vec<String>,
    /// The largest projection lag, in events.
    pub lag: i64,
    pub dead_letters: Vec<DeadLetters>,
    /// Effects whose sending may or may not have arrived, per outbox channel.
    pub in_doubt: Vec<InDoubt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetters {
    pub queue: String,
    pub depth: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InDoubt {
    pub channel: String,
    pub effects: i64,
}

impl From<MaintenanceReport> for Report {
    fn from(report: MaintenanceReport) -> Self {
        Self {
            checkpoint: report.checkpoint,
            swept: report.swept,
            unlocked: report.unlocked,
            lag: report.lag,
            dead_letters: report
                .dead_letters
                .into_iter()
                .map(|(queue, depth)| DeadLetters { queue, depth })
                .collect(),
            in_doubt: report
                .in_doubt
                .into_iter()
                .map(|(channel, effects)| InDoubt { channel, effects })
                .collect(),
        }
    }
}

impl SchedulerFunction {
    pub fn new(config: Config, aws: SdkConfig) -> Self {
        Self {
            config,
            aws,
            maintenance: OnceCell::new(),
        }
    }

    /// Takes any JSON: an EventBridge rule sends a scheduled event, EventBridge Scheduler
    /// whatever input its schedule names, and the work is the same.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Report, FunctionError> {
        let field = |name| event.payload.get(name).and_then(serde_json::Value::as_str);
        info!(
            schedule_event_id = field("id"),
            scheduled_at = field("time"),
            "maintenance started"
        );
        let maintenance = self.maintenance().await.inspect_err(|e| {
            error!(error = %e, "cannot open the pipeline");
        })?;
        let report = maintenance.run(Utc::now()).await.inspect_err(|e| {
            error!(error = %e, "every maintenance job failed");
        })?;
        Ok(report.into())
    }

    async fn maintenance(&self) -> Result<&Maintenance, FunctionError> {
        self.maintenance
            .get_or_try_init(|| async {
                let (store, adapters) = crate::connect(&self.config, &self.aws).await?;
                info!("pipeline opened");
                Ok(projectors::maintenance(
                    &store,
                    &adapters,
                    &self.config.pipeline,
                ))
            })
            .await
    }
}
