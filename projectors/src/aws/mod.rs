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

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sns::error::SdkError;

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

/// No retries by the SDK, for calls that are not idempotent (PutMetricData, an SNS Publish to a
/// standard topic): a retry after a timeout sends again what the service may already have. The
/// outbox retries what is known not to have arrived.
fn no_retries() -> RetryConfig {
    RetryConfig::disabled()
}

/// The error of a call that must not be repeated blindly: `InDoubt` unless the request is known
/// not to have taken effect (it never left, it found nobody listening, or the service refused it).
fn effect_error<E, R>(service: &'static str, error: SdkError<E, R>) -> ProjectorError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let message = aws_sdk_sns::error::DisplayErrorContext(&error).to_string();
    if took_no_effect(&error) {
        ProjectorError::Aws { service, message }
    } else {
        ProjectorError::InDoubt { service, message }
    }
}

fn took_no_effect<E, R>(error: &SdkError<E, R>) -> bool
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match error {
        SdkError::ConstructionFailure(_) | SdkError::ServiceError(_) => true,
        // Only the connect timeout is set on the connector: a timeout here is one of connecting.
        SdkError::DispatchFailure(failure) => {
            failure.is_timeout() || failure.is_user() || refused(error)
        }
        // The attempt timed out, or a response came back unreadable: the request may have arrived.
        _ => false,
    }
}

/// Whether a connection was refused somewhere in `error`'s chain: nothing was sent.
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        next = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io;

    use aws_sdk_sns::error::ConnectorError;

    use super::*;

    type CallError = SdkError<io::Error, ()>;

    fn io_failure(kind: io::ErrorKind) -> CallError {
        SdkError::dispatch_failure(ConnectorError::io(Box::new(io::Error::from(kind))))
    }

    #[test]
    fn a_call_is_in_doubt_unless_it_cannot_have_arrived() {
        assert!(took_no_effect(&io_failure(
            io::ErrorKind::ConnectionRefused
        )));
        let connect_timeout: CallError =
            SdkError::dispatch_failure(ConnectorError::timeout("connect timeout".into()));
        assert!(took_no_effect(&connect_timeout));
        let refused_by_the_service: CallError =
            SdkError::service_error(io::Error::other("Throttling"), ());
        assert!(took_no_effect(&refused_by_the_service));

        assert!(!took_no_effect(&io_failure(io::ErrorKind::ConnectionReset)));
        let attempt_timeout: CallError = SdkError::timeout_error("attempt timeout");
        assert!(!took_no_effect(&attempt_timeout));
        assert!(matches!(
            effect_error("SNS", attempt_timeout),
            ProjectorError::InDoubt { service: "SNS", .. }
        ));
        assert!(matches!(
            effect_error("SNS", io_failure(io::ErrorKind::ConnectionRefused)),
            ProjectorError::Aws { service: "SNS", .. }
        ));
    }
}
