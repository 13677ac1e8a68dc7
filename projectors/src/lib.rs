//! Marquee's event pipeline. Stored events reach the projectors either straight from the store
//! (embedded profile, replay) or through the relay and the bus (SNS FIFO → one SQS FIFO queue per
//! projector, aws profile); the same guarded handlers run in both cases.

pub mod aws;
mod bus;
mod engine;
mod error;
mod facts;
mod maintenance;
mod metrics;
mod notifications;
mod outbox;
mod pipeline;
mod read_models;
mod relay;
mod replay;
mod sql;
mod status;
mod sweep;
mod tail;

pub use bus::{handle_messages, BusMessage};
pub use engine::{statuses, Applied, Projection, ProjectionStatus, Projector, Rebuild, Source};
pub use error::{ProjectorError, Result};
pub use facts::{fact, Fact};
pub use maintenance::{DeadLetterProbe, Maintenance, MaintenanceReport};
pub use metrics::{
    metric_for, LocalMetricSeries, MetricDatum, MetricPoint, MetricSink, Metrics, METRICS,
    METRIC_NAMES, NAMESPACE,
};
pub use notifications::{
    raise_alert, recent_alerts, AlertRules, LogNotifier, Notification, Notifications, Notifier,
    RecordedAlert, Topic, NOTIFICATIONS,
};
pub use outbox::Outbox;
pub use pipeline::{
    domain_upcaster, maintenance, projector, projectors, sqs_dead_letters, Adapters, Failpoint,
    PipelineSettings, PROJECTIONS,
};
pub use read_models::{
    Difference, LoginRow, MovieRow, ReadModel, ReadModels, UserRow, READ_MODELS,
};
pub use relay::{EventPublisher, Relay, RELAY};
pub use replay::{compare_read_models, replay, ReplayMethod, ReplayReport, ReplayStep};
pub use sweep::{sweep_periodically, Swept, SWEEP_GRACE, SWEEP_INTERVAL};
pub use tail::tail;
