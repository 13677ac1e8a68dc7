//! The catalogue's data layer: one SQL query per page of movies (genres are stored with the row
//! and the adder's name comes from a join) plus one for the total, keyset pagination on the order
//! key and id, never OFFSET. Public and free of GraphQL so other callers (the benchmark's bare
//! handler) run exactly the same SQL.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use command_api::PosterStorage;
use event_store::{parse_timestamp, text_column, Backend, Database};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{QueryError, Result};

/// The largest page a caller may ask for.
pub const MAX_PAGE_SIZE: usize = 100;

/// How a page of movies is ordered; the id breaks ties so every order is total.
#[derive(
    async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MovieOrder {
    #[default]
    AddedAtDesc,
    TitleAsc,
    YearDesc,
}

/// Narrows the catalogue; every field given must hold.
#[derive(async_graphql::InputObject, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MovieFilter {
    /// Full-text search over title, director and description: every word must occur (as a prefix).
    pub search: Option<String>,
    pub year: Option<i32>,
    /// One of the movie's genres, ignoring case.
    pub genre: Option<String>,
    /// The director's name exactly, ignoring case.
    pub director: Option<String>,
}

/// A movie as the catalogue shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MovieRecord {
    pub id: String,
    pub title: String,
    pub year: i64,
    pub director: String,
    pub genres: Vec<String>,
    pub description: String,
    pub poster_url: Option<String>,
    pub thumbnail_url: Option<String>,
    /// The adder's username (their id if the user read model does not know them).
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub removed: bool,
    /// The position of the last event applied to this row.
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MovieEdgeRecord {
    pub cursor: String,
    pub node: MovieRecord,
}

/// One page of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoviePage {
    pub edges: Vec<MovieEdgeRecord>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// Reads the catalogue read model.
#[derive(Clone)]
pub struct Catalogue {
    db: Database,
    posters: Arc<dyn PosterStorage>,
}

/// A value bound to a placeholder.
enum Bind {
    Text(String),
    Int(i64),
}

/// The order key of the last row a page showed, as the cursor carries it.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "o")]
    order: MovieOrder,
    #[serde(rename = "k")]
    key: serde_json::Value,
    id: String,
}

const MOVIE_COLUMNS: &str = "m.id, m.title, m.year, m.director, m.genres, m.description, \
     m.poster_key, m.thumbnail_key, COALESCE(u.username, m.added_by), m.added_at, m.updated_at, \
     m.version, m.removed, m.position";

/// InnoDB's default full-text stopwords: a required stopword would match nothing.
const MYSQL_STOPWORDS: [&str; 35] = [
    "a", "about", "an", "are", "as", "at", "be", "by", "com", "de", "en", "for", "from", "how",
    "i", "in", "is", "it", "la", "of", "on", "or", "that", "the", "this", "to", "was", "what",
    "when", "where", "who", "will", "with", "und", "www",
];
/// InnoDB indexes no shorter word (innodb_ft_min_token_size).
const MYSQL_MIN_TOKEN: usize = 3;

impl Catalogue {
    pub fn new(db: Database, posters: Arc<dyn PosterStorage>) -> Self {
        Self { db, posters }
    }

    /// Up to `first` movies after `after` (a cursor from an earlier page of the same order).
    /// Removed movies are left out.
    pub async fn page(
        &self,
        filter: &MovieFilter,
        order: MovieOrder,
        first: usize,
        after: Option<&str>,
    ) -> Result<MoviePage> {
        if first > MAX_PAGE_SIZE {
            return Err(QueryError::BadInput(
                "page_size_exceeded",
                format!("first may be at most {MAX_PAGE_SIZE}, not {first}"),
            ));
        }
        let Some((mut sql, mut binds)) = self.filtered(filter) else {
            return Ok(MoviePage {
                edges: Vec::new(),
                has_next_page: false,
                end_cursor: None,
            });
        };
        let sqlite = self.db.backend() == Backend::Sqlite;
        // SQLite's index on title is NOCASE; MySQL's column collation is already case-insensitive.
        let title = if sqlite {
            "m.title COLLATE NOCASE"
        } else {
            "m.title"
        };
        if let Some(after) = after {
            let cursor = decode_cursor(after, order)?;
            let (column, op) = match order {
                MovieOrder::AddedAtDesc => ("m.added_at", "<"),
                MovieOrder::TitleAsc => (title, ">"),
                MovieOrder::YearDesc => ("m.year", "<"),
            };
            sql.push_str(&format!(
                " AND ({column} {op} ? OR ({column} = ? AND m.id {op} ?))"
            ));
            let key = match (order, &cursor.key) {
                (MovieOrder::YearDesc, serde_json::Value::Number(n)) => n.as_i64().map(Bind::Int),
                (MovieOrder::AddedAtDesc | MovieOrder::TitleAsc, serde_json::Value::String(s)) => {
                    Some(Bind::Text(s.clone()))
                }
                _ => None,
            }
            .ok_or_else(bad_cursor)?;
            let again = match &key {
                Bind::Int(n) => Bind::Int(*n),
                Bind::Text(s) => Bind::Text(s.clone()),
            };
            binds.extend([key, again, Bind::Text(cursor.id)]);
        }
        sql.push_str(match order {
            MovieOrder::AddedAtDesc => " ORDER BY m.added_at DESC, m.id DESC",
            MovieOrder::TitleAsc if sqlite => " ORDER BY m.title COLLATE NOCASE, m.id",
            MovieOrder::TitleAsc => " ORDER BY m.title, m.id",
            MovieOrder::YearDesc => " ORDER BY m.year DESC, m.id DESC",
        });
        // One more than asked tells whether there is a next page.
        sql.push_str(" LIMIT ?");
        binds.push(Bind::Int(first as i64 + 1));
        let sql = format!(
            "SELECT {MOVIE_COLUMNS} FROM rm_movies m LEFT JOIN rm_users u ON u.id = m.added_by \
             WHERE {sql}"
        );
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(self.db.pool())
            .await?;
        let has_next_page = rows.len() > first;
        let edges = rows
            .iter()
            .take(first)
            .map(|row| {
                let node = self.record(row)?;
                Ok(MovieEdgeRecord {
                    cursor: encode_cursor(order, &node),
                    node,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MoviePage {
            end_cursor: edges.last().map(|edge| edge.cursor.clone()),
            edges,
            has_next_page,
        })
    }

    /// How many movies match `filter` (removed ones left out).
    pub async fn count(&self, filter: &MovieFilter) -> Result<i64> {
        let Some((sql, binds)) = self.filtered(filter) else {
            return Ok(0);
        };
        let sql = format!("SELECT COUNT(*) FROM rm_movies m WHERE {sql}");
        let row = bind_all(sqlx::query(&sql), binds)
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// One movie, removed or not.
    pub async fn movie(&self, id: &str) -> Result<Option<MovieRecord>> {
        let sql = format!(
            "SELECT {MOVIE_COLUMNS} FROM rm_movies m LEFT JOIN rm_users u ON u.id = m.added_by \
             WHERE m.id = ?"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|row| self.record(&row)).transpose()
    }

    /// The URL browsers load a stored poster from.
    pub fn poster_url(&self, key: &str) -> String {
        self.posters.public_url(key)
    }

    /// The WHERE clause (without the keyword) and its values; `None` when the filter can match
    /// nothing (a search without a searchable word).
    fn filtered(&self, filter: &MovieFilter) -> Option<(String, Vec<Bind>)> {
        let mut sql = String::from("m.removed = 0");
        let mut binds = Vec::new();
        let sqlite = self.db.backend() == Backend::Sqlite;
        if let Some(search) = filter.search.as_deref() {
            let expression = match self.db.backend() {
                Backend::Sqlite => fts5_query(search),
                Backend::MySql => boolean_mode_query(search),
            }?;
            sql.push_str(if sqlite {
                " AND m.seq IN (SELECT rowid FROM rm_movies_search WHERE rm_movies_search MATCH ?)"
            } else {
                " AND MATCH (m.title, m.director, m.description) AGAINST (? IN BOOLEAN MODE)"
            });
            binds.push(Bind::Text(expression));
        }
        if let Some(year) = filter.year {
            sql.push_str(" AND m.year = ?");
            binds.push(Bind::Int(year.into()));
        }
        if let Some(genre) = &filter.genre {
            sql.push_str(
                " AND m.id IN (SELECT g.movie_id FROM rm_movie_genres g WHERE g.genre = ?)",
            );
            binds.push(Bind::Text(genre.trim().to_string()));
        }
        if let Some(director) = &filter.director {
            sql.push_str(if sqlite {
                " AND m.director = ? COLLATE NOCASE"
            } else {
                " AND m.director = ?"
            });
            binds.push(Bind::Text(director.trim().to_string()));
        }
        Some((sql, binds))
    }

    fn record(&self, row: &AnyRow) -> Result<MovieRecord> {
        let text = |index: usize| -> Result<String> {
            text_column(row, index)?
                .ok_or_else(|| QueryError::internal(format!("rm_movies column {index} is NULL")))
        };
        let time = |index: usize| -> Result<DateTime<Utc>> {
            let raw = text(index)?;
            parse_timestamp(&raw)
                .ok_or_else(|| QueryError::internal(format!("rm_movies time {raw:?}")))
        };
        let genres = text(4)?;
        Ok(MovieRecord {
            id: text(0)?,
            title: text(1)?,
            year: row.try_get(2)?,
            director: text(3)?,
            genres: serde_json::from_str(&genres)
                .map_err(|e| QueryError::internal(format!("rm_movies genres: {e}")))?,
            description: text(5)?,
            poster_url: text_column(row, 6)?.map(|key| self.poster_url(&key)),
            thumbnail_url: text_column(row, 7)?.map(|key| self.poster_url(&key)),
            added_by: text(8)?,
            added_at: time(9)?,
            updated_at: time(10)?,
            version: row.try_get(11)?,
            removed: row.try_get::<i64, _>(12)? != 0,
            position: row.try_get(13)?,
        })
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Int(n) => query.bind(n),
        };
    }
    query
}

/// The words of a search: runs of letters and digits. Everything else (quotes, operators,
/// parentheses) only separates words, so user input never reaches a query language as syntax.
fn words(search: &str) -> impl Iterator<Item = String> + '_ {
    search
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// SQLite FTS5: every word a quoted prefix phrase, all required.
fn fts5_query(search: &str) -> Option<String> {
    let terms: Vec<String> = words(search).map(|word| format!("\"{word}\"*")).collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// MySQL boolean mode: every indexable word required, as a prefix.
fn boolean_mode_query(search: &str) -> Option<String> {
    let terms: Vec<String> = words(search)
        .filter(|word| {
            word.chars().count() >= MYSQL_MIN_TOKEN && !MYSQL_STOPWORDS.contains(&word.as_str())
        })
        .map(|word| format!("+{word}*"))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

fn encode_cursor(order: MovieOrder, movie: &MovieRecord) -> String {
    let key = match order {
        MovieOrder::AddedAtDesc => {
            serde_json::Value::from(event_store::format_timestamp(movie.added_at))
        }
        MovieOrder::TitleAsc => serde_json::Value::from(movie.title.clone()),
        MovieOrder::YearDesc => serde_json::Value::from(movie.year),
    };
    let cursor = Cursor {
        order,
        key,
        id: movie.id.clone(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(raw: &str, order: MovieOrder) -> Result<Cursor> {
    let cursor: Cursor = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(bad_cursor)?;
    if cursor.order != order {
        return Err(QueryError::BadInput(
            "bad_cursor",
            "this cursor belongs to another order; start again without `after`".into(),
        ));
    }
    Ok(cursor)
}

fn bad_cursor() -> QueryError {
    QueryError::BadInput(
        "bad_cursor",
        "`after` is not a cursor this API handed out".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn order() -> impl Strategy<Value = MovieOrder> {
        prop_oneof![
            Just(MovieOrder::AddedAtDesc),
            Just(MovieOrder::TitleAsc),
            Just(MovieOrder::YearDesc),
        ]
    }

    fn movie(title: String, year: i64, micros: i64, id: String) -> MovieRecord {
        let at = Utc.timestamp_micros(micros).single().expect("in range");
        MovieRecord {
            id,
            title,
            year,
            director: String::new(),
            genres: Vec::new(),
            description: String::new(),
            poster_url: None,
            thumbnail_url: None,
            added_by: String::new(),
            added_at: at,
            updated_at: at,
            version: 1,
            removed: false,
            position: 1,
        }
    }

    proptest! {
        #[test]
        fn a_cursor_reads_back_as_the_row_it_was_made_from(
            order in order(),
            title in any::<String>(),
            year in any::<i64>(),
            micros in 0i64..4_102_444_800_000_000,
            id in any::<String>(),
        ) {
            let movie = movie(title, year, micros, id);
            let cursor = decode_cursor(&encode_cursor(order, &movie), order).unwrap();
            prop_assert_eq!(cursor.order, order);
            prop_assert_eq!(&cursor.id, &movie.id);
            let expected = match order {
                MovieOrder::AddedAtDesc => {
                    serde_json::Value::from(event_store::format_timestamp(movie.added_at))
                }
                MovieOrder::TitleAsc => serde_json::Value::from(movie.title.clone()),
                MovieOrder::YearDesc => serde_json::Value::from(movie.year),
            };
            prop_assert_eq!(cursor.key, expected);
        }

        #[test]
        fn a_cursor_of_another_order_is_refused(
            made_for in order(),
            used_for in order(),
            title in any::<String>(),
        ) {
            prop_assume!(made_for != used_for);
            let cursor = encode_cursor(made_for, &movie(title, 2001, 0, "m".into()));
            prop_assert!(matches!(
                decode_cursor(&cursor, used_for),
                Err(QueryError::BadInput("bad_cursor", _))
            ));
        }

        #[test]
        fn any_other_string_is_a_bad_cursor_never_a_panic(order in order(), raw in any::<String>()) {
            if let Err(error) = decode_cursor(&raw, order) {
                prop_assert!(matches!(error, QueryError::BadInput("bad_cursor", _)));
            }
        }

        #[test]
        fn garbage_bytes_behind_valid_base64_are_a_bad_cursor(
            order in order(),
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Err(error) = decode_cursor(&URL_SAFE_NO_PAD.encode(bytes), order) {
                prop_assert!(matches!(error, QueryError::BadInput("bad_cursor", _)));
            }
        }
    }

    #[test]
    fn search_input_never_becomes_query_syntax() {
        assert_eq!(
            fts5_query(r#"space "odyssey" NEAR( x*')--"#).as_deref(),
            Some(r#""space"* "odyssey"* "near"* "x"*"#)
        );
        assert_eq!(
            boolean_mode_query(r#"+the -space "odyssey" NEAR( ab*')--"#).as_deref(),
            Some("+space* +odyssey* +near*")
        );
        assert_eq!(fts5_query(r#""*')--"#), None);
        assert_eq!(boolean_mode_query("a of"), None);
    }
}
