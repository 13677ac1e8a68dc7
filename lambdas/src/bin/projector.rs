//! The `projector` Lambda (SQS event source, partial batch response): the projection named by
//! `MARQUEE_PROJECTION` applies each batch from its queue.

use std::process::ExitCode;

use lambda_runtime::service_fn;
use lambdas::config::{self, Config};
use lambdas::projector::ProjectorFunction;
use tracing::info;

#[tokio::main]
async fn main() -> ExitCode {
    let configured =
        Config::from_env().and_then(|c| Ok((c, config::projection(&config::environment)?)));
    let (config, projection) = match configured {
        Ok(configured) => configured,
        Err(error) => {
            lambdas::report_init_error(&error).await;
            return ExitCode::FAILURE;
        }
    };
    lambdas::init_logging(&config.log);
    info!(?config, projection, "projector starting");
    let aws = lambdas::aws_config(&config).await;
    let function = ProjectorFunction::new(config, projection, aws);
    lambdas::exit(lambda_runtime::run(service_fn(|event| function.handle(event))).await)
}
