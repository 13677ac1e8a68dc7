//! The aws profile's adapters: the bus (an SNS FIFO topic fanned out to one SQS FIFO queue per
//! projector), CloudWatch metrics and SNS notifications, all named by one `Topology`.

mod cloudwatch;
mod sns;
mod sqs;
mod topology;

pub use cloudwatch::CloudWatchMetrics;
pub use sns::{SnsFifoPublisher, SnsNotifier};
pub use sqs::{dead_letter_depth, queue_url, SqsConsumer};
pub use topology::Topology;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

use crate::error::ProjectorError;

/// How long one attempt of an AWS call may take before the SDK gives up on it and retries.
/// Without a bound, a service that takes the connection and never answers holds the relay and
/// the projectors until it answers again, with no error to log or back off on.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The timeouts every AWS client of Marquee is built with; an SQS long poll adds its wait.
pub fn timeouts() -> TimeoutConfig {
    timeouts_with_wait(Duration::ZERO)
}

fn timeouts_with_wait(wait: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT + wait)
        .build()
}

/// An SDK error with its whole chain (the service's code and message, not just "service error").
fn aws_error(service: &'static str, error: impl std::error::Error) -> ProjectorError {
    ProjectorError::aws(service, aws_sdk_sns::error::DisplayErrorContext(error))
}
