//! `append`: event-store append throughput and latency, one new movie per command, with 1, 8 and
//! 32 concurrent writers on MariaDB and SQLite, beside two baselines from the same run:
//! (a) plain sqlx single-row INSERT transactions, the limit, and (b) cqrs-es with its stock
//! mysql-es store, the peer. Prints a Markdown table for the README; `--json` keeps the figures.

mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use marquee_bench::contenders::{self, Backend, Databases, Variant};
use marquee_bench::driver;
use marquee_bench::machine::Machine;
use report::{Report, Run};

#[derive(Debug, Parser)]
#[command(about = "Event-store append throughput against plain sqlx and cqrs-es mysql-es")]
struct Args {
    /// The MariaDB server; the benchmark drops and recreates its own marquee_bench_* databases.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql_url: String,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds of appending before each measurement, discarded.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrent writers, one run per count.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    writers: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "mariadb,sqlite")]
    backends: Vec<Backend>,
    /// Which of the store and its baselines to run, in this order at each writer count.
    #[arg(long, value_delimiter = ',', default_value = "store,plain,peer")]
    variants: Vec<Variant>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let databases = Databases::new(&args.mysql_url)?;
    let machine = Machine::probe(
        args.backends
            .contains(&Backend::Mariadb)
            .then_some(databases.mysql_server.as_str()),
        args.backends
            .contains(&Backend::Sqlite)
            .then_some(databases.sqlite_dir.path()),
    )
    .await
    .context("probing the databases")?;

    let warmup = Duration::from_secs(args.warmup);
    let window = Duration::from_secs(args.seconds);
    let mut runs = Vec::new();
    for &backend in &args.backends {
        for &writers in &args.writers {
            // The variants take turns at each writer count, so drift on the machine hits all alike.
            for &variant in &args.variants {
                let mut run = Run {
                    backend,
                    writers,
                    variant,
                    measurement: None,
                    not_applicable: variant.not_applicable(backend),
                    store_over_this: None,
                };
                if run.not_applicable.is_none() {
                    let what = format!(
                        "{} × {writers} writers × {}",
                        backend.label(),
                        variant.label()
                    );
                    eprintln!("running {what}");
                    let contender = contenders::open(&databases, backend, variant, writers)
                        .await
                        .with_context(|| format!("opening {what}"))?;
                    let measured = driver::measure(contender.clone(), writers, warmup, window)
                        .await
                        .with_context(|| format!("running {what}"))?;
                    contender.close().await;
                    eprintln!(
                        "  {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms",
                        measured.events_per_second, measured.p50_ms, measured.p99_ms
                    );
                    run.measurement = Some(measured);
                }
                runs.push(run);
            }
        }
    }

    let report = Report::new(machine, args.seconds, args.warmup, runs);
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
