//! `lambda_init`: how long the release `projector` and `scheduler` Lambda binaries take to start,
//! measured as Lambda sees a cold start's init: from spawning the process to its first request
//! to the Runtime API (the tests' emulator). Each run is a fresh process and a fresh emulator;
//! one unmeasured run per binary first loads it into the page cache. Init reads the
//! configuration and builds the AWS configuration only, so no database or AWS endpoint is needed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use marquee_tests::lambda_runtime::{spawn_function, RuntimeApi};

/// The target for both functions.
const TARGET_P99_MS: f64 = 50.0;

#[derive(Debug, Parser)]
#[command(about = "Time from process spawn to the first Runtime API request, for both Lambdas")]
struct Args {
    #[arg(long, default_value = "/var/tmp/marquee-target/release/projector")]
    projector: PathBuf,
    #[arg(long, default_value = "/var/tmp/marquee-target/release/scheduler")]
    scheduler: PathBuf,
    /// Measured runs per binary.
    #[arg(long, default_value_t = 50)]
    runs: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    // What Lambda gives a function (role credentials) and what the deployment sets. The
    // database is never reached during init; warnings only, so the logs stay out of the figures'
    // way.
    let common = [
        (
            "DATABASE_URL",
            "mysql://marquee@127.0.0.1:3306/marquee_bench_lambda",
        ),
        ("MARQUEE_LOG", "warn"),
        ("AWS_ACCESS_KEY_ID", "ASIABENCHMARKEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "benchmark-secret"),
        ("AWS_SESSION_TOKEN", "benchmark-session-token"),
    ];
    let functions = [
        (
            "projector",
            &args.projector,
            Some(("MARQUEE_PROJECTION", "read-models")),
        ),
        ("scheduler", &args.scheduler, None),
    ];
    println!("| function | runs | p50 ms | p99 ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    let mut met = true;
    for (name, binary, extra) in functions {
        let env: Vec<(String, String)> = common
            .iter()
            .chain(extra.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        init_time(binary, &env)
            .await
            .with_context(|| format!("warming up {name}"))?;
        let mut times = Vec::with_capacity(args.runs);
        for run in 0..args.runs {
            times.push(
                init_time(binary, &env)
                    .await
                    .with_context(|| format!("{name}, run {}", run + 1))?,
            );
        }
        times.sort_unstable();
        let p99 = percentile(&times, 0.99);
        met &= p99 <= TARGET_P99_MS;
        println!(
            "| {name} | {} | {:.1} | {p99:.1} | {:.1} |",
            times.len(),
            percentile(&times, 0.50),
            percentile(&times, 1.0),
        );
    }
    println!(
        "\ntarget: init p99 <= {TARGET_P99_MS} ms for both: {}",
        if met { "met" } else { "NOT met" }
    );
    Ok(())
}

/// One cold start of `binary`.
async fn init_time(binary: &Path, env: &[(String, String)]) -> Result<Duration> {
    let runtime = RuntimeApi::start().await?;
    let (mut child, spawned_at) = spawn_function(binary, &runtime, env).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let first_request = loop {
        if let Some(at) = runtime.first_request_at() {
            break at;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited ({status}) before asking for an event",
                binary.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} made no Runtime API request within 10 s",
                binary.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    child.kill().await?;
    Ok(first_request - spawned_at)
}

/// The nearest-rank percentile of sorted times, in milliseconds.
fn percentile(sorted: &[Duration], quantile: f64) -> f64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}
