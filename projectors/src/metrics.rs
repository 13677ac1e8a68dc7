//! Metrics: what each event counts for, the `metrics` projection, and where the counts go:
//! CloudWatch in the aws profile (see `aws::CloudWatchMetrics`), a local series in embedded.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::{MovieEvent, UserEvent};
use event_store::{
    format_timestamp, parse_timestamp, text_column, Backend, Database, RecordedEvent,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::engine::{Projection, Rebuild};
use crate::error::Result;
use crate::facts::{fact, Fact};
use crate::sql::{insert_rows, OnConflict, Tx, Value};

/// CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "Marquee";

/// The contract's metric names.
pub const MOVIES_ADDED: &str = "MoviesAdded";
pub const MOVIES_UPDATED: &str = "MoviesUpdated";
pub const MOVIES_REMOVED: &str = "MoviesRemoved";
pub const POSTERS_UPLOADED: &str = "PostersUploaded";
pub const LOGIN_SUCCEEDED: &str = "LoginSucceeded";
pub const LOGIN_FAILED: &str = "LoginFailed";
pub const USERS_REGISTERED: &str = "UsersRegistered";
pub const PROJECTION_LAG_EVENTS: &str = "ProjectionLagEvents";

pub const METRIC_NAMES: [&str; 8] = [
    MOVIES_ADDED,
    MOVIES_UPDATED,
    MOVIES_REMOVED,
    POSTERS_UPLOADED,
    LOGIN_SUCCEEDED,
    LOGIN_FAILED,
    USERS_REGISTERED,
    PROJECTION_LAG_EVENTS,
];

/// One value of one metric at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDatum {
    pub name: String,
    pub at: DateTime<Utc>,
    pub value: f64,
    /// CloudWatch's unit: `Count` for events, `None` for gauges such as the lag.
    pub unit: String,
}

impl MetricDatum {
    pub fn count(name: &str, at: DateTime<Utc>) -> Self {
        Self {
            name: name.to_owned(),
            at,
            value: 1.0,
            unit: "Count".to_owned(),
        }
    }

    pub fn gauge(name: &str, at: DateTime<Utc>, value: f64) -> Self {
        Self {
            name: name.to_owned(),
            at,
            value,
            unit: "None".to_owned(),
        }
    }
}

/// The metric an event counts for, if any.
pub fn metric_for(fact: &Fact) -> Option<&'static str> {
    Some(match fact {
        Fact::Movie(MovieEvent::MovieAdded(_)) => MOVIES_ADDED,
        Fact::Movie(MovieEvent::MovieDetailsUpdated(_)) => MOVIES_UPDATED,
        Fact::Movie(MovieEvent::PosterAttached(_)) => POSTERS_UPLOADED,
        Fact::Movie(MovieEvent::MovieRemoved(_)) => MOVIES_REMOVED,
        Fact::User(UserEvent::UserRegistered(_)) => USERS_REGISTERED,
        Fact::User(UserEvent::PasswordLoginSucceeded(_) | UserEvent::PasskeyLoginSucceeded(_)) => {
            LOGIN_SUCCEEDED
        }
        Fact::User(UserEvent::LoginFailed(_)) => LOGIN_FAILED,
        Fact::User(_) => return None,
    })
}

/// Where metric values go.
#[async_trait]
pub trait MetricSink: Send + Sync {
    /// Records values inside the caller's transaction; each key is recorded at most once.
    async fn record(
        &self,
        tx: &mut Tx,
        backend: Backend,
        datums: &[(String, MetricDatum)],
    ) -> Result<()>;

    /// Sends what was recorded, after the transaction committed.
    async fn flush(&self, db: &Database) -> Result<()>;

    /// Whether the values stay in this database (a local series a replay may rebuild) rather
    /// than being sent away, where a replay would send them twice.
    fn is_local(&self) -> bool;
}

/// The embedded profile's series: a sum per metric and minute in `metric_points`.
pub struct LocalMetricSeries;

#[async_trait]
impl MetricSink for LocalMetricSeries {
    async fn record(
        &self,
        tx: &mut Tx,
        backend: Backend,
        datums: &[(String, MetricDatum)],
    ) -> Result<()> {
        let rows: Vec<Vec<Value>> = datums
            .iter()
            .map(|(_, datum)| {
                vec![
                    Value::from(datum.name.as_str()),
                    Value::from(minute_of(datum.at)),
                    Value::from(datum.value),
                ]
            })
            .collect();
        write_points(tx, backend, OnConflict::Add("value"), &rows).await
    }

    async fn flush(&self, _db: &Database) -> Result<()> {
        Ok(())
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// A point of a local series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub at: DateTime<Utc>,
    pub value: f64,
}

impl LocalMetricSeries {
    /// Sums of `name` per `period` between `from` and `to`, oldest first; empty periods are left out.
    pub async fn series(
        db: &Database,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        period: TimeDelta,
    ) -> Result<Vec<MetricPoint>> {
        let rows = sqlx::query(
            "SELECT minute, value FROM metric_points WHERE name = ? AND minute >= ? AND minute <= ? ORDER BY minute",
        )
        .bind(name)
        .bind(minute_of(from))
        .bind(format_timestamp(to))
        .fetch_all(db.pool())
        .await?;
        let mut points: Vec<MetricPoint> = Vec::new();
        for row in rows {
            let Some(minute) = text_column(&row, 0)?.as_deref().and_then(parse_timestamp) else {
                continue;
            };
            let value: f64 = row.try_get(1)?;
            let bucket = minute.duration_trunc(period).unwrap_or(minute);
            match points.last_mut() {
                Some(last) if last.at == bucket => last.value += value,
                _ => points.push(MetricPoint { at: bucket, value }),
            }
        }
        Ok(points)
    }
}

/// Writes `metric_points` rows, each `[name, minute, value]`.
async fn write_points(
    tx: &mut Tx,
    backend: Backend,
    on_conflict: OnConflict<'_>,
    rows: &[Vec<Value>],
) -> Result<()> {
    insert_rows(
        tx,
        backend,
        "metric_points",
        &["name", "minute", "value"],
        &["name", "minute"],
        on_conflict,
        rows,
    )
    .await?;
    Ok(())
}

fn minute_of(at: DateTime<Utc>) -> String {
    format_timestamp(at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at))
}

/// The `metrics` projection: one count per event, once, timed by when the event happened.
pub struct Metrics {
    sink: Arc<dyn MetricSink>,
}

pub const METRICS: &str = "metrics";

impl Metrics {
    pub fn new(sink: Arc<dyn MetricSink>) -> Self {
        Self { sink }
    }
}

#[async_trait]
impl Projection for Metrics {
    fn name(&self) -> &'static str {
        METRICS
    }

    async fn apply(&self, tx: &mut Tx, backend: Backend, events: &[RecordedEvent]) -> Result<()> {
        let mut datums = Vec::new();
        for event in events {
            if let Some(name) = metric_for(&fact(event)?) {
                datums.push((
                    format!("{}:{name}", event.event_id),
                    MetricDatum::count(name, event.recorded_at),
                ));
            }
        }
        self.sink.record(tx, backend, &datums).await
    }

    async fn deliver(&self, db: &Database) -> Result<()> {
        self.sink.flush(db).await
    }

    fn rebuild(&self) -> Option<Box<dyn Rebuild>> {
        self.sink
            .is_local()
            .then(|| Box::new(LocalSeriesRebuild::default()) as Box<dyn Rebuild>)
    }
}

/// The local series summed in memory per metric and minute.
#[derive(Default)]
struct LocalSeriesRebuild {
    sums: BTreeMap<(&'static str, String), f64>,
}

#[async_trait]
impl Rebuild for LocalSeriesRebuild {
    fn tables(&self) -> &'static [&'static str] {
        &["metric_points"]
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<()> {
        if let Some(name) = metric_for(&fact(event)?) {
            *self
                .sums
                .entry((name, minute_of(event.recorded_at)))
                .or_default() += 1.0;
        }
        Ok(())
    }

    async fn write(&self, tx: &mut Tx, backend: Backend) -> Result<()> {
        let rows: Vec<Vec<Value>> = self
            .sums
            .iter()
            .map(|((name, minute), value)| {
                vec![
                    Value::from(*name),
                    Value::from(minute.as_str()),
                    Value::from(*value),
                ]
            })
            .collect();
        write_points(tx, backend, OnConflict::Fail, &rows).await
    }
}
