//! Drives concurrent writers against contenders and turns what they saw into a measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::contenders::Contender;

/// A command that completed but did not succeed (such as an HTTP status other than the expected
/// one): the driver counts it as a failure, never as a success, and keeps going. Any other error
/// stops the run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandFailed(pub String);

/// What one run measured. Every successful command appends exactly one event.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measurement {
    pub events: usize,
    /// Commands that completed inside the window with a `CommandFailed`.
    pub failures: usize,
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `writers` tasks that share `contender` and append back to back for `warmup + window`.
/// Only commands that complete inside the window count, and the rate is over the window alone,
/// so neither the warm-up (pools opening, caches filling) nor the commands still in flight at the
/// end skew it.
pub async fn measure(
    contender: Arc<dyn Contender>,
    writers: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Measurement> {
    measure_each(vec![contender; writers], warmup, window).await
}

/// As `measure`, with one writer task per contender, each using only its own.
pub async fn measure_each(
    contenders: Vec<Arc<dyn Contender>>,
    warmup: Duration,
    window: Duration,
) -> Result<Measurement> {
    let window_start = Instant::now() + warmup;
    let window_end = window_start + window;
    let mut tasks = JoinSet::new();
    for contender in contenders {
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            loop {
                let started = Instant::now();
                if started >= window_end {
                    return anyhow::Ok((latencies, failures));
                }
                let outcome = contender.append_one().await;
                let done = Instant::now();
                let inside = done > window_start && done <= window_end;
                match outcome {
                    Ok(()) if inside => latencies.push(done - started),
                    Ok(()) => {}
                    Err(e) if e.is::<CommandFailed>() => {
                        if failures == 0 {
                            eprintln!("  a command failed: {e:#}");
                        }
                        if inside {
                            failures += 1;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        });
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    while let Some(writer) = tasks.join_next().await {
        let (theirs, failed) = writer??;
        latencies.extend(theirs);
        failures += failed;
    }
    ensure!(
        !latencies.is_empty(),
        "no command completed inside the window"
    );
    latencies.sort_unstable();
    Ok(Measurement {
        events: latencies.len(),
        failures,
        events_per_second: latencies.len() as f64 / window.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    })
}

/// The nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile(sorted: &[Duration], quantile: f64) -> f64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}
