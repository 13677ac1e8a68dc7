//! Marquee's Lambda functions, `projector` (an SQS event source, answered with a partial batch
//! response) and `scheduler` (an EventBridge schedule): their configuration, start-up and
//! handlers. Init only reads the configuration and builds the AWS configuration, so the function
//! asks for its first event within milliseconds; the database pool and the AWS adapters, which
//! need the network, are opened by the first invocation and kept for the next ones.

pub mod config;
pub mod projector;
pub mod scheduler;

use std::process::ExitCode;

/// The same allocator as the marquee binary: the handlers fold pages of events, which glibc's
/// allocator serves slowly across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use aws_config::{BehaviorVersion, SdkConfig};
use event_store::{Database, EventStore, PoolSettings};
use lambda_runtime::Diagnostic;
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{build_request, PooledClient};
use projectors::aws::Topology;
use projectors::{Adapters, ProjectorError};
use tracing::error;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError};

/// JSON lines on stdout, which Lambda sends to CloudWatch Logs. Each line carries its span, so
/// the runtime's invocation span adds the Lambda request id to everything a handler logs.
pub fn init_logging(filter: &str) {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stdout)
        .init();
}

/// Says on stderr why the function cannot start and reports it to Lambda through the Runtime
/// API's `init/error` (lambda_runtime reports only SnapStart's init failures); the caller then
/// exits non-zero.
pub async fn report_init_error(error: &ConfigError) {
    eprintln!("cannot start: {error}");
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return;
    }
    let body = serde_json::json!({"errorType": "ConfigError", "errorMessage": error.to_string()});
    let request = build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header(
            "lambda-runtime-function-error-type",
            "Runtime.ConfigInvalid",
        )
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()));
    let reported = match request {
        Ok(request) => PooledClient::builder().build().call(request).await,
        Err(e) => Err(e.into()),
    };
    match reported {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => eprintln!(
            "the Runtime API refused the init error report: {}",
            response.status()
        ),
        Err(e) => eprintln!("could not report the init error to the Runtime API: {e}"),
    }
}

/// The AWS configuration every client is built from; credentials and region come from the
/// environment Lambda sets, and are resolved on first use.
pub async fn aws_config(config: &Config) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).timeout_config(projectors::aws::timeouts());
    if let Some(endpoint) = &config.aws_endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// The event store, without migrating (the app does that), and the aws profile's adapters.
pub async fn connect(
    config: &Config,
    aws: &SdkConfig,
) -> Result<(EventStore, Adapters), ProjectorError> {
    let pool = PoolSettings {
        // One invocation at a time: a projection's transaction and the reads it makes beside it.
        max_connections: 2,
        ..PoolSettings::default()
    };
    let db = Database::connect(&config.database_url, pool).await?;
    let store = EventStore::with_database(db, projectors::domain_upcaster()).await?;
    // Boxed: the SDK's futures nest too deep for the compiler to lay out inside `main`'s.
    let adapters = Box::pin(Adapters::aws(
        aws,
        &Topology::new(&config.sns_topic_prefix).with_metrics_namespace(&config.metrics_namespace),
    ))
    .await?;
    Ok((store, adapters))
}

/// The end of `main`: the runtime loop only stops when it cannot reach the Runtime API.
pub fn exit(served: Result<(), lambda_runtime::Error>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

/// Why an invocation failed as a whole; Lambda then retries it (SQS redelivers every message).
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Pipeline(#[from] ProjectorError),
    #[error("SQS record {0} has no messageId, so its failure could not be reported on its own")]
    NoMessageId(usize),
}

impl From<FunctionError> for Diagnostic {
    fn from(error: FunctionError) -> Self {
        let error_type = match &error {
            FunctionError::Pipeline(_) => "Marquee.PipelineError",
            FunctionError::NoMessageId(_) => "Marquee.MalformedEvent",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}
