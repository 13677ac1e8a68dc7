//! `graphql`: the catalogue query `movies(first: 20, filter: {search: …})` over 100,000 movies on
//! MariaDB at 64 concurrent clients, through the real release `marquee serve` (aws profile),
//! beside (a) the limit, a bare axum handler running the same SQL and answering JSON, and (b)
//! Apollo Server with mysql2 serving the same query from the same tables, in one run with the
//! same load generator. Prints a Markdown table for the README; `--json` keeps the figures.

mod children;
mod fill;
mod limit;
mod load;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use marquee_bench::contenders::Contender;
use marquee_bench::driver::{self, Measurement};
use marquee_bench::machine::Machine;
use serde::Serialize;
use tokio::process::Command;

use children::Server;
use fill::{Filled, Vocabulary};
use load::{Protocol, SearchClient};

/// The targets: Marquee over (a), and over (b).
const TARGET_OVER_LIMIT: f64 = 0.6;
const TARGET_OVER_APOLLO: f64 = 5.0;

#[derive(Debug, Parser)]
#[command(
    about = "The catalogue query through marquee serve, a bare axum handler and Apollo Server"
)]
struct Args {
    /// The release `marquee` binary to run as the server (and to replay the read models with).
    #[arg(long, default_value = "/var/tmp/marquee-target/release/marquee")]
    marquee: PathBuf,
    /// The folder of the Apollo Server contender (`npm ci` done).
    #[arg(long, default_value = "bench/apollo")]
    apollo: PathBuf,
    /// The Node.js binary that runs it.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// The MariaDB server.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql_url: String,
    /// The database holding the catalogue; reused while it holds exactly --movies movies.
    #[arg(long, default_value = "marquee_bench_graphql_100k")]
    database: String,
    #[arg(long, default_value_t = 100_000)]
    movies: u64,
    /// The AWS emulator the aws profile's server talks to.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    aws_endpoint_url: String,
    /// Measured seconds per contender.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before each measurement, discarded.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// The contenders, in this order; each is checked against the first one's pages.
    #[arg(long, value_delimiter = ',', default_value = "limit,marquee,apollo")]
    contenders: Vec<Contestant>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run contender (a) on this address instead of the benchmark (how the benchmark starts it).
    #[arg(long, hide = true)]
    serve_limit: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum Contestant {
    Limit,
    Marquee,
    Apollo,
}

impl Contestant {
    fn label(self) -> &'static str {
        match self {
            Contestant::Limit => "(a) bare axum handler, same SQL, JSON (the limit)",
            Contestant::Marquee => "Marquee `marquee serve` (aws), GraphQL",
            Contestant::Apollo => "(b) Apollo Server 5 + mysql2 (Node.js)",
        }
    }
}

#[derive(Debug, Serialize)]
struct Run {
    contestant: Contestant,
    measurement: Measurement,
    /// The server's CPU time (user + system) over the window, per request that completed in it.
    server_cpu_ms_per_request: f64,
    /// The same for MariaDB's server process (NaN when it is not on this machine).
    database_cpu_ms_per_request: f64,
    server_peak_rss_mib: f64,
}

/// What one contender's window measured, with the CPU it cost.
struct Cpu {
    measurement: Measurement,
    server_ms_per_request: f64,
    database_ms_per_request: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    node: String,
    filled: Filled,
    search_terms: usize,
    matches_per_term: f64,
    clients: usize,
    seconds: u64,
    warmup_seconds: u64,
    runs: Vec<Run>,
    marquee_over_limit: f64,
    marquee_over_apollo: f64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let server = args.mysql_url.trim_end_matches('/').to_string();
    let url = format!("{server}/{}", args.database);
    if let Some(address) = args.serve_limit {
        return limit::serve(address, &url).await;
    }
    anyhow::ensure!(
        args.marquee.is_file(),
        "{} does not exist: build it with `cargo build --release -p marquee` (bench/graphql.sh does)",
        args.marquee.display()
    );
    let machine = Machine::probe(Some(&server), None)
        .await
        .context("probing the database")?;
    let node = node_version(&args).await?;
    let aws = aws_env(&args);
    let filled = fill::ensure(&url, args.movies, &args.marquee, &aws).await?;
    eprintln!(
        "{} movies in {} ({})",
        filled.movies,
        args.database,
        if filled.cached {
            "reused".to_string()
        } else {
            format!("filled in {:.1} s", filled.seconds)
        }
    );
    let terms = Arc::new(Vocabulary::new().search_terms());
    let matches_per_term = matches_per_term(&url, &terms).await?;

    let database = children::database_pid();
    let warmup = Duration::from_secs(args.warmup);
    let window = Duration::from_secs(args.seconds);
    // Every contender must answer every term with the same page as the first before it is timed.
    let mut expected: Option<Vec<Vec<String>>> = None;
    let mut runs = Vec::new();
    for &contestant in &args.contenders {
        let port = children::free_port()?;
        let (command, protocol, ready) = match contestant {
            Contestant::Limit => {
                let mut command = Command::new(std::env::current_exe()?);
                command
                    .arg("--serve-limit")
                    .arg(format!("127.0.0.1:{port}"))
                    .args(["--mysql-url", &server, "--database", &args.database]);
                (command, Protocol::Json, "/healthz")
            }
            Contestant::Marquee => {
                let mut command = Command::new(&args.marquee);
                command
                    .arg("serve")
                    .env("DATABASE_URL", &url)
                    .env("MARQUEE_BIND", format!("127.0.0.1:{port}"))
                    .env("MARQUEE_LOG", "warn")
                    .env("MARQUEE_CHECKPOINT_INTERVAL", "0")
                    .envs(aws.iter().map(|(k, v)| (k, v)));
                (command, Protocol::Graphql, "/readyz")
            }
            Contestant::Apollo => {
                let mut command = Command::new(&args.node);
                command
                    .arg("server.js")
                    .current_dir(&args.apollo)
                    .env("DATABASE_URL", &url)
                    .env("PORT", port.to_string())
                    .env("POOL_SIZE", limit::POOL_SIZE.to_string())
                    .env("NODE_ENV", "production");
                (
                    command,
                    Protocol::Graphql,
                    "/graphql?query=%7B__typename%7D",
                )
            }
        };
        eprintln!("running {}", contestant.label());
        let server = Server::start(contestant.label(), command, port, ready).await?;
        let measured = async {
            let clients: Vec<Arc<SearchClient>> = (0..args.clients)
                .map(|i| {
                    SearchClient::new(&server.base_url, protocol, terms.clone(), i).map(Arc::new)
                })
                .collect::<Result<_>>()?;
            let pages = check_pages(&clients[0], &terms, &mut expected, contestant).await?;
            eprintln!("  {pages} pages checked against the first contender's");
            let clients = clients
                .into_iter()
                .map(|c| c as Arc<dyn Contender>)
                .collect();
            // The server's and the database's CPU from the window's start to the last
            // request's end.
            let cpu = || -> Result<(f64, f64)> {
                let database = match database {
                    Some(pid) => children::cpu_seconds(pid)?,
                    None => f64::NAN,
                };
                Ok((server.cpu_seconds()?, database))
            };
            let cpu_at_window = async {
                tokio::time::sleep(warmup).await;
                cpu()
            };
            let (measurement, before) =
                tokio::join!(driver::measure_each(clients, warmup, window), cpu_at_window);
            let (measurement, before, after) = (measurement?, before?, cpu()?);
            let per_request = |seconds: f64| seconds * 1000.0 / measurement.events as f64;
            anyhow::Ok(Cpu {
                server_ms_per_request: per_request(after.0 - before.0),
                database_ms_per_request: per_request(after.1 - before.1),
                measurement,
            })
        }
        .await;
        let peak = server.peak_rss_mib();
        server.stop().await?;
        let Cpu {
            measurement,
            server_ms_per_request,
            database_ms_per_request,
        } = measured?;
        eprintln!(
            "  {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} failures, CPU per request: server {:.2} ms, database {:.2} ms",
            measurement.events_per_second,
            measurement.p50_ms,
            measurement.p99_ms,
            measurement.failures,
            server_ms_per_request,
            database_ms_per_request
        );
        runs.push(Run {
            contestant,
            measurement,
            server_cpu_ms_per_request: server_ms_per_request,
            database_cpu_ms_per_request: database_ms_per_request,
            server_peak_rss_mib: peak?,
        });
    }

    // NaN when a contender did not run.
    let rate = |who| {
        runs.iter()
            .find(|run| run.contestant == who)
            .map_or(f64::NAN, |run| run.measurement.events_per_second)
    };
    let report = Report {
        marquee_over_limit: rate(Contestant::Marquee) / rate(Contestant::Limit),
        marquee_over_apollo: rate(Contestant::Marquee) / rate(Contestant::Apollo),
        machine,
        node,
        filled,
        search_terms: terms.len(),
        matches_per_term,
        clients: args.clients,
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

/// The aws profile's environment besides the database: moto and its test credentials.
fn aws_env(args: &Args) -> Vec<(&'static str, String)> {
    vec![
        ("MARQUEE_PROFILE", "aws".into()),
        ("MARQUEE_POSTER_BUCKET", "marquee-bench-posters".into()),
        ("MARQUEE_SNS_TOPIC_PREFIX", "marquee-bench-graphql-".into()),
        ("AWS_ENDPOINT_URL", args.aws_endpoint_url.clone()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

async fn node_version(args: &Args) -> Result<String> {
    let output = Command::new(&args.node)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("running {} --version", args.node.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} --version failed",
        args.node.display()
    );
    anyhow::ensure!(
        args.apollo.join("node_modules/@apollo/server").is_dir(),
        "{} has no node_modules: run `npm ci` there (bench/graphql.sh does)",
        args.apollo.display()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// How many movies each term matches on average, for the note under the table.
async fn matches_per_term(url: &str, terms: &[String]) -> Result<f64> {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(url).await?;
    let mut total = 0i64;
    for term in terms {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM rm_movies WHERE removed = 0 \
             AND MATCH(title, director, description) AGAINST (? IN BOOLEAN MODE)",
        )
        .bind(format!("+{term}*"))
        .fetch_one(&mut conn)
        .await?;
        total += count;
    }
    conn.close().await?;
    Ok(total as f64 / terms.len() as f64)
}

/// Searches every term once and compares the pages' ids with the first contender's, so no
/// contender is timed on a different query. Returns the pages checked.
async fn check_pages(
    client: &SearchClient,
    terms: &[String],
    expected: &mut Option<Vec<Vec<String>>>,
    contestant: Contestant,
) -> Result<usize> {
    let mut pages = Vec::with_capacity(terms.len());
    for term in terms {
        pages.push(client.search(term).await?);
    }
    match expected {
        None => *expected = Some(pages),
        Some(expected) => {
            if let Some(i) = (0..terms.len()).find(|&i| pages[i] != expected[i]) {
                bail!(
                    "{} answers the search {:?} with {:?}, the first contender with {:?}",
                    contestant.label(),
                    terms[i],
                    pages[i],
                    expected[i]
                );
            }
        }
    }
    Ok(terms.len())
}

impl Report {
    fn markdown(&self) -> String {
        let limit = self
            .runs
            .iter()
            .find(|run| run.contestant == Contestant::Limit)
            .map_or(f64::NAN, |run| run.measurement.events_per_second);
        let mut out = String::from(
            "| Contender | Requests/s | p50 (ms) | p99 (ms) | Failures | ÷ (a) | CPU per request, server / MariaDB (ms) | Server peak RSS (MiB) |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for run in &self.runs {
            let m = &run.measurement;
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {:.2} | {} | {:.2} | {:.2} / {:.2} | {:.1} |",
                run.contestant.label(),
                m.events_per_second,
                m.p50_ms,
                m.p99_ms,
                m.failures,
                m.events_per_second / limit,
                run.server_cpu_ms_per_request,
                run.database_cpu_ms_per_request,
                run.server_peak_rss_mib,
            );
        }
        let met = |ok: bool| if ok { "met" } else { "missed" };
        let _ = writeln!(
            out,
            "\nTargets: Marquee ÷ (a) = {:.2} (target ≥ {TARGET_OVER_LIMIT}: {}); \
             Marquee ÷ (b) = {:.2} (target ≥ {TARGET_OVER_APOLLO}: {}).",
            self.marquee_over_limit,
            met(self.marquee_over_limit >= TARGET_OVER_LIMIT),
            self.marquee_over_apollo,
            met(self.marquee_over_apollo >= TARGET_OVER_APOLLO),
        );
        let failures: usize = self.runs.iter().map(|run| run.measurement.failures).sum();
        if failures > 0 {
            let _ = writeln!(
                out,
                "{failures} requests failed (counted apart, never as successes)."
            );
        }
        let _ = writeln!(
            out,
            "\nMachine: {} CPUs, clients, servers and database on the same host; {} clients, \
             closed loop, {} s per contender after a {} s warm-up, one contender at a time; \
             {} movies ({}), {} search terms matching {:.0} movies each on average, every answer \
             checked (200, no `errors`, 20 edges); each server with a pool of {} connections; \
             Node.js {}.{}",
            self.machine.cpus,
            self.clients,
            self.seconds,
            self.warmup_seconds,
            self.filled.movies,
            if self.filled.cached {
                "database reused"
            } else {
                "database filled this run"
            },
            self.search_terms,
            self.matches_per_term,
            limit::POOL_SIZE,
            self.node,
            self.machine.database_note()
        );
        out
    }
}
