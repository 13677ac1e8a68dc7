use std::process::ExitCode;

use clap::Parser;
use marquee::cli::{run, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("marquee: {error:#}");
            ExitCode::FAILURE
        }
    }
}
