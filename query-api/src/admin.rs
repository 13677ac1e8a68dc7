//! For admins: `stats`, `metrics` (the local series or CloudWatch, behind `MetricSource`) and
//! `projections`.

use async_graphql::{Context, Object, SimpleObject};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat, ScanBy};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use event_store::{format_timestamp, parse_timestamp, Database};
use projectors::{LocalMetricSeries, METRIC_NAMES};
use sqlx::Row;

use crate::auth::ADMIN;
use crate::error::{FieldResult, QueryError, Result};
use crate::QueryApi;

/// The most points one `metrics` call returns (CloudWatch's own limit per call).
const MAX_POINTS: i64 = 1440;

/// Where metric values are read from, chosen once at start-up like the sink they were sent to.
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// Values of `name` per `period` between `from` and `to`, oldest first; empty periods left out.
    async fn series(
        &self,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        period: TimeDelta,
    ) -> Result<Vec<MetricPoint>>;
}

/// The embedded profile's series in `metric_points`.
pub struct LocalMetrics(pub Database);

#[async_trait]
impl MetricSource for LocalMetrics {
    async fn series(
        &self,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        period: TimeDelta,
    ) -> Result<Vec<MetricPoint>> {
        let points = LocalMetricSeries::series(&self.0, name, from, to, period).await?;
        Ok(points
            .into_iter()
            .map(|p| MetricPoint {
                at: p.at,
                value: p.value,
            })
            .collect())
    }
}

/// The aws profile's metrics, read with GetMetricData from the namespace they are sent to.
pub struct CloudWatchSource {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl CloudWatchSource {
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }
}

#[async_trait]
impl MetricSource for CloudWatchSource {
    async fn series(
        &self,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        period: TimeDelta,
    ) -> Result<Vec<MetricPoint>> {
        let at =
            |t: DateTime<Utc>| aws_sdk_cloudwatch::primitives::DateTime::from_secs(t.timestamp());
        // The lag is a gauge; every other metric counts.
        let stat = if name == "ProjectionLagEvents" {
            "Maximum"
        } else {
            "Sum"
        };
        let query = MetricDataQuery::builder()
            .id("m")
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(&self.namespace)
                            .metric_name(name)
                            .build(),
                    )
                    .period(period.num_seconds() as i32)
                    .stat(stat)
                    .build(),
            )
            .build();
        // Periods on whole multiples of `period`, as the local series buckets them: otherwise
        // they start at `from`, and a point lands in the chart's minute before its own.
        let start = from.duration_trunc(period).unwrap_or(from);
        let end = match to.duration_trunc(period) {
            Ok(whole) if whole < to => whole + period,
            _ => to,
        };
        let mut pages = self
            .client
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(at(start))
            .end_time(at(end))
            .scan_by(ScanBy::TimestampAscending)
            .into_paginator()
            .send();
        let mut points = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                QueryError::Unavailable(format!(
                    "CloudWatch GetMetricData: {}",
                    aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                ))
            })?;
            for result in page.metric_data_results() {
                points.extend(result.timestamps().iter().zip(result.values()).filter_map(
                    |(at, &value)| {
                        Some(MetricPoint {
                            at: DateTime::from_timestamp(at.secs(), 0)?,
                            value,
                        })
                    },
                ));
            }
        }
        Ok(points)
    }
}

#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub at: DateTime<Utc>,
    pub value: f64,
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Counts over the read models; "today" is the current UTC day.
    #[graphql(guard = "ADMIN")]
    async fn stats(&self, ctx: &Context<'_>) -> FieldResult<Stats> {
        Ok(stats(QueryApi::of(ctx)).await?)
    }

    /// A metric's values per period (default the last hour, per minute).
    #[graphql(guard = "ADMIN")]
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        name: String,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(default = 60)] period_seconds: Option<i32>,
    ) -> FieldResult<Vec<MetricPoint>> {
        if !METRIC_NAMES.contains(&name.as_str()) {
            return Err(QueryError::BadInput(
                "unknown_metric",
                format!(
                    "no metric is called {name:?}; try one of {}",
                    METRIC_NAMES.join(", ")
                ),
            )
            .into());
        }
        let period_seconds = period_seconds.unwrap_or(60);
        if period_seconds < 60 || period_seconds % 60 != 0 {
            return Err(QueryError::BadInput(
                "bad_period",
                "periodSeconds must be a positive multiple of 60".into(),
            )
            .into());
        }
        let to = to.unwrap_or_else(Utc::now);
        let from = from.unwrap_or(to - TimeDelta::hours(1));
        let period = TimeDelta::seconds(period_seconds.into());
        if from > to || (to - from).num_seconds() / i64::from(period_seconds) > MAX_POINTS {
            return Err(QueryError::BadInput(
                "bad_range",
                format!("from must precede to, with at most {MAX_POINTS} periods between them"),
            )
            .into());
        }
        Ok(QueryApi::of(ctx)
            .metrics
            .series(&name, from, to, period)
            .await?)
    }

    /// Where each projector stands.
    #[graphql(guard = "ADMIN")]
    async fn projections(&self, ctx: &Context<'_>) -> FieldResult<Vec<ProjectionStatus>> {
        let statuses = projectors::statuses(&QueryApi::of(ctx).store)
            .await
            .map_err(QueryError::from)?;
        Ok(statuses
            .into_iter()
            .map(|s| ProjectionStatus {
                name: s.name,
                position: s.position,
                lag: s.lag,
                last_error: s.last_error,
                updated_at: s.updated_at.as_deref().and_then(parse_timestamp),
            })
            .collect())
    }
}

async fn stats(api: &QueryApi) -> Result<Stats> {
    let pool = api.store.database().pool();
    let today = format_timestamp(
        Utc::now()
            .date_naive()
            .and_time(Default::default())
            .and_utc(),
    );
    let count = |sql: &'static str, bind: Option<String>| async move {
        let mut query = sqlx::query(sql);
        if let Some(value) = bind {
            query = query.bind(value);
        }
        let row = query.fetch_one(pool).await?;
        Ok::<i64, QueryError>(row.try_get(0)?)
    };
    let lag = projectors::statuses(&api.store)
        .await?
        .iter()
        .map(|s| s.lag)
        .max()
        .unwrap_or(0);
    Ok(Stats {
        movies: count("SELECT COUNT(*) FROM rm_movies WHERE removed = 0", None).await?,
        users: count("SELECT COUNT(*) FROM rm_users", None).await?,
        movies_added_today: count(
            "SELECT COUNT(*) FROM rm_movies WHERE added_at >= ?",
            Some(today.clone()),
        )
        .await?,
        logins_today: count(
            "SELECT COUNT(*) FROM rm_logins WHERE at >= ? AND succeeded = 1",
            Some(today.clone()),
        )
        .await?,
        failed_logins_today: count(
            "SELECT COUNT(*) FROM rm_logins WHERE at >= ? AND succeeded = 0",
            Some(today),
        )
        .await?,
        projection_lag: lag,
    })
}

#[derive(SimpleObject)]
pub struct Stats {
    /// Movies in the catalogue (removed ones left out).
    pub movies: i64,
    pub users: i64,
    pub movies_added_today: i64,
    pub logins_today: i64,
    pub failed_logins_today: i64,
    /// The largest lag, in events, of any projector.
    pub projection_lag: i64,
}

#[derive(SimpleObject)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: i64,
    pub lag: i64,
    pub last_error: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}
