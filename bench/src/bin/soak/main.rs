//! `soak`: the release `marquee serve` (embedded profile) under a steady mixed load for a long
//! time: new movies, edits, posters, registrations and sign-ins, GraphQL catalogue reads, and live
//! `movieChanged` subscriptions over /graphql/ws counting what they receive. Samples the server's
//! resident memory (VmRSS) and the projection lag every few seconds; reports errors, memory at
//! the start, the end and its peak, the largest lag and the throughput.

mod load;
mod subscriber;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use marquee_bench::machine::load_average;
use marquee_bench::server::Server;
use serde::Serialize;
use sqlx::Row;

use load::{Kind, Tally};

#[derive(Debug, Parser)]
#[command(about = "marquee serve under a steady mixed load for a long time")]
struct Args {
    /// The release `marquee` binary to run as the server.
    #[arg(long, default_value = "/var/tmp/marquee-target/release/marquee")]
    marquee: PathBuf,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seconds between samples of memory and lag.
    #[arg(long, default_value_t = 10)]
    sample_seconds: u64,
    /// Requests per second offered, spread over the clients at a steady pace.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Live `movieChanged` subscriptions.
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Sample {
    at_seconds: f64,
    rss_mib: f64,
    lag_events: i64,
}

#[derive(Debug, Serialize)]
struct Report {
    seconds: u64,
    rate: u32,
    clients: usize,
    load_average_start: String,
    load_average_end: String,
    requests: u64,
    requests_per_second: f64,
    errors: u64,
    first_errors: Vec<String>,
    by_kind: Vec<load::KindReport>,
    rss_start_mib: f64,
    rss_end_mib: f64,
    rss_max_mib: f64,
    lag_max_events: i64,
    lag_end_events: i64,
    subscription_events_expected: u64,
    subscription_events_received: Vec<u64>,
    samples: Vec<Sample>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let data_dir = tempfile::tempdir().context("a data directory for the server")?;
    let env = vec![
        ("MARQUEE_DATA_DIR", data_dir.path().display().to_string()),
        ("MARQUEE_SIGN_IN_RATE", "10000".to_string()),
    ];
    let server = Server::start(&args.marquee, &env).await?;
    let lag = Lag::open(&data_dir.path().join("marquee.db")).await?;
    let load_average_start = load_average().unwrap_or_default();
    eprintln!(
        "soak: {} s, {} requests/s over {} clients, {} subscribers; load average {load_average_start}",
        args.seconds, args.rate, args.clients, args.subscribers
    );

    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        subscribers.push(subscriber::Subscriber::start(&server.base_url).await?);
    }
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let png = load::poster_png()?;
    // A subscription is live only once the server has read its subscribe message: a movie that
    // every subscriber sees before the load starts proves it, and is not counted.
    let canary = load::Client::new(&server.base_url, args.clients, png.clone()).await?;
    canary.add_movie(0).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while subscribers.iter().any(|s| s.received() == 0) {
        ensure!(
            Instant::now() < deadline,
            "the subscriptions did not see a first movie within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen_before_load: Vec<u64> = subscribers.iter().map(|s| s.received()).collect();
    let during_load =
        |subscriber: (&subscriber::Subscriber, &u64)| subscriber.0.received() - subscriber.1;
    let started = Instant::now();
    let mut clients = Vec::new();
    for n in 0..args.clients {
        let client = load::Client::new(&server.base_url, n, png.clone()).await?;
        let pace = Duration::from_secs_f64(args.clients as f64 / f64::from(args.rate));
        let (tally, stop) = (tally.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            client.run(pace, &tally, &stop).await
        }));
    }

    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(args.sample_seconds));
    let end = started + Duration::from_secs(args.seconds);
    loop {
        ticker.tick().await;
        let sample = Sample {
            at_seconds: started.elapsed().as_secs_f64(),
            rss_mib: server.memory_mib()?.rss_mib,
            lag_events: lag.events().await?,
        };
        eprintln!(
            "  {:>6.0} s  RSS {:>6.1} MiB  lag {:>4} events  {} requests, {} errors",
            sample.at_seconds,
            sample.rss_mib,
            sample.lag_events,
            tally.requests(),
            tally.errors()
        );
        samples.push(sample);
        if Instant::now() >= end {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await??;
    }
    let elapsed = started.elapsed();
    let rss_end = server.memory_mib()?.rss_mib;

    // Movie events the subscriptions should have seen; they send each once the read models
    // have it, so give them a moment.
    let expected = tally.movie_events();
    let deadline = Instant::now() + Duration::from_secs(15);
    let received = || -> Vec<u64> {
        subscribers
            .iter()
            .zip(&seen_before_load)
            .map(during_load)
            .collect()
    };
    while Instant::now() < deadline && received().iter().any(|&count| count < expected) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let received = received();
    let lag_end = lag.events().await?;
    server.stop().await?;

    let mut errors = tally.errors();
    let mut first_errors = tally.first_errors();
    for (n, count) in received.iter().enumerate() {
        if *count != expected {
            errors += 1;
            first_errors.push(format!(
                "subscriber {n} received {count} movieChanged events, not {expected}"
            ));
        }
    }
    let requests = tally.requests();
    let report = Report {
        seconds: args.seconds,
        rate: args.rate,
        clients: args.clients,
        load_average_start,
        load_average_end: load_average().unwrap_or_default(),
        requests,
        requests_per_second: requests as f64 / elapsed.as_secs_f64(),
        errors,
        first_errors,
        by_kind: Kind::ALL.iter().map(|kind| tally.report(*kind)).collect(),
        rss_start_mib: samples.first().map_or(0.0, |s| s.rss_mib),
        rss_end_mib: rss_end,
        rss_max_mib: samples.iter().map(|s| s.rss_mib).fold(rss_end, f64::max),
        lag_max_events: samples.iter().map(|s| s.lag_events).max().unwrap_or(0),
        lag_end_events: lag_end,
        subscription_events_expected: expected,
        subscription_events_received: received,
        samples,
    };
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    ensure!(report.errors == 0, "{} errors", report.errors);
    Ok(())
}

impl Report {
    fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "\n{} s at {} requests/s offered over {} clients; load average {} at the start, {} at the end\n\n",
            self.seconds, self.rate, self.clients, self.load_average_start, self.load_average_end
        ));
        out.push_str("| Requests | Requests/s | Errors | RSS start → end (max), MiB | Lag max / end (events) | movieChanged per subscriber (expected) |\n");
        out.push_str("|--:|--:|--:|--:|--:|--:|\n");
        out.push_str(&format!(
            "| {} | {:.1} | {} | {:.1} → {:.1} ({:.1}) | {} / {} | {} ({}) |\n\n",
            self.requests,
            self.requests_per_second,
            self.errors,
            self.rss_start_mib,
            self.rss_end_mib,
            self.rss_max_mib,
            self.lag_max_events,
            self.lag_end_events,
            self.subscription_events_received
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            self.subscription_events_expected,
        ));
        out.push_str(
            "| Request | Count | p50 (ms) | p99 (ms) | Max (ms) |\n|---|--:|--:|--:|--:|\n",
        );
        for kind in &self.by_kind {
            out.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} |\n",
                kind.kind, kind.count, kind.p50_ms, kind.p99_ms, kind.max_ms
            ));
        }
        for error in &self.first_errors {
            out.push_str(&format!("\nerror: {error}"));
        }
        out.push('\n');
        out
    }
}

/// The projection lag: the store's head minus the slowest projection's position, read over a
/// read-only connection to the server's SQLite file.
struct Lag(sqlx::SqlitePool);

impl Lag {
    async fn open(path: &std::path::Path) -> Result<Self> {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        Ok(Self(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?,
        ))
    }

    async fn events(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT (SELECT last_position FROM event_store_head WHERE id = 1) - \
             COALESCE((SELECT MIN(position) FROM projection_status \
                       WHERE name IN ('read-models', 'metrics', 'notifications')), 0)",
        )
        .fetch_one(&self.0)
        .await?;
        Ok(row.try_get(0)?)
    }
}
