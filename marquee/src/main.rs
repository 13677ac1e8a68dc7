use std::process::ExitCode;

use clap::Parser;
use marquee::cli::{run, Cli};

/// Replays and pages of events allocate and free millions of small values across threads, where
/// glibc's allocator spent more time than the work itself (bench/README.md, replay).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
