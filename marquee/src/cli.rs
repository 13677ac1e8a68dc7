//! The command line: `marquee <command>`, every setting also readable from the environment.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use event_store::{EventQuery, ExportFormat, LedgerReport};
use tracing::info;

use crate::config::{parse_bind, RawConfig, Settings};
use crate::{operator, serve, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "marquee",
    version,
    about = "Marquee: an event-sourced movie catalogue",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub config: RawConfig,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the command API, GraphQL API and web UI on one port (migrations are applied first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MARQUEE_BIND", default_value = "127.0.0.1:8080", value_parser = parse_bind)]
        bind: SocketAddr,
    },
    /// Apply the database migrations in migrations/.
    Migrate,
    /// Publish stored events to the bus (SNS/SQS) in the aws profile.
    Relay,
    /// Long-poll the projector queues and run the projector handlers.
    Project,
    /// Create the SNS topics and SQS queues of the aws profile (local runs and tests).
    Provision,
    /// Rebuild read models from the event store.
    Replay {
        /// Only this projection.
        #[arg(long)]
        projection: Option<String>,
        /// Rebuild into a scratch copy and report every row that differs from the live one.
        #[arg(long)]
        compare: bool,
    },
    /// Check every stream's hash chain and the ledger checkpoints; exit 1 at the first break.
    Verify {
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export event history for auditors, oldest first.
    Events {
        /// Only this aggregate's events.
        #[arg(long)]
        aggregate: Option<String>,
        /// Start at this global position.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
        from: i64,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: ExportFormat,
    },
    /// Operator commands on user accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Grant a role (user, admin, auditor): how the first admin is made.
    GrantRole { username: String, role: String },
    /// Erase a user's personal data by destroying their key; history stays verifiable.
    Forget { username: String },
}

/// Exit code for usage and configuration errors, as clap uses.
const USAGE: u8 = 2;

/// Runs one command and tells the process how to exit.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = match cli.config.validate() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("marquee: configuration error: {error}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    telemetry::init(&settings);
    match cli.command {
        Command::Serve { bind } => {
            let app = serve::start(&settings, bind).await?;
            app.run_until(serve::shutdown_signal()).await?;
        }
        Command::Migrate => {
            let db = crate::connect_database(&settings).await?;
            db.migrate().await?;
            info!("migrations applied");
            println!("migrations applied");
        }
        Command::Verify { json } => {
            let report = crate::open_store(&settings).await?.verify().await?;
            print_report(&report, json)?;
            return Ok(if report.intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Events {
            aggregate,
            from,
            format,
        } => export(&settings, aggregate, from, format).await?,
        Command::User {
            action: UserAction::GrantRole { username, role },
        } => {
            let store = crate::open_store(&settings).await?;
            let position = operator::grant_role(&store, &username, &role).await?;
            println!("granted {role} to {username} (position {position})");
        }
        Command::User {
            action: UserAction::Forget { username },
        } => {
            let store = crate::open_store(&settings).await?;
            let position = operator::forget(&store, &username).await?;
            println!("forgot {username}: their key is destroyed (position {position})");
        }
        Command::Relay => crate::pipeline::relay(&settings).await?,
        Command::Project => crate::pipeline::project(&settings).await?,
        Command::Provision => crate::pipeline::provision(&settings).await?,
        Command::Replay {
            projection,
            compare,
        } => {
            if compare {
                if projection
                    .as_deref()
                    .is_some_and(|p| p != projectors::READ_MODELS)
                {
                    eprintln!("marquee replay --compare: only the read-models projection has rows to compare");
                    return Ok(ExitCode::from(USAGE));
                }
                let same = crate::pipeline::compare(&settings).await?;
                return Ok(if same {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            crate::pipeline::replay(&settings, projection.as_deref()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(
    settings: &Settings,
    aggregate: Option<String>,
    from: i64,
    format: ExportFormat,
) -> anyhow::Result<()> {
    let store = crate::open_store(settings).await?;
    let query = EventQuery {
        after_position: from - 1,
        aggregate_id: aggregate,
        ..EventQuery::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let count = store.export(&query, format, &mut out).await?;
    info!(count, "events exported");
    Ok(())
}

fn print_report(report: &LedgerReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        return Ok(());
    }
    let checkpoint = report
        .last_checkpoint
        .map_or("none yet".to_string(), |p| format!("at position {p}"));
    match report.first_broken_position {
        None => writeln!(
            out,
            "ledger intact: {} events checked up to position {}, last checkpoint {checkpoint}",
            report.checked_events, report.head
        )?,
        Some(position) => {
            writeln!(
                out,
                "ledger BROKEN: first broken position {position} ({} events checked, last checkpoint {checkpoint})",
                report.checked_events
            )?;
            for problem in &report.problems {
                let kind = serde_json::to_value(problem.kind)?;
                writeln!(
                    out,
                    "  position {}: {}: {}",
                    problem.position,
                    kind.as_str().unwrap_or_default(),
                    problem.detail
                )?;
            }
        }
    }
    Ok(())
}
