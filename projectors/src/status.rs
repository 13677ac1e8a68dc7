//! The `projection_status` rows: where each projector (and the relay) stands, how far the store
//! sweep has checked it, and its last error.

use chrono::Utc;
use event_store::{format_timestamp, Backend, Database};
use sqlx::{Any, Executor, Row};
use tracing::warn;

use crate::error::Result;

/// The highest position `name` has handled (0 before its first).
pub async fn position(db: &Database, name: &str) -> Result<i64> {
    mark(db, "position", name).await
}

/// One of `name`'s positions in `projection_status` (0 before it has a row).
async fn mark(db: &Database, column: &'static str, name: &str) -> Result<i64> {
    let row = sqlx::query(&format!(
        "SELECT {column} FROM projection_status WHERE name = ?"
    ))
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => 0,
    })
}

/// Moves `name` on to `position` (never back) and clears its error.
pub async fn advance<'e, E: Executor<'e, Database = Any>>(
    executor: E,
    backend: Backend,
    name: &str,
    position: i64,
) -> Result<()> {
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO projection_status (name, position, last_error, updated_at) VALUES (?, ?, NULL, ?) \
             ON CONFLICT (name) DO UPDATE SET position = MAX(position, excluded.position), \
             last_error = NULL, updated_at = excluded.updated_at"
        }
        Backend::MySql => {
            "INSERT INTO projection_status (name, position, last_error, updated_at) VALUES (?, ?, NULL, ?) \
             ON DUPLICATE KEY UPDATE position = GREATEST(position, VALUES(position)), \
             last_error = NULL, updated_at = VALUES(updated_at)"
        }
    };
    sqlx::query(sql)
        .bind(name)
        .bind(position)
        .bind(format_timestamp(Utc::now()))
        .execute(executor)
        .await?;
    Ok(())
}

/// Keeps the latest failure of `name` where operators (and the `projections` query) see it.
pub async fn record_error(db: &Database, name: &str, error: &str) {
    let message: String = error.chars().take(1000).collect();
    let sql = match db.backend() {
        Backend::Sqlite => {
            "INSERT INTO projection_status (name, position, last_error, updated_at) VALUES (?, 0, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET last_error = excluded.last_error, \
             updated_at = excluded.updated_at"
        }
        Backend::MySql => {
            "INSERT INTO projection_status (name, position, last_error, updated_at) VALUES (?, 0, ?, ?) \
             ON DUPLICATE KEY UPDATE last_error = VALUES(last_error), updated_at = VALUES(updated_at)"
        }
    };
    let recorded = sqlx::query(sql)
        .bind(name)
        .bind(&message)
        .bind(format_timestamp(Utc::now()))
        .execute(db.pool())
        .await;
    if let Err(db_error) = recorded {
        warn!(name, %db_error, "could not record an error in projection_status");
    }
}

/// Up to where the store sweep has made sure `name` applied every event (0 before its first).
pub async fn swept_to(db: &Database, name: &str) -> Result<i64> {
    mark(db, "swept_to", name).await
}

/// Moves `name`'s sweep watermark on to `position` (never back).
pub async fn sweep_to(db: &Database, name: &str, position: i64) -> Result<()> {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "INSERT INTO projection_status (name, position, swept_to, updated_at) VALUES (?, 0, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET swept_to = MAX(swept_to, excluded.swept_to)"
        }
        Backend::MySql => {
            "INSERT INTO projection_status (name, position, swept_to, updated_at) VALUES (?, 0, ?, ?) \
             ON DUPLICATE KEY UPDATE swept_to = GREATEST(swept_to, VALUES(swept_to))"
        }
    };
    sqlx::query(sql)
        .bind(name)
        .bind(position)
        .bind(format_timestamp(Utc::now()))
        .execute(db.pool())
        .await?;
    Ok(())
}
