//! `api`: `POST /api/movies` through the real release `marquee serve`, with 32 concurrent clients,
//! in both profiles (embedded on SQLite, aws on MariaDB and moto), beside the raw-insert baseline
//! (the append benchmark's "(a) plain sqlx INSERT") on the same backend in the same run, and the
//! server's peak memory under that load. Prints a Markdown table for the README; `--json` keeps
//! the figures.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Parser;
use marquee_bench::contenders::{self, Backend, Contender, Databases, Variant};
use marquee_bench::driver::{self, CommandFailed, Measurement};
use marquee_bench::machine::Machine;
use serde::Serialize;
use sqlx::migrate::MigrateDatabase;
use sqlx::MySql;

use marquee_bench::server::Server;

/// The targets: p99 on MariaDB (aws) and throughput over the raw baseline, both profiles.
const TARGET_P99_MS: f64 = 25.0;
const TARGET_OVER_RAW: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Profile {
    Embedded,
    Aws,
}

impl Profile {
    fn backend(self) -> Backend {
        match self {
            Profile::Embedded => Backend::Sqlite,
            Profile::Aws => Backend::Mariadb,
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "POST /api/movies through marquee serve against the raw-insert baseline")]
struct Args {
    /// The release `marquee` binary to run as the server.
    #[arg(long, default_value = "/var/tmp/marquee-target/release/marquee")]
    marquee: PathBuf,
    /// The MariaDB server; the benchmark drops and recreates marquee_bench_api and
    /// marquee_bench_plain.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql_url: String,
    /// The S3 emulator the aws profile's server uses.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    aws_endpoint_url: String,
    /// The poster bucket of the aws profile's server, created on the emulator if missing.
    #[arg(long, default_value = "marquee-bench-posters")]
    poster_bucket: String,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds of load before each measurement, discarded.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Concurrent clients (and writers of the baseline).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, value_delimiter = ',', default_value = "embedded,aws")]
    profiles: Vec<Profile>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One client of the command API: its own connection pool (keep-alive), one request at a time.
struct ApiClient {
    client: reqwest::Client,
    url: String,
    token: String,
    body: serde_json::Value,
}

#[async_trait]
impl Contender for ApiClient {
    async fn append_one(&self) -> Result<()> {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&self.body)
            .send()
            .await
            .map_err(|e| CommandFailed(format!("POST /api/movies: {e}")))?;
        let status = response.status();
        // Read the body, so the connection goes back to the pool for the next request.
        let text = response.text().await.unwrap_or_default();
        if status != 201 {
            return Err(
                CommandFailed(format!("POST /api/movies answered {status}: {text}")).into(),
            );
        }
        Ok(())
    }

    async fn close(&self) {}
}

#[derive(Debug, Serialize)]
struct ProfileRun {
    profile: Profile,
    backend: Backend,
    clients: usize,
    api: Measurement,
    raw_baseline: Measurement,
    api_over_raw: f64,
    server_rss_before_mib: f64,
    server_peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    seconds: u64,
    warmup_seconds: u64,
    runs: Vec<ProfileRun>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let databases = Databases::new(&args.mysql_url)?;
    let on = |profile| args.profiles.contains(&profile);
    let machine = Machine::probe(
        on(Profile::Aws).then_some(databases.mysql_server.as_str()),
        on(Profile::Embedded).then_some(databases.sqlite_dir.path()),
    )
    .await
    .context("probing the databases")?;

    let warmup = Duration::from_secs(args.warmup);
    let window = Duration::from_secs(args.seconds);
    let mut runs = Vec::new();
    for &profile in &args.profiles {
        let data_dir = tempfile::tempdir().context("a data directory for the server")?;
        let env = server_env(&args, profile, data_dir.path()).await?;

        eprintln!(
            "running {profile:?}: {} clients × POST /api/movies",
            args.clients
        );
        let server = Server::start(&args.marquee, &env).await?;
        let token = server.signed_in("bench").await?;
        let before = server.memory_mib()?;
        let clients: Vec<Arc<dyn Contender>> = (0..args.clients)
            .map(|_| {
                Ok(Arc::new(ApiClient {
                    client: reqwest::Client::builder()
                        .pool_max_idle_per_host(1)
                        .build()?,
                    url: format!("{}/api/movies", server.base_url),
                    token: token.clone(),
                    body: serde_json::json!({
                        "title": "The Matrix",
                        "year": 1999,
                        "director": "Lana Wachowski",
                        "genres": ["Science Fiction", "Action"],
                        "description": "A hacker learns the truth.",
                    }),
                }) as Arc<dyn Contender>)
            })
            .collect::<Result<_>>()?;
        let api = driver::measure_each(clients, warmup, window).await;
        let after = server.memory_mib();
        server.stop().await?;
        let api = api?;
        let after = after?;
        eprintln!(
            "  {:.0} commands/s, p50 {:.2} ms, p99 {:.2} ms, {} failures, server RSS {:.1} → peak {:.1} MiB",
            api.events_per_second, api.p50_ms, api.p99_ms, api.failures, before.rss_mib, after.peak_mib
        );

        // The raw-insert baseline on the same backend, with the server stopped.
        let backend = profile.backend();
        eprintln!(
            "running {} × {} writers × {}",
            backend.label(),
            args.clients,
            Variant::Plain.label()
        );
        let plain = contenders::open(&databases, backend, Variant::Plain, args.clients)
            .await
            .context("opening the raw-insert baseline")?;
        let raw = driver::measure(plain.clone(), args.clients, warmup, window).await?;
        plain.close().await;
        eprintln!(
            "  {:.0} events/s, p50 {:.2} ms, p99 {:.2} ms",
            raw.events_per_second, raw.p50_ms, raw.p99_ms
        );

        runs.push(ProfileRun {
            profile,
            backend,
            clients: args.clients,
            api_over_raw: api.events_per_second / raw.events_per_second,
            api,
            raw_baseline: raw,
            server_rss_before_mib: before.rss_mib,
            server_peak_rss_mib: after.peak_mib,
        });
    }

    let report = Report {
        machine,
        seconds: args.seconds,
        warmup_seconds: args.warmup,
        runs,
    };
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The server's environment for `profile`; on aws, a fresh database and the poster bucket.
async fn server_env(
    args: &Args,
    profile: Profile,
    data_dir: &std::path::Path,
) -> Result<Vec<(&'static str, String)>> {
    Ok(match profile {
        Profile::Embedded => vec![
            ("MARQUEE_DATA_DIR", data_dir.display().to_string()),
            ("MARQUEE_SIGN_IN_RATE", "10000".into()),
            ("MARQUEE_CHECKPOINT_INTERVAL", "0".into()),
        ],
        Profile::Aws => {
            let url = format!("{}/marquee_bench_api", args.mysql_url.trim_end_matches('/'));
            if MySql::database_exists(&url).await? {
                MySql::drop_database(&url).await?;
            }
            MySql::create_database(&url).await?;
            create_bucket(&args.aws_endpoint_url, &args.poster_bucket).await?;
            vec![
                ("MARQUEE_PROFILE", "aws".into()),
                ("DATABASE_URL", url),
                ("MARQUEE_POSTER_BUCKET", args.poster_bucket.clone()),
                ("MARQUEE_SIGN_IN_RATE", "10000".into()),
                ("MARQUEE_CHECKPOINT_INTERVAL", "0".into()),
                ("AWS_ENDPOINT_URL", args.aws_endpoint_url.clone()),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ]
        }
    })
}

/// Creates the bucket on the emulator (moto takes unsigned requests); one that exists is fine.
async fn create_bucket(endpoint: &str, bucket: &str) -> Result<()> {
    let response = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .with_context(|| format!("the S3 emulator at {endpoint} does not answer"))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success() || status == 409,
        "creating the bucket {bucket} on {endpoint}: {status} {}",
        response.text().await.unwrap_or_default()
    );
    Ok(())
}

impl Report {
    fn markdown(&self) -> String {
        let mut out = String::from(
            "| Profile | Clients | Commands/s | p50 (ms) | p99 (ms) | Failures | Raw baseline events/s | API ÷ raw | Server RSS before → peak (MiB) |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for run in &self.runs {
            let _ = writeln!(
                out,
                "| {:?} ({}) | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.1} → {:.1} |",
                run.profile,
                run.backend.label(),
                run.clients,
                run.api.events_per_second,
                run.api.p50_ms,
                run.api.p99_ms,
                run.api.failures,
                run.raw_baseline.events_per_second,
                run.api_over_raw,
                run.server_rss_before_mib,
                run.server_peak_rss_mib,
            );
        }
        out.push('\n');
        let met = |ok: bool| if ok { "met" } else { "missed" };
        for run in &self.runs {
            let mut line = format!(
                "Targets, {:?}: API ÷ raw = {:.2} (target ≥ {TARGET_OVER_RAW}: {})",
                run.profile,
                run.api_over_raw,
                met(run.api_over_raw >= TARGET_OVER_RAW)
            );
            if run.backend == Backend::Mariadb {
                let _ = write!(
                    line,
                    "; p99 = {:.2} ms (target < {TARGET_P99_MS} ms on MariaDB: {})",
                    run.api.p99_ms,
                    met(run.api.p99_ms < TARGET_P99_MS)
                );
            }
            if run.api.failures > 0 {
                let _ = write!(line, "; {} failed commands", run.api.failures);
            }
            let _ = writeln!(out, "{line}.");
        }
        let _ = writeln!(
            out,
            "\nMachine: {} CPUs, benchmark, server and database on the same host; {} s per run \
             after a {} s warm-up; the release `marquee serve` as a child process, each profile on \
             a fresh database; the raw baseline (append's \"(a) plain sqlx INSERT\") at the same \
             concurrency with the server stopped.{}",
            self.machine.cpus,
            self.seconds,
            self.warmup_seconds,
            self.machine.database_note()
        );
        out
    }
}
