//! Multi-row statements built at run time, for the two SQL dialects the store speaks.

use event_store::Backend;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Transaction};

pub type Tx = Transaction<'static, Any>;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    MaybeText(Option<String>),
    Int(i64),
    Float(f64),
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}
impl From<String> for Value {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}
impl From<Option<String>> for Value {
    fn from(text: Option<String>) -> Self {
        Self::MaybeText(text)
    }
}
impl From<i64> for Value {
    fn from(number: i64) -> Self {
        Self::Int(number)
    }
}
impl From<f64> for Value {
    fn from(number: f64) -> Self {
        Self::Float(number)
    }
}

pub fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    values: &'q [Value],
) -> Query<'q, Any, AnyArguments<'q>> {
    for value in values {
        query = match value {
            Value::Text(text) => query.bind(text.as_str()),
            Value::MaybeText(text) => query.bind(text.as_deref()),
            Value::Int(number) => query.bind(*number),
            Value::Float(number) => query.bind(*number),
        };
    }
    query
}

/// Keys per IN list.
const KEYS_PER_STATEMENT: usize = 400;
/// Bound values per statement: under SQLite's 32,766 and MySQL's 65,535 placeholders.
const VALUES_PER_STATEMENT: usize = 16_000;

/// What to do with a row whose key exists.
#[derive(Clone, Copy)]
pub enum OnConflict<'a> {
    /// Fail the statement (rows written into emptied tables).
    Fail,
    /// Keep the stored row (idempotent inserts).
    Ignore,
    /// Overwrite these columns with the new values.
    Replace(&'a [&'a str]),
    /// Add the new value to this column.
    Add(&'a str),
}

/// Inserts `rows` (each one value per column) into `table`, resolving key conflicts as asked.
pub async fn insert_rows(
    tx: &mut Tx,
    backend: Backend,
    table: &str,
    columns: &[&str],
    key: &[&str],
    on_conflict: OnConflict<'_>,
    rows: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    let rows_per_statement = (VALUES_PER_STATEMENT / columns.len().max(1)).max(1);
    for chunk in rows.chunks(rows_per_statement) {
        let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
        let values = vec![tuple; chunk.len()].join(", ");
        let columns_list = columns.join(", ");
        let sql = match (backend, on_conflict) {
            (_, OnConflict::Fail) => {
                format!("INSERT INTO {table} ({columns_list}) VALUES {values}")
            }
            (Backend::Sqlite, OnConflict::Ignore) => {
                format!("INSERT OR IGNORE INTO {table} ({columns_list}) VALUES {values}")
            }
            (Backend::MySql, OnConflict::Ignore) => {
                format!("INSERT IGNORE INTO {table} ({columns_list}) VALUES {values}")
            }
            (Backend::Sqlite, OnConflict::Replace(set)) => format!(
                "INSERT INTO {table} ({columns_list}) VALUES {values} ON CONFLICT ({}) DO UPDATE SET {}",
                key.join(", "),
                set.iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (Backend::MySql, OnConflict::Replace(set)) => format!(
                "INSERT INTO {table} ({columns_list}) VALUES {values} ON DUPLICATE KEY UPDATE {}",
                set.iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (Backend::Sqlite, OnConflict::Add(column)) => format!(
                "INSERT INTO {table} ({columns_list}) VALUES {values} ON CONFLICT ({}) \
                 DO UPDATE SET {column} = {column} + excluded.{column}",
                key.join(", ")
            ),
            (Backend::MySql, OnConflict::Add(column)) => format!(
                "INSERT INTO {table} ({columns_list}) VALUES {values} \
                 ON DUPLICATE KEY UPDATE {column} = {column} + VALUES({column})"
            ),
        };
        let flat: Vec<Value> = chunk.iter().flatten().cloned().collect();
        bind_all(sqlx::query(&sql), &flat)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// `?, ?, ?` for an IN list.
pub fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Splits keys into IN-list sized chunks.
pub fn key_chunks(keys: &[String]) -> impl Iterator<Item = &[String]> {
    keys.chunks(KEYS_PER_STATEMENT)
}
