//! Replay rate: `projectors::replay` over a million stored events on MariaDB, beside a plain
//! sqlx stream of the same rows (the limit), and, when it misses its targets, where its time goes.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use event_store::{EventStore, PoolSettings};
use futures::TryStreamExt;
use marquee_bench::machine::Machine;
use projectors::{Adapters, PipelineSettings, METRICS, READ_MODELS};
use serde::Serialize;
use sqlx::{Connection, MySqlConnection};

use crate::database_url;
use crate::fill::{self, Filled};
use crate::sql_times::{SqlTimes, Totals};

/// The targets for the read models' replay.
const TARGET_EVENTS_PER_SECOND: f64 = 50_000.0;
const TARGET_OVER_RAW: f64 = 0.5;
/// Events per read in the breakdown's read pass: the replay's own page (`REPLAY_PAGE`).
const PAGE: u32 = 10_000;
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
    /// Runs of the raw stream; the fastest counts.
    #[arg(long, default_value_t = 3)]
    raw_runs: u32,
    /// Leave out the replay of the metrics projection.
    #[arg(long)]
    skip_metrics: bool,
    /// When to measure where the read models' replay spends its time.
    #[arg(long, value_enum, default_value = "missed-target")]
    breakdown: When,
    /// What-ifs: the read models rebuilt through `Projector::catch_up(PAGE)`, the replay's own
    /// path with another page size, once per size given.
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
    raw: Rate,
    raw_runs: u32,
    read_models: Rate,
    metrics: Option<Rate>,
    breakdown: Option<Breakdown>,
    what_ifs: Vec<WhatIf>,
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

/// Where an instrumented replay of the read models spent its time.
#[derive(Debug, Serialize)]
struct Breakdown {
    replay_seconds: f64,
    /// Per kind of statement: count and client-side elapsed time (send to last row).
    statements: Vec<(String, u64, f64)>,
    /// Turning rows into `RecordedEvent`s (`decode_event`, JSON parsing included).
    decode_seconds: f64,
    /// The domain's upcasters on every payload.
    upcast_seconds: f64,
    /// `projectors::fact`: payloads into domain events.
    fact_seconds: f64,
}

impl Breakdown {
    fn sql_seconds(&self) -> f64 {
        self.statements.iter().map(|(_, _, s)| s).sum()
    }

    /// The rest: folding, building rows and statements, binding, awaiting.
    fn other_seconds(&self) -> f64 {
        self.replay_seconds
            - self.sql_seconds()
            - self.decode_seconds
            - self.upcast_seconds
            - self.fact_seconds
    }
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

    let mut raw: Option<Rate> = None;
    for run in 1..=args.raw_runs.max(1) {
        let rate = raw_stream(&url, args.events).await?;
        eprintln!("raw stream {run}: {:.0} events/s", rate.events_per_second);
        if raw.is_none_or(|best| rate.seconds < best.seconds) {
            raw = Some(rate);
        }
    }
    let raw = raw.context("no raw stream ran")?;

    let store =
        EventStore::open(&url, PoolSettings::default(), projectors::domain_upcaster()).await?;
    let read_models = replay(&store, READ_MODELS, args.events).await?;
    eprintln!(
        "replay of {READ_MODELS}: {:.0} events/s",
        read_models.events_per_second
    );
    let metrics = if args.skip_metrics {
        None
    } else {
        let rate = replay(&store, METRICS, args.events).await?;
        eprintln!(
            "replay of {METRICS}: {:.0} events/s",
            rate.events_per_second
        );
        Some(rate)
    };
    let missed = read_models.events_per_second < TARGET_EVENTS_PER_SECOND
        || read_models.events_per_second / raw.events_per_second < TARGET_OVER_RAW;
    let breakdown = match args.breakdown {
        When::Always => true,
        When::MissedTarget => missed,
        When::Never => false,
    };
    let breakdown = if breakdown {
        eprintln!("profiling the replay of {READ_MODELS}");
        Some(profile(&store, &sql_times, args.events).await?)
    } else {
        None
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
        raw,
        raw_runs: args.raw_runs.max(1),
        read_models,
        metrics,
        breakdown,
        what_ifs,
    })
}

/// Streams every row in position order over one native connection, counting them.
async fn raw_stream(url: &str, events: u64) -> Result<Rate> {
    let mut conn = MySqlConnection::connect(url).await?;
    let started = Instant::now();
    let mut rows = sqlx::query(RAW_STREAM).fetch(&mut conn);
    let mut count = 0u64;
    while rows.try_next().await?.is_some() {
        count += 1;
    }
    let elapsed = started.elapsed();
    drop(rows);
    conn.close().await?;
    ensure!(
        count == events,
        "the raw stream read {count} of {events} events"
    );
    Ok(Rate::new(count, elapsed))
}

/// Empties the projections' tables, then times `projectors::replay` of `name`.
async fn replay(store: &EventStore, name: &str, events: u64) -> Result<Rate> {
    empty_projection_tables(store).await?;
    let projector = projectors::projector(
        store,
        &Adapters::local(),
        &PipelineSettings::default(),
        name,
    )?;
    let report = projectors::replay(&projector).await?;
    ensure!(
        report.events as u64 == events,
        "the replay of {name} applied {} of {events} events",
        report.events
    );
    Ok(Rate::new(events, report.elapsed))
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

/// Times the read path on its own (rows → events → upcast → domain events), then replays the
/// read models again with every statement timed.
async fn profile(store: &EventStore, sql_times: &SqlTimes, events: u64) -> Result<Breakdown> {
    let mut read = Duration::ZERO;
    let mut upcast = Duration::ZERO;
    let mut fact = Duration::ZERO;
    let mut after = 0;
    sql_times.start();
    loop {
        let started = Instant::now();
        let mut page = store.read_raw(after, PAGE).await?;
        read += started.elapsed();
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        after = last;
        let started = Instant::now();
        for event in &mut page {
            let payload = std::mem::take(&mut event.payload);
            let (version, payload) =
                domain::upcast(&event.event_type, event.schema_version, payload)?;
            event.schema_version = version;
            event.payload = payload;
        }
        upcast += started.elapsed();
        let started = Instant::now();
        for event in &page {
            projectors::fact(event)?;
        }
        fact += started.elapsed();
    }
    let read_sql: f64 = sql_times.stop().values().map(|t| t.seconds).sum();
    ensure!(after == events as i64, "the read pass ended at {after}");

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
    let mut statements: Vec<(String, u64, f64)> = statements
        .into_iter()
        .map(|(kind, Totals { count, seconds })| (kind, count, seconds))
        .collect();
    statements.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(Breakdown {
        replay_seconds: report.elapsed.as_secs_f64(),
        statements,
        decode_seconds: read.as_secs_f64() - read_sql,
        upcast_seconds: upcast.as_secs_f64(),
        fact_seconds: fact.as_secs_f64(),
    })
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| What | Events | Seconds | Events/s | ÷ raw stream |\n|---|--:|--:|--:|--:|\n",
        );
        let mut row = |what: &str, rate: &Rate| {
            let _ = writeln!(
                out,
                "| {what} | {} | {:.2} | {:.0} | {:.2} |",
                rate.events,
                rate.seconds,
                rate.events_per_second,
                rate.events_per_second / self.raw.events_per_second
            );
        };
        row(
            &format!(
                "Raw stream: plain sqlx `SELECT … FROM events ORDER BY position`, fetch, best of {}",
                self.raw_runs
            ),
            &self.raw,
        );
        row(
            "`projectors::replay` of `read-models` (rm_movies, rm_movie_genres, …)",
            &self.read_models,
        );
        if let Some(metrics) = &self.metrics {
            row(
                "`projectors::replay` of `metrics` (local series, metric_points)",
                metrics,
            );
        }
        let rate = self.read_models.events_per_second;
        let over_raw = rate / self.raw.events_per_second;
        let met = |ok: bool| if ok { "met" } else { "missed" };
        let _ = writeln!(
            out,
            "\nTargets, replay of read-models: {rate:.0} events/s (target ≥ {TARGET_EVENTS_PER_SECOND:.0}: {}); \
             ÷ raw = {over_raw:.2} (target ≥ {TARGET_OVER_RAW}: {}).",
            met(rate >= TARGET_EVENTS_PER_SECOND),
            met(over_raw >= TARGET_OVER_RAW),
        );
        if let Some(breakdown) = &self.breakdown {
            out.push_str(&breakdown.markdown());
        }
        if !self.what_ifs.is_empty() {
            out.push_str(
                "\nWhat-ifs: the read models rebuilt through `Projector::catch_up(page)` (the \
                 replay's own path, one transaction per page) from emptied tables:\n\n\
                 | Page (events) | rm_movies FULLTEXT | Seconds | Events/s | ÷ raw stream |\n\
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
                    what_if.rate.events_per_second / self.raw.events_per_second
                );
            }
        }
        let filled = &self.filled;
        let _ = writeln!(
            out,
            "\nMachine: {} CPUs, benchmark and database on the same host. The log: {} events of \
             {} movies (MovieAdded, MovieDetailsUpdated ×2–3, PosterAttached, MovieRemoved for \
             one in ten), made by the `Movie` aggregate and hash-chained as the store does; each \
             movie's later events fall at random within the next {} movies added, so pages \
             interleave streams ({}). Each replay starts on emptied projection tables and runs \
             the real code path: `projectors::replay` on an `EventStore` with the domain's \
             upcasters, the log read in pages of {PAGE} events and folded in memory, the rows \
             written in one transaction.{}",
            self.machine.cpus,
            filled.events,
            filled.movies,
            fill::SPREAD,
            if filled.cached {
                "database reused from an earlier run".to_string()
            } else {
                format!("filled in {:.0} s by multi-row INSERTs", filled.seconds)
            },
            self.machine.database_note()
        );
        out
    }
}

impl Breakdown {
    fn markdown(&self) -> String {
        let total = self.replay_seconds;
        let share = |seconds: f64| seconds / total * 100.0;
        let mut out = format!(
            "\nWhere the replay of read-models spends its time (an instrumented run: {total:.2} s, \
             every statement timed by sqlx from sending to its last row; decoding, upcasting and \
             `fact` timed in a separate read pass over the same events):\n\n\
             | Where | Statements | Seconds | Share |\n|---|--:|--:|--:|\n"
        );
        for (kind, count, seconds) in &self.statements {
            let _ = writeln!(
                out,
                "| SQL: {kind} | {count} | {seconds:.2} | {:.1} % |",
                share(*seconds)
            );
        }
        for (what, seconds) in [
            (
                "CPU: rows → RecordedEvent (decode_event, JSON parsing)",
                self.decode_seconds,
            ),
            ("CPU: upcasting (domain::upcast)", self.upcast_seconds),
            (
                "CPU: payload → domain event (projectors::fact)",
                self.fact_seconds,
            ),
            (
                "CPU: the rest (fold, row values, statement text, binding)",
                self.other_seconds(),
            ),
        ] {
            let _ = writeln!(out, "| {what} | | {seconds:.2} | {:.1} % |", share(seconds));
        }
        let _ = writeln!(
            out,
            "\nSQL in all: {:.2} s ({:.1} %).",
            self.sql_seconds(),
            share(self.sql_seconds())
        );
        out
    }
}
