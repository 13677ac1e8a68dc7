//! End-to-end lag: `POST /api/movies` at a steady open-loop rate through the real release
//! processes, each accepted command's position checked against the `read-models` projection's
//! position, sampled straight from the database at a fixed interval.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use marquee_bench::machine::Machine;
use serde::Serialize;
use sqlx::migrate::MigrateDatabase;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, MySql, MySqlConnection, SqliteConnection};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::children::{self, Background};
use crate::{database_url, percentile};
use marquee_bench::server::Server;

/// The target: embedded p99 lag at 200 commands/s.
const TARGET_P99_MS: f64 = 20.0;
const TARGET_RATE: u32 = 200;
/// How long the projection may take to catch up with the sign-up before the load, and with the
/// load after it, before the run is declared broken.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release `marquee` binary to run.
    #[arg(long, default_value = "/var/tmp/marquee-target/release/marquee")]
    marquee: PathBuf,
    /// The MariaDB server of the aws profile; the benchmark drops and recreates
    /// marquee_bench_pipeline.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql_url: String,
    /// The AWS emulator (moto) the aws profile's processes use.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    aws_endpoint_url: String,
    /// The aws profile's poster bucket, created on the emulator if missing.
    #[arg(long, default_value = "marquee-bench-posters")]
    poster_bucket: String,
    /// Commands per second in the embedded profile, sent on a fixed schedule whatever the
    /// answers (open loop).
    #[arg(long, default_value_t = TARGET_RATE)]
    rate: u32,
    /// Commands per second in the aws profile, one run each: the rate, and one the
    /// emulator keeps up with, so the pipeline's own lag shows beside the backlog.
    #[arg(long, value_delimiter = ',', default_value = "200,10")]
    aws_rates: Vec<u32>,
    /// Measured seconds per profile.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before the measurement, discarded.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Microseconds between samples of the read model's position.
    #[arg(long, default_value_t = 1000)]
    sample_us: u64,
    /// The relay's idle poll in the aws profile (MARQUEE_RELAY_POLL_MS; 100 is marquee's default).
    #[arg(long, default_value_t = 100)]
    relay_poll_ms: u64,
    #[arg(long, value_delimiter = ',', default_value = "embedded,aws")]
    profiles: Vec<Profile>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Profile {
    Embedded,
    Aws,
}

impl Profile {
    fn processes(self) -> &'static str {
        match self {
            Profile::Embedded => "serve (SQLite, projectors in-process)",
            Profile::Aws => "serve + relay + project (MariaDB, SNS/SQS FIFO on moto)",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    machine: Machine,
    seconds: u64,
    warmup_seconds: u64,
    sample_us: u64,
    relay_poll_ms: u64,
    runs: Vec<Run>,
}

#[derive(Debug, Serialize)]
struct Run {
    profile: Profile,
    offered_per_second: f64,
    accepted_per_second: f64,
    failures: usize,
    command_p50_ms: f64,
    command_p99_ms: f64,
    lag_p50_ms: f64,
    lag_p99_ms: f64,
    lag_max_ms: f64,
    /// Share of commands the projection had applied before their 201 arrived.
    visible_at_acceptance: f64,
    /// How fast the read models moved while the load ran: the offered rate unless they fell behind.
    applied_per_second: f64,
    sampling: Sampling,
    serve_rss_before_mib: f64,
    serve_peak_rss_mib: f64,
}

/// How often the position was actually read: a lag is rounded up by up to one gap.
#[derive(Debug, Serialize)]
struct Sampling {
    samples: usize,
    mean_gap_ms: f64,
    p99_gap_ms: f64,
    max_gap_ms: f64,
}

pub async fn run(args: Args) -> Result<Report> {
    ensure!(
        args.rate > 0 && args.aws_rates.iter().all(|&r| r > 0),
        "rates must be at least 1 command/s"
    );
    let sqlite_dir = tempfile::tempdir().context("a temporary directory for SQLite")?;
    let on = |profile| args.profiles.contains(&profile);
    let mysql_server = args.mysql_url.trim_end_matches('/').to_string();
    let machine = Machine::probe(
        on(Profile::Aws).then_some(mysql_server.as_str()),
        on(Profile::Embedded).then_some(sqlite_dir.path()),
    )
    .await
    .context("probing the databases")?;
    let mut runs = Vec::new();
    let planned = args.profiles.iter().flat_map(|&profile| match profile {
        Profile::Embedded => vec![(profile, args.rate)],
        Profile::Aws => args.aws_rates.iter().map(|&rate| (profile, rate)).collect(),
    });
    for (profile, rate) in planned {
        eprintln!(
            "running {profile:?}: {rate} commands/s × POST /api/movies for {} s after {} s",
            args.seconds, args.warmup
        );
        let run = match profile {
            Profile::Embedded => embedded(&args, rate).await?,
            Profile::Aws => aws(&args, rate).await?,
        };
        eprintln!(
            "  lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} failures",
            run.lag_p50_ms, run.lag_p99_ms, run.lag_max_ms, run.failures
        );
        runs.push(run);
    }
    Ok(Report {
        machine,
        seconds: args.seconds,
        warmup_seconds: args.warmup,
        sample_us: args.sample_us,
        relay_poll_ms: args.relay_poll_ms,
        runs,
    })
}

async fn embedded(args: &Args, rate: u32) -> Result<Run> {
    let data_dir = tempfile::tempdir().context("a data directory for the server")?;
    let env = vec![
        ("MARQUEE_DATA_DIR", data_dir.path().display().to_string()),
        ("MARQUEE_SIGN_IN_RATE", "10000".into()),
        ("MARQUEE_CHECKPOINT_INTERVAL", "0".into()),
    ];
    let server = Server::start(&args.marquee, &env).await?;
    let token = server.signed_in("bench").await?;
    let options = SqliteConnectOptions::new()
        .filename(data_dir.path().join("marquee.db"))
        .read_only(true);
    let probe = Probe::Sqlite(SqliteConnection::connect_with(&options).await?);
    let load = Load {
        profile: Profile::Embedded,
        rate,
    };
    let measured = measure(args, load, &server, &token, probe, Vec::new()).await;
    server.stop().await?;
    measured
}

async fn aws(args: &Args, rate: u32) -> Result<Run> {
    let url = database_url(&args.mysql_url, "marquee_bench_pipeline");
    if MySql::database_exists(&url).await? {
        MySql::drop_database(&url).await?;
    }
    MySql::create_database(&url).await?;
    create_bucket(&args.aws_endpoint_url, &args.poster_bucket).await?;
    // Fresh topics and queues per run, so nothing left over from an earlier run is delivered.
    let prefix = format!(
        "marquee-bench-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let env = vec![
        ("MARQUEE_PROFILE", "aws".into()),
        ("DATABASE_URL", url.clone()),
        ("MARQUEE_POSTER_BUCKET", args.poster_bucket.clone()),
        ("MARQUEE_SNS_TOPIC_PREFIX", prefix),
        ("MARQUEE_RELAY_POLL_MS", args.relay_poll_ms.to_string()),
        ("MARQUEE_SIGN_IN_RATE", "10000".into()),
        ("MARQUEE_CHECKPOINT_INTERVAL", "0".into()),
        ("AWS_ENDPOINT_URL", args.aws_endpoint_url.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    children::provision(&args.marquee, &env).await?;
    // The server applies the migrations; the others start on a migrated database.
    let server = Server::start(&args.marquee, &env).await?;
    let token = server.signed_in("bench").await?;
    let relay = Background::start(&args.marquee, "relay", &env)?;
    let project = Background::start(&args.marquee, "project", &env)?;
    let probe = Probe::Mysql(MySqlConnection::connect(&url).await?);
    let load = Load {
        profile: Profile::Aws,
        rate,
    };
    let measured = measure(args, load, &server, &token, probe, vec![relay, project]).await;
    server.stop().await?;
    measured
}

/// Waits for the projection to apply the sign-up, drives the load while sampling, and stops
/// `helpers` afterwards.
async fn measure(
    args: &Args,
    load: Load,
    server: &Server,
    token: &str,
    mut probe: Probe,
    mut helpers: Vec<Background>,
) -> Result<Run> {
    let head = probe.head().await?;
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    while probe.position().await? < head {
        for helper in &mut helpers {
            helper.check_running()?;
        }
        ensure!(
            Instant::now() < deadline,
            "the read models did not apply the sign-up (position {head}) within {CATCH_UP_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let before = server.memory_mib()?;
    let (stop, stopped) = watch::channel(false);
    let (seen, mut visible) = watch::channel(0);
    let every = Duration::from_micros(args.sample_us.max(1));
    let sampler = tokio::spawn(sample(probe, every, seen, stopped));
    let commands = drive(args, load.rate, server, token).await;
    let caught_up = match &commands {
        Ok(commands) => {
            let last = commands.accepted.iter().map(|c| c.position).max();
            let target = last.unwrap_or(0);
            tokio::time::timeout(CATCH_UP_TIMEOUT, visible.wait_for(|p| *p >= target))
                .await
                .map(|_| ())
                .map_err(|_| anyhow::anyhow!("the read models did not reach position {target} within {CATCH_UP_TIMEOUT:?} of the load"))
        }
        Err(_) => Ok(()),
    };
    let _ = stop.send(true);
    let samples = sampler.await??;
    let memory = server.memory_mib();
    for helper in &mut helpers {
        helper.check_running()?;
    }
    for helper in helpers {
        helper.stop().await?;
    }
    let commands = commands?;
    caught_up?;
    let rss = (before.rss_mib, memory?.peak_mib);
    summarise(args, load, &commands, &samples, rss)
}

/// One run's profile and rate.
#[derive(Debug, Clone, Copy)]
struct Load {
    profile: Profile,
    rate: u32,
}

/// What the load saw inside the measured window.
struct Commands {
    accepted: Vec<Accepted>,
    failures: usize,
}

struct Accepted {
    sent: Instant,
    answered: Instant,
    position: i64,
}

/// Sends `POST /api/movies` every 1/rate s for warm-up + window, each in its own task so a slow
/// answer never delays the schedule. Commands sent during the warm-up are not counted.
async fn drive(args: &Args, rate: u32, server: &Server, token: &str) -> Result<Commands> {
    let client = reqwest::Client::new();
    let url = Arc::new(format!("{}/api/movies", server.base_url));
    let token = Arc::new(token.to_string());
    let body = Arc::new(serde_json::json!({
        "title": "The Matrix",
        "year": 1999,
        "director": "Lana Wachowski",
        "genres": ["Science Fiction", "Action"],
        "description": "A hacker learns the truth.",
    }));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let window_start = Instant::now() + Duration::from_secs(args.warmup);
    let end = window_start + Duration::from_secs(args.seconds);
    let mut tasks = JoinSet::new();
    loop {
        let sent = ticker.tick().await.into_std();
        if sent >= end {
            break;
        }
        let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
        tasks.spawn(async move {
            let outcome = post(&client, &url, &token, &body).await;
            (sent >= window_start, sent, outcome)
        });
    }
    let mut commands = Commands {
        accepted: Vec::new(),
        failures: 0,
    };
    while let Some(done) = tasks.join_next().await {
        let (counted, sent, outcome) = done?;
        match outcome {
            Ok((answered, position)) if counted => commands.accepted.push(Accepted {
                sent,
                answered,
                position,
            }),
            Ok(_) => {}
            Err(error) => {
                if commands.failures == 0 {
                    eprintln!("  a command failed: {error:#}");
                }
                commands.failures += usize::from(counted);
            }
        }
    }
    ensure!(
        !commands.accepted.is_empty(),
        "no command was accepted inside the window"
    );
    Ok(commands)
}

/// One command; returns when its 201 arrived and the position it was stored at.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<(Instant, i64)> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    let answered = Instant::now();
    ensure!(status == 201, "POST /api/movies answered {status}: {text}");
    let created: serde_json::Value = serde_json::from_str(&text)?;
    let position = created["position"]
        .as_i64()
        .context("the 201 has no position")?;
    Ok((answered, position))
}

/// A read-only view of the pipeline's database, beside the server's own connections.
enum Probe {
    Sqlite(SqliteConnection),
    Mysql(MySqlConnection),
}

const POSITION: &str = "SELECT position FROM projection_status WHERE name = ?";
const HEAD: &str = "SELECT last_position FROM event_store_head WHERE id = 1";

impl Probe {
    /// The last position the read models applied.
    async fn position(&mut self) -> Result<i64> {
        let position = match self {
            Probe::Sqlite(conn) => {
                sqlx::query_scalar(POSITION)
                    .bind(projectors::READ_MODELS)
                    .fetch_optional(conn)
                    .await?
            }
            Probe::Mysql(conn) => {
                sqlx::query_scalar(POSITION)
                    .bind(projectors::READ_MODELS)
                    .fetch_optional(conn)
                    .await?
            }
        };
        Ok(position.unwrap_or(0))
    }

    async fn head(&mut self) -> Result<i64> {
        Ok(match self {
            Probe::Sqlite(conn) => sqlx::query_scalar(HEAD).fetch_one(conn).await?,
            Probe::Mysql(conn) => sqlx::query_scalar(HEAD).fetch_one(conn).await?,
        })
    }
}

/// Every change of the position, timed when the sample that saw it returned, and the gaps
/// between samples.
struct Samples {
    changes: Vec<(Instant, i64)>,
    gaps_ms: Vec<f64>,
}

async fn sample(
    mut probe: Probe,
    every: Duration,
    seen: watch::Sender<i64>,
    mut stop: watch::Receiver<bool>,
) -> Result<Samples> {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Samples {
        changes: Vec::new(),
        gaps_ms: Vec::new(),
    };
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return Ok(samples),
        }
        let position = probe.position().await?;
        let at = Instant::now();
        if let Some(before) = last {
            samples.gaps_ms.push(ms(at - before));
        }
        last = Some(at);
        if samples.changes.last().is_none_or(|&(_, p)| position > p) {
            samples.changes.push((at, position));
            seen.send_replace(position);
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn summarise(
    args: &Args,
    load: Load,
    commands: &Commands,
    samples: &Samples,
    (serve_rss_before_mib, serve_peak_rss_mib): (f64, f64),
) -> Result<Run> {
    let mut lags = Vec::with_capacity(commands.accepted.len());
    let mut visible_at_acceptance = 0;
    let mut latencies = Vec::with_capacity(commands.accepted.len());
    // (position, when seen applied) of the first and the last command
    let mut first: Option<(i64, Instant)> = None;
    let mut last: Option<(i64, Instant)> = None;
    for command in &commands.accepted {
        latencies.push(ms(command.answered - command.sent));
        let index = samples
            .changes
            .partition_point(|&(_, p)| p < command.position);
        let Some(&(seen, _)) = samples.changes.get(index) else {
            bail!("position {} was never seen applied", command.position);
        };
        if first.is_none_or(|(p, _)| command.position < p) {
            first = Some((command.position, seen));
        }
        if last.is_none_or(|(p, _)| command.position > p) {
            last = Some((command.position, seen));
        }
        if seen <= command.answered {
            visible_at_acceptance += 1;
            lags.push(0.0);
        } else {
            lags.push(ms(seen - command.answered));
        }
    }
    lags.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    let mut gaps = samples.gaps_ms.clone();
    gaps.sort_by(f64::total_cmp);
    ensure!(!gaps.is_empty(), "the position was sampled only once");
    let window = args.seconds as f64;
    Ok(Run {
        profile: load.profile,
        offered_per_second: f64::from(load.rate),
        accepted_per_second: commands.accepted.len() as f64 / window,
        failures: commands.failures,
        command_p50_ms: percentile(&latencies, 0.50),
        command_p99_ms: percentile(&latencies, 0.99),
        lag_p50_ms: percentile(&lags, 0.50),
        lag_p99_ms: percentile(&lags, 0.99),
        lag_max_ms: lags[lags.len() - 1],
        visible_at_acceptance: visible_at_acceptance as f64 / lags.len() as f64,
        applied_per_second: match (first, last) {
            (Some((from, start)), Some((to, end))) if end > start => {
                (to - from) as f64 / (end - start).as_secs_f64()
            }
            _ => 0.0,
        },
        sampling: Sampling {
            samples: gaps.len() + 1,
            mean_gap_ms: gaps.iter().sum::<f64>() / gaps.len() as f64,
            p99_gap_ms: percentile(&gaps, 0.99),
            max_gap_ms: gaps[gaps.len() - 1],
        },
        serve_rss_before_mib,
        serve_peak_rss_mib,
    })
}

/// Creates the bucket on the emulator with S3's CreateBucket (moto takes unsigned requests);
/// one that exists is fine.
async fn create_bucket(endpoint: &str, bucket: &str) -> Result<()> {
    let response = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint.trim_end_matches('/')))
        .send()
        .await
        .with_context(|| format!("the S3 emulator at {endpoint} does not answer"))?;
    let status = response.status();
    ensure!(
        status.is_success() || status == 409,
        "creating the bucket {bucket} on {endpoint}: {status} {}",
        response.text().await.unwrap_or_default()
    );
    Ok(())
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| Profile | Processes | Commands/s offered → accepted | Failures | Command p50 / p99 (ms) | Lag p50 (ms) | Lag p99 (ms) | Lag max (ms) | Applied before the 201 | serve RSS before → peak (MiB) |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for run in &self.runs {
            let _ = writeln!(
                out,
                "| {:?} | {} | {:.0} → {:.0} | {} | {:.2} / {:.2} | {:.2} | {:.2} | {:.2} | {:.0} % | {:.1} → {:.1} |",
                run.profile,
                run.profile.processes(),
                run.offered_per_second,
                run.accepted_per_second,
                run.failures,
                run.command_p50_ms,
                run.command_p99_ms,
                run.lag_p50_ms,
                run.lag_p99_ms,
                run.lag_max_ms,
                run.visible_at_acceptance * 100.0,
                run.serve_rss_before_mib,
                run.serve_peak_rss_mib,
            );
        }
        out.push('\n');
        for run in &self.runs {
            let verdict = match run.profile {
                Profile::Embedded if run.offered_per_second == f64::from(TARGET_RATE) => {
                    let met = if run.lag_p99_ms <= TARGET_P99_MS {
                        "met"
                    } else {
                        "missed"
                    };
                    format!("target ≤ {TARGET_P99_MS} ms at {TARGET_RATE} commands/s: {met}")
                }
                Profile::Embedded => format!("the target is set at {TARGET_RATE} commands/s"),
                Profile::Aws => format!(
                    "no target: SNS and SQS are moto, an emulator, so this shows the pipeline's \
                     own cost and the relay's {} ms idle poll, not AWS's delivery latency",
                    self.relay_poll_ms
                ),
            };
            let _ = writeln!(
                out,
                "Lag p99, {:?} at {:.0} commands/s: {:.2} ms ({verdict}); the read models applied \
                 {:.0} events/s from the first command to the last. Position sampled every {} µs: \
                 {} samples, gap mean {:.3} ms, p99 {:.3} ms, max {:.3} ms.",
                run.profile,
                run.offered_per_second,
                run.lag_p99_ms,
                run.applied_per_second,
                self.sample_us,
                run.sampling.samples,
                run.sampling.mean_gap_ms,
                run.sampling.p99_gap_ms,
                run.sampling.max_gap_ms,
            );
        }
        let _ = writeln!(
            out,
            "\nMachine: {} CPUs, benchmark, processes and databases on the same host. Commands \
             sent open loop (on a fixed schedule, each in its own task) for {} s after a {} s \
             warm-up that is not counted, by one signed-in user, on a fresh database per profile. \
             Lag: from the 201's arrival to the end of the first sample whose `read-models` \
             position in `projection_status` reached the command's position, read by the \
             benchmark over its own read-only connection; 0 when the projection had applied it \
             before the 201 arrived; rounded up by at most one sampling gap.{}",
            self.machine.cpus,
            self.seconds,
            self.warmup_seconds,
            self.machine.database_note()
        );
        out
    }
}
