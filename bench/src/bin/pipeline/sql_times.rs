//! Time spent in each kind of SQL statement, from the events sqlx emits after every statement
//! (target `sqlx::query`, with its elapsed time), so the real code path can be profiled without
//! touching it. Off until switched on, and then only statements are looked at.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const TARGET: &str = "sqlx::query";

/// Statements of one kind: how many and their summed elapsed time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub count: u64,
    pub seconds: f64,
}

#[derive(Clone, Default)]
pub struct SqlTimes {
    recording: Arc<AtomicBool>,
    totals: Arc<Mutex<BTreeMap<String, Totals>>>,
}

impl SqlTimes {
    /// Installs the recorder as the process's global subscriber.
    pub fn install() -> anyhow::Result<Self> {
        let times = Self::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(times.clone()),
        )?;
        Ok(times)
    }

    /// Starts recording afresh.
    pub fn start(&self) {
        self.lock().clear();
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Stops recording and returns what was recorded, per kind of statement.
    pub fn stop(&self) -> BTreeMap<String, Totals> {
        self.recording.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Totals>> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Subscriber> Layer<S> for SqlTimes {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Asked again every time, so switching recording on and off takes effect at once.
        if metadata.target() == TARGET {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target() == TARGET && self.recording.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut statement = Statement::default();
        event.record(&mut statement);
        let mut totals = self.lock();
        let kind = totals.entry(statement.kind()).or_default();
        kind.count += 1;
        kind.seconds += statement.elapsed_secs;
    }
}

/// The fields of one statement's event: sqlx sends its first four words as `summary` and the
/// whole text as `db.statement` when that is longer.
#[derive(Default)]
struct Statement {
    summary: String,
    text: String,
    elapsed_secs: f64,
}

impl Visit for Statement {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.text = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.summary = format!("{value:?}").trim_matches('"').to_owned();
        }
    }
}

impl Statement {
    /// The verb and the first table, e.g. `INSERT IGNORE projection_streams` or
    /// `SELECT projection_streams FOR UPDATE`.
    fn kind(&self) -> String {
        let text = if self.text.trim().is_empty() {
            self.summary.as_str()
        } else {
            self.text.as_str()
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let verb = match words.as_slice() {
            ["INSERT", "IGNORE", ..] | ["INSERT", "OR", "IGNORE", ..] => "INSERT IGNORE",
            [ddl @ ("ALTER" | "CREATE" | "DROP" | "RENAME" | "SHOW"), "TABLE", ..] => {
                return format!("{ddl} TABLE {}", ddl_table(&words));
            }
            [first, ..] => first,
            [] => "?",
        };
        let table = words
            .windows(2)
            .find(|pair| matches!(pair[0], "FROM" | "INTO" | "UPDATE"))
            .map(|pair| pair[1].trim_end_matches(['(', ',']))
            .unwrap_or_default();
        let mut kind = format!("{verb} {table}").trim().to_owned();
        if text.contains("ON DUPLICATE KEY UPDATE") || text.contains("DO UPDATE SET") {
            kind.push_str(" (upsert)");
        }
        if text.trim_end().ends_with("FOR UPDATE") {
            kind.push_str(" FOR UPDATE");
        }
        kind
    }
}

/// The first table a DDL statement names (after `TABLE` and any `IF [NOT] EXISTS`).
fn ddl_table(words: &[&str]) -> String {
    words
        .iter()
        .skip(2)
        .find(|word| !matches!(**word, "IF" | "NOT" | "EXISTS"))
        .map(|word| word.trim_end_matches([',', ';']).to_owned())
        .unwrap_or_default()
}
