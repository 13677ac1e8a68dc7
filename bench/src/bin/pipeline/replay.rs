//! Replay rate: `projectors::replay` over a million stored events on MariaDB, beside a plain
//! sqlx stream of the same rows (the limit), with where the replay's time and both sides' CPU go.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use event_store::{EventStore, PoolSettings};
use futures::TryStreamExt;
use marquee_bench::machine::{load_average, Machine};
use projectors::{Adapters, PipelineSettings, ReplayReport, METRICS, READ_MODELS};
use serde::Serialize;
use sqlx::{Connection, MySqlConnection};

use crate::cpu::{CpuSampler, Usage};
use crate::database_url;
use crate::fill::{self, Filled};
use crate::sql_times::{SqlTimes, Totals};

/// The targets for the read models' replay.
const TARGET_EVENTS_PER_SECOND: f64 = 50_000.0;
const TARGET_OVER_RAW: f64 = 0.5;
/// Every table a replay rebuilds or guards with, emptied before each replay so that its reset
/// costs the same every run.
const PROJECTION_TABLES: [&str; 6] = [
    "rm_movies",
    "rm_movie_genres",
    "rm_users",
    "rm_logins",
    "metric_points",
    "projection_streams",
];
const RAW_STREAM: &str = "SELECT position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, schema_version, payload, metadata, data_subject, recorded_at, prev_hash, hash \
     FROM events ORDER BY position";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The MariaDB server.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql_url: String,
    /// The database holding the events; reused while it holds exactly --events events.
    #[arg(long, default_value = "marquee_bench_replay_1m")]
    database: String,
    /// Events in the log (a multiple of 5: five per movie).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Rounds of (raw stream, replay of the read models), each compared within itself: the
    /// machine's load changes between rounds.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Runs of the raw stream per round; the fastest counts.
    #[arg(long, default_value_t = 3)]
    raw_runs: u32,
    /// Replay over the read models the previous replay left (what `marquee replay` meets on a
    /// live system) instead of emptied tables.
    #[arg(long)]
    over_live: bool,
    /// Leave out the replay of the metrics projection.
    #[arg(long)]
    skip_metrics: bool,
    /// When to add a pass of `EventStore::stream_all` alone (the replay's read without its fold)
    /// and an instrumented replay with every SQL statement timed.
    #[arg(long, value_enum, default_value = "missed-target")]
    breakdown: When,
    /// What-ifs: the read models rebuilt through `Projector::catch_up(PAGE)`, the live path,
    /// with another page size, once per size given.
    #[arg(long, value_delimiter = ',')]
    pages: Vec<u32>,
    /// Also run each --pages what-if with rm_movies' FULLTEXT index dropped before and added
    /// back after, the time to add it included.
    #[arg(long)]
    fulltext_after: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum When {
    Always,
    MissedTarget,
    Never,
}

#[derive(Debug, Serialize)]
pub struct Report {
    machine: Machine,
    filled: Filled,
    raw_runs: u32,
    over_live: bool,
    rounds: Vec<Round>,
    metrics: Option<Measured>,
    stream: Option<Measured>,
    breakdown: Option<Breakdown>,
    what_ifs: Vec<WhatIf>,
}

/// One raw stream (best of --raw-runs) and the replay of the read models right after it.
#[derive(Debug, Serialize)]
struct Round {
    load_average: String,
    raw: Measured,
    replay: Measured,
    method: String,
    steps: Vec<Step>,
}

impl Round {
    fn over_raw(&self) -> f64 {
        self.replay.rate.events_per_second / self.raw.rate.events_per_second
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Measured {
    rate: Rate,
    usage: Usage,
}

/// A step of the replay: sequential steps with their CPU, concurrent ones with their wall time.
#[derive(Debug, Serialize)]
struct Step {
    name: String,
    concurrent: bool,
    usage: Usage,
}

/// The read models rebuilt with another page size, and maybe their FULLTEXT index built after.
#[derive(Debug, Serialize)]
struct WhatIf {
    page: u32,
    fulltext_after: bool,
    /// Included in `rate`.
    index_seconds: f64,
    rate: Rate,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Rate {
    events: u64,
    seconds: f64,
    events_per_second: f64,
}

impl Rate {
    fn new(events: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Self {
            events,
            seconds,
            events_per_second: events as f64 / seconds,
        }
    }
}

/// Every SQL statement of an instrumented replay of the read models, by kind.
#[derive(Debug, Serialize)]
struct Breakdown {
    replay_seconds: f64,
    /// Per kind of statement: count and client-side elapsed time (send to last row); statements
    /// on different connections overlap.
    statements: Vec<(String, u64, f64)>,
}

pub async fn run(args: Args) -> Result<Report> {
    let sql_times = SqlTimes::install()?;
    let server = args.mysql_url.trim_end_matches('/').to_string();
    let machine = Machine::probe(Some(&server), None)
        .await
        .context("probing the database")?;
    let url = database_url(&server, &args.database);
    let filled = fill::ensure(&url, args.events).await?;
    eprintln!(
        "{} events in {} ({})",
        filled.events,
        args.database,
        if filled.cached {
            "reused".to_string()
        } else {
            format!("filled in {:.1} s", filled.seconds)
        }
    );
    let cpu = CpuSampler::start();
    let store =
        EventStore::open(&url, PoolSettings::default(), projectors::domain_upcaster()).await?;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let load_average = load_average().unwrap_or_else(|| "?".into());
        let mut raw: Option<Measured> = None;
        for run in 1..=args.raw_runs.max(1) {
            let measured = raw_stream(&url, args.events, &cpu).await?;
            eprintln!(
                "round {round}, raw stream {run}: {:.0} events/s",
                measured.rate.events_per_second
            );
            if raw.is_none_or(|best| measured.rate.seconds < best.rate.seconds) {
                raw = Some(measured);
            }
        }
        let raw = raw.context("no raw stream ran")?;
        if round == 1 || !args.over_live {
            empty_projection_tables(&store).await?;
        }
        let (replay, report, started) = replay(&store, READ_MODELS, args.events, &cpu).await?;
        let steps = steps_of(&report, started, &cpu);
        eprintln!(
            "round {round}, replay of {READ_MODELS}: {:.0} events/s, {:.2} of raw ({:?}; load {load_average})",
            replay.rate.events_per_second,
            replay.rate.events_per_second / raw.rate.events_per_second,
            report.method
        );
        for step in &steps {
            eprintln!(
                "  {}{}: {:.2} s",
                if step.concurrent { "  beside: " } else { "" },
                step.name,
                step.usage.wall_seconds
            );
        }
        rounds.push(Round {
            load_average,
            raw,
            replay,
            method: format!("{:?}", report.method),
            steps,
        });
    }
    let metrics = if args.skip_metrics {
        None
    } else {
        empty_projection_tables(&store).await?;
        let (measured, _, _) = replay(&store, METRICS, args.events, &cpu).await?;
        eprintln!(
            "replay of {METRICS}: {:.0} events/s",
            measured.rate.events_per_second
        );
        Some(measured)
    };
    let missed = rounds.iter().any(|round| {
        round.replay.rate.events_per_second < TARGET_EVENTS_PER_SECOND
            || round.over_raw() < TARGET_OVER_RAW
    });
    let breakdown = match args.breakdown {
        When::Always => true,
        When::MissedTarget => missed,
        When::Never => false,
    };
    let (stream, breakdown) = if breakdown {
        eprintln!("streaming the log alone, then an instrumented replay of {READ_MODELS}");
        let stream = stream_alone(&store, args.events, &cpu).await?;
        (
            Some(stream),
            Some(profile(&store, &sql_times, args.events).await?),
        )
    } else {
        (None, None)
    };
    let mut what_ifs = Vec::new();
    for &page in &args.pages {
        for fulltext_after in [false, true] {
            if fulltext_after && !args.fulltext_after {
                continue;
            }
            let what_if = rebuild(&store, page, fulltext_after, args.events).await?;
            eprintln!(
                "what-if, page {page}{}: {:.0} events/s",
                if fulltext_after {
                    ", FULLTEXT added after"
                } else {
                    ""
                },
                what_if.rate.events_per_second
            );
            what_ifs.push(what_if);
        }
    }
    store.database().close().await;
    Ok(Report {
        machine,
        filled,
        raw_runs: args.raw_runs.max(1),
        over_live: args.over_live,
        rounds,
        metrics,
        stream,
        breakdown,
        what_ifs,
    })
}

/// Streams every row in position order over one native connection, counting them.
async fn raw_stream(url: &str, events: u64, cpu: &CpuSampler) -> Result<Measured> {
    let mut conn = MySqlConnection::connect(url).await?;
    let started = Instant::now();
    let mut rows = sqlx::query(RAW_STREAM).fetch(&mut conn);
    let mut count = 0u64;
    while rows.try_next().await?.is_some() {
        count += 1;
    }
    let elapsed = started.elapsed();
    let usage = cpu.between(started, Instant::now());
    drop(rows);
    conn.close().await?;
    ensure!(
        count == events,
        "the raw stream read {count} of {events} events"
    );
    Ok(Measured {
        rate: Rate::new(count, elapsed),
        usage,
    })
}

/// `EventStore::stream_all` alone: the replay's read, decoded, opened and upcast, not folded.
async fn stream_alone(store: &EventStore, events: u64, cpu: &CpuSampler) -> Result<Measured> {
    let started = Instant::now();
    let mut batches = store.stream_all(0);
    let mut count = 0u64;
    while let Some(batch) = batches.next().await {
        count += batch?.len() as u64;
    }
    let elapsed = started.elapsed();
    ensure!(
        count == events,
        "stream_all gave {count} of {events} events"
    );
    Ok(Measured {
        rate: Rate::new(count, elapsed),
        usage: cpu.between(started, Instant::now()),
    })
}

/// Times `projectors::replay` of `name` (the tables as they are).
async fn replay(
    store: &EventStore,
    name: &str,
    events: u64,
    cpu: &CpuSampler,
) -> Result<(Measured, ReplayReport, Instant)> {
    let projector = projectors::projector(
        store,
        &Adapters::local(),
        &PipelineSettings::default(),
        name,
    )?;
    let started = Instant::now();
    let report = projectors::replay(&projector).await?;
    let usage = cpu.between(started, Instant::now());
    ensure!(
        report.events as u64 == events,
        "the replay of {name} applied {} of {events} events",
        report.events
    );
    let measured = Measured {
        rate: Rate::new(events, report.elapsed),
        usage,
    };
    Ok((measured, report, started))
}

/// The replay's steps with the CPU of each sequential one (concurrent ones run inside the
/// sequential step after them).
fn steps_of(report: &ReplayReport, started: Instant, cpu: &CpuSampler) -> Vec<Step> {
    let mut at = started;
    report
        .steps
        .iter()
        .map(|step| {
            let usage = if step.concurrent {
                Usage {
                    wall_seconds: step.elapsed.as_secs_f64(),
                    ..Usage::default()
                }
            } else {
                let from = at;
                at += step.elapsed;
                cpu.between(from, at)
            };
            Step {
                name: step.name.clone(),
                concurrent: step.concurrent,
                usage,
            }
        })
        .collect()
}

/// TRUNCATE is instant where the replay's own reset would DELETE an earlier run's rows one by one.
async fn empty_projection_tables(store: &EventStore) -> Result<()> {
    let pool = store.database().pool();
    for table in PROJECTION_TABLES {
        sqlx::query(&format!("TRUNCATE TABLE {table}"))
            .execute(pool)
            .await?;
    }
    sqlx::query("DELETE FROM projection_status")
        .execute(pool)
        .await?;
    Ok(())
}

const FULLTEXT: &str = "rm_movies_search (title, director, description)";

/// Rebuilds the read models through `catch_up(page)` from emptied tables, optionally without
/// the FULLTEXT index until the end.
async fn rebuild(
    store: &EventStore,
    page: u32,
    fulltext_after: bool,
    events: u64,
) -> Result<WhatIf> {
    ensure!(page > 0, "--pages must be at least 1");
    empty_projection_tables(store).await?;
    let pool = store.database().pool();
    if fulltext_after {
        sqlx::query("ALTER TABLE rm_movies DROP INDEX rm_movies_search")
            .execute(pool)
            .await?;
    }
    let projector = projectors::projector(
        store,
        &Adapters::local(),
        &PipelineSettings::default(),
        READ_MODELS,
    )?;
    let started = Instant::now();
    let mut applied = 0;
    let caught_up = async {
        loop {
            let count = projector.catch_up(page).await?;
            applied += count;
            if count < page as usize {
                return anyhow::Ok(());
            }
        }
    }
    .await;
    let replayed = started.elapsed();
    // Put back even after a failure: the next runs measure the schema as migrated.
    if fulltext_after {
        sqlx::query(&format!(
            "ALTER TABLE rm_movies ADD FULLTEXT KEY {FULLTEXT}"
        ))
        .execute(pool)
        .await?;
    }
    let index = started.elapsed() - replayed;
    caught_up?;
    ensure!(
        applied as u64 == events,
        "applied {applied} of {events} events"
    );
    Ok(WhatIf {
        page,
        fulltext_after,
        index_seconds: index.as_secs_f64(),
        rate: Rate::new(events, started.elapsed()),
    })
}

/// Replays the read models again from emptied tables with every statement timed.
async fn profile(store: &EventStore, sql_times: &SqlTimes, events: u64) -> Result<Breakdown> {
    empty_projection_tables(store).await?;
    let projector = projectors::projector(
        store,
        &Adapters::local(),
        &PipelineSettings::default(),
        READ_MODELS,
    )?;
    sql_times.start();
    let report = projectors::replay(&projector).await;
    let statements = sql_times.stop();
    let report = report?;
    ensure!(
        report.events as u64 == events,
        "the instrumented replay applied {} of {events} events",
        report.events
    );
    let mut statements: Vec<(String, u64, f64)> = statements
        .into_iter()
        .map(|(kind, Totals { count, seconds })| (kind, count, seconds))
        .collect();
    statements.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(Breakdown {
        replay_seconds: report.elapsed.as_secs_f64(),
        statements,
    })
}

/// `client + server` CPU seconds and the share of the cores they kept busy.
fn cpu_cells(usage: &Usage, cores: usize) -> String {
    match (usage.server_cpu_seconds, usage.utilisation(cores)) {
        (Some(server), Some(share)) => format!(
            "{:.2} + {server:.2} | {:.0} %",
            usage.client_cpu_seconds,
            share * 100.0
        ),
        _ => format!("{:.2} + ? | ?", usage.client_cpu_seconds),
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let cores = self.machine.cpus;
        let mut out = String::from(
            "| Round | What | Seconds | Events/s | ÷ raw stream | CPU s, client + MariaDB | Cores busy |\n\
             |--:|---|--:|--:|--:|--:|--:|\n",
        );
        for (n, round) in self.rounds.iter().enumerate() {
            let mut row = |what: &str, measured: &Measured| {
                let _ = writeln!(
                    out,
                    "| {} | {what} | {:.2} | {:.0} | {:.2} | {} |",
                    n + 1,
                    measured.rate.seconds,
                    measured.rate.events_per_second,
                    measured.rate.events_per_second / round.raw.rate.events_per_second,
                    cpu_cells(&measured.usage, cores)
                );
            };
            row(
                &format!(
                    "Raw stream: plain sqlx `SELECT … FROM events ORDER BY position`, rows counted, best of {}",
                    self.raw_runs
                ),
                &round.raw,
            );
            row(
                &format!(
                    "`projectors::replay` of `read-models` ({}; load average {})",
                    round.method, round.load_average
                ),
                &round.replay,
            );
        }
        let first_raw = self.rounds.first().map(|r| r.raw.rate.events_per_second);
        let mut extra = |what: &str, measured: &Measured| {
            let over = first_raw.map_or(String::from("?"), |raw| {
                format!("{:.2}", measured.rate.events_per_second / raw)
            });
            let _ = writeln!(
                out,
                "| | {what} | {:.2} | {:.0} | {over} (round 1) | {} |",
                measured.rate.seconds,
                measured.rate.events_per_second,
                cpu_cells(&measured.usage, cores)
            );
        };
        if let Some(stream) = &self.stream {
            extra(
                "`EventStore::stream_all` alone (decoded, opened, upcast; not folded)",
                stream,
            );
        }
        if let Some(metrics) = &self.metrics {
            extra(
                "`projectors::replay` of `metrics` (local series, metric_points)",
                metrics,
            );
        }
        let met = |ok: bool| if ok { "met" } else { "missed" };
        for (n, round) in self.rounds.iter().enumerate() {
            let rate = round.replay.rate.events_per_second;
            let over_raw = round.over_raw();
            let _ = writeln!(
                out,
                "\nRound {}: {rate:.0} events/s (target ≥ {TARGET_EVENTS_PER_SECOND:.0}: {}); \
                 ÷ raw = {over_raw:.2} (target ≥ {TARGET_OVER_RAW}: {}).",
                n + 1,
                met(rate >= TARGET_EVENTS_PER_SECOND),
                met(over_raw >= TARGET_OVER_RAW),
            );
        }
        if let Some(round) = self.rounds.last() {
            let _ = writeln!(
                out,
                "\nSteps of the last round's replay (concurrent steps ran beside each other \
                 inside the step after them; CPU is sampled every 20 ms):\n\n\
                 | Step | Seconds | CPU s, client + MariaDB | Cores busy |\n|---|--:|--:|--:|"
            );
            for step in &round.steps {
                if step.concurrent {
                    let _ = writeln!(
                        out,
                        "| ↳ beside: {} | {:.2} | | |",
                        step.name, step.usage.wall_seconds
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "| {} | {:.2} | {} |",
                        step.name,
                        step.usage.wall_seconds,
                        cpu_cells(&step.usage, cores)
                    );
                }
            }
        }
        if let Some(breakdown) = &self.breakdown {
            out.push_str(&breakdown.markdown());
        }
        if !self.what_ifs.is_empty() {
            let raw = first_raw.unwrap_or(f64::NAN);
            out.push_str(
                "\nWhat-ifs: the read models rebuilt through `Projector::catch_up(page)` (the \
                 live path, one transaction per page) from emptied tables:\n\n\
                 | Page (events) | rm_movies FULLTEXT | Seconds | Events/s | ÷ raw stream (round 1) |\n\
                 |--:|---|--:|--:|--:|\n",
            );
            for what_if in &self.what_ifs {
                let fulltext = if what_if.fulltext_after {
                    format!(
                        "dropped, added after ({:.2} s, included)",
                        what_if.index_seconds
                    )
                } else {
                    "kept".to_string()
                };
                let _ = writeln!(
                    out,
                    "| {} | {fulltext} | {:.2} | {:.0} | {:.2} |",
                    what_if.page,
                    what_if.rate.seconds,
                    what_if.rate.events_per_second,
                    what_if.rate.events_per_second / raw
                );
            }
        }
        let filled = &self.filled;
        let _ = writeln!(
            out,
            "\nMachine: {} CPUs, benchmark and database on the same host. The log: {} events of \
             {} movies (MovieAdded, MovieDetailsUpdated ×2–3, PosterAttached, MovieRemoved for \
             one in ten), made by the `Movie` aggregate and hash-chained as the store does; each \
             movie's later events fall at random within the next {} movies added, so the log \
             interleaves streams ({}). Each replay runs the real code path, `projectors::replay` \
             on an `EventStore` with the domain's upcasters, {}.{}",
            self.machine.cpus,
            filled.events,
            filled.movies,
            fill::SPREAD,
            if filled.cached {
                "database reused from an earlier run".to_string()
            } else {
                format!("filled in {:.0} s by multi-row INSERTs", filled.seconds)
            },
            if self.over_live {
                "round 1 on emptied projection tables, later rounds over the read models the \
                 round before left"
            } else {
                "each on emptied projection tables"
            },
            self.machine.database_note()
        );
        out
    }
}

impl Breakdown {
    fn markdown(&self) -> String {
        let mut out = format!(
            "\nEvery SQL statement of an instrumented replay of read-models ({:.2} s), by kind, \
             timed by sqlx from sending to its last row; statements on different connections \
             ran at the same time, so their times overlap:\n\n\
             | Statement | Count | Seconds |\n|---|--:|--:|\n",
            self.replay_seconds
        );
        for (kind, count, seconds) in &self.statements {
            let _ = writeln!(out, "| {kind} | {count} | {seconds:.2} |");
        }
        out
    }
}
