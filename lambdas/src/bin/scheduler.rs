//! The `scheduler` Lambda (EventBridge schedule): runs the periodic maintenance and answers
//! with its report.

use std::process::ExitCode;

use lambda_runtime::service_fn;
use lambdas::config::Config;
use lambdas::scheduler::SchedulerFunction;
use tracing::info;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            lambdas::report_init_error(&error).await;
            return ExitCode::FAILURE;
        }
    };
    lambdas::init_logging(&config.log);
    info!(?config, "scheduler starting");
    let aws = lambdas::aws_config(&config).await;
    let function = SchedulerFunction::new(config, aws);
    lambdas::exit(lambda_runtime::run(service_fn(|event| function.handle(event))).await)
}
