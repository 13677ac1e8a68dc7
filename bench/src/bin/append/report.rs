//! The results as a Markdown table for the README and as JSON, with the machine they came from.

use std::fmt::Write as _;

use anyhow::Result;
use marquee_bench::contenders::{Backend, Variant};
use marquee_bench::driver::Measurement;
use marquee_bench::machine::Machine;
use serde::Serialize;

/// The targets, at 32 writers on MariaDB: the store's throughput over each baseline's.
const TARGET_WRITERS: usize = 32;
const TARGET_OVER_PLAIN: f64 = 0.7;
const TARGET_OVER_PEER: f64 = 2.0;

/// One variant at one writer count on one backend.
#[derive(Debug, Serialize)]
pub struct Run {
    pub backend: Backend,
    pub writers: usize,
    pub variant: Variant,
    pub measurement: Option<Measurement>,
    pub not_applicable: Option<&'static str>,
    /// The store's throughput over this variant's, from the same round; set by `Report::new`.
    pub store_over_this: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    machine: Machine,
    seconds: u64,
    warmup_seconds: u64,
    runs: Vec<Run>,
}

impl Report {
    pub fn new(machine: Machine, seconds: u64, warmup_seconds: u64, mut runs: Vec<Run>) -> Self {
        let store_rate = |backend, writers| {
            runs.iter()
                .find(|r| {
                    r.variant == Variant::Store && r.backend == backend && r.writers == writers
                })
                .and_then(|r| r.measurement)
                .map(|m| m.events_per_second)
        };
        let ratios: Vec<Option<f64>> =
            runs.iter()
                .map(|run| match (run.variant, run.measurement) {
                    (Variant::Store, _) | (_, None) => None,
                    (_, Some(m)) => store_rate(run.backend, run.writers)
                        .map(|store| store / m.events_per_second),
                })
                .collect();
        for (run, ratio) in runs.iter_mut().zip(ratios) {
            run.store_over_this = ratio;
        }
        Self {
            machine,
            seconds,
            warmup_seconds,
            runs,
        }
    }

    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| Backend | Writers | Variant | Events/s | p50 (ms) | p99 (ms) | Store ÷ variant |\n\
             |---|--:|---|--:|--:|--:|--:|\n",
        );
        let mut reasons = Vec::new();
        for run in &self.runs {
            let cells = match (run.measurement, run.not_applicable) {
                (Some(m), _) => format!(
                    "{:.0} | {:.2} | {:.2} | {}",
                    m.events_per_second,
                    m.p50_ms,
                    m.p99_ms,
                    run.store_over_this
                        .map_or_else(|| "—".to_string(), |r| format!("{r:.2}"))
                ),
                (None, reason) => {
                    if let Some(reason) = reason.filter(|r| !reasons.contains(r)) {
                        reasons.push(reason);
                    }
                    "n/a¹ | n/a | n/a | n/a".to_string()
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {cells} |",
                run.backend.label(),
                run.writers,
                run.variant.label()
            );
        }
        for reason in reasons {
            let _ = writeln!(out, "\n¹ {reason}.");
        }
        if let Some(targets) = self.targets() {
            let _ = write!(out, "\n{targets}");
        }
        let _ = write!(out, "\n{}", self.machine_note());
        out
    }

    /// Whether the store meets the targets, if this report measured them.
    fn targets(&self) -> Option<String> {
        let at = |variant| {
            self.runs.iter().find(|r| {
                r.backend == Backend::Mariadb && r.writers == TARGET_WRITERS && r.variant == variant
            })
        };
        let verdict = |ratio: f64, target: f64| {
            let met = if ratio >= target { "met" } else { "missed" };
            format!("{ratio:.2} (target ≥ {target}: {met})")
        };
        let over_plain = at(Variant::Plain)?.store_over_this?;
        let over_peer = at(Variant::Peer)?.store_over_this?;
        Some(format!(
            "Targets at {TARGET_WRITERS} writers on MariaDB: store ÷ (a) = {}; store ÷ (b) = {}.\n",
            verdict(over_plain, TARGET_OVER_PLAIN),
            verdict(over_peer, TARGET_OVER_PEER),
        ))
    }

    fn machine_note(&self) -> String {
        let machine = &self.machine;
        let mut note = format!(
            "Machine: {} CPUs, benchmark and database on the same host; {} s per run after a {} s \
             warm-up, variants taking turns at each writer count, every run on a fresh database, \
             pools of writers + 1 connections.",
            machine.cpus, self.seconds, self.warmup_seconds
        );
        note.push_str(&machine.database_note());
        note.push('\n');
        note
    }
}
