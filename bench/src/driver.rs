//! Drives concurrent writers against one contender and turns what they saw into a measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::contenders::Contender;

/// What one run measured. Every command appends exactly one event.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measurement {
    pub events: usize,
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `writers` tasks that append back to back for `warmup + window`. Only commands that
/// complete inside the window count, and the rate is over the window alone, so neither the
/// warm-up (pools opening, caches filling) nor the commands still in flight at the end skew it.
pub async fn measure(
    contender: Arc<dyn Contender>,
    writers: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Measurement> {
    let window_start = Instant::now() + warmup;
    let window_end = window_start + window;
    let mut tasks = JoinSet::new();
    for _ in 0..writers {
        let contender = Arc::clone(&contender);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let started = Instant::now();
                if started >= window_end {
                    return anyhow::Ok(latencies);
                }
                contender.append_one().await?;
                let done = Instant::now();
                if done > window_start && done <= window_end {
                    latencies.push(done - started);
                }
            }
        });
    }
    let mut latencies = Vec::new();
    while let Some(writer) = tasks.join_next().await {
        latencies.extend(writer??);
    }
    ensure!(
        !latencies.is_empty(),
        "no command completed inside the window"
    );
    latencies.sort_unstable();
    Ok(Measurement {
        events: latencies.len(),
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
