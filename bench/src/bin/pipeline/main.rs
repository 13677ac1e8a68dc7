//! `pipeline`: how fast events flow from the store into the read models.
//!
//! - `lag`: end-to-end lag, command accepted (the 201 of `POST /api/movies`) → applied by the
//!   `read-models` projection, at a steady open-loop rate through the real release `marquee`
//!   processes, in the embedded profile (projectors inside `serve`) and the aws profile
//!   (`serve` + `relay` + `project` on MariaDB and moto).
//! - `replay`: `projectors::replay` over 1,000,000 real events on MariaDB, beside a plain sqlx
//!   stream of the same rows, with the replay's steps and both sides' CPU time.
//!
//! Each prints a Markdown table for the README; `--json` keeps the figures.

mod children;
mod cpu;
mod fill;
mod lag;
mod replay;
mod sql_times;

use std::path::Path;

use anyhow::{Context, Result};

/// The marquee binary's allocator, so that the in-process replay runs as `marquee replay` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::Parser;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(about = "End-to-end projection lag and replay rate")]
enum Args {
    /// Command accepted → visible in the read model, at a steady rate, per profile.
    Lag(lag::Args),
    /// Replay of the read models over a million events on MariaDB, against a raw stream.
    Replay(replay::Args),
}

#[tokio::main]
async fn main() -> Result<()> {
    match Args::parse() {
        Args::Lag(args) => {
            let json = args.json.clone();
            let report = lag::run(args).await?;
            print!("{}", report.markdown());
            write_json(json.as_deref(), &report)
        }
        Args::Replay(args) => {
            let json = args.json.clone();
            let report = replay::run(args).await?;
            print!("{}", report.markdown());
            write_json(json.as_deref(), &report)
        }
    }
}

fn write_json(path: Option<&Path>, report: &impl Serialize) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Where the benchmark's MariaDB databases live.
fn database_url(server: &str, name: &str) -> String {
    format!("{}/{name}", server.trim_end_matches('/'))
}
