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

use crate::error::ProjectorError;

/// An SDK error with its whole chain (the service's code and message, not just "service error").
fn aws_error(service: &'static str, error: impl std::error::Error) -> ProjectorError {
    ProjectorError::aws(service, aws_sdk_sns::error::DisplayErrorContext(error))
}
