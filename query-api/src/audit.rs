//! For auditors: the event history (`events`, keyset by position), a movie as it was
//! (`movieAsOf`, folded from its stream) and the ledger check (`ledger`).

use async_graphql::{Context, Json, Object, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::{Movie, MovieEvent, MovieState};
use event_store::{EventQuery, EventStore, RecordedEvent, StreamId};

use crate::auth::{AUDITOR, AUDITOR_OR_ADMIN};
use crate::catalogue::{Catalogue, MovieRecord};
use crate::error::{FieldResult, QueryError, Result};
use crate::movies::{page_size, PageInfo};
use crate::QueryApi;

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The event log in position order, upcast to current schema versions.
    #[graphql(
        guard = "AUDITOR_OR_ADMIN",
        complexity = "first.unwrap_or(0).clamp(0, 100) as usize * child_complexity + 1"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
        aggregate_id: Option<ID>,
        aggregate_type: Option<String>,
        event_types: Option<Vec<String>>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> FieldResult<EventConnection> {
        let first = page_size(first.unwrap_or(50))?;
        let after_position = match after {
            Some(cursor) => decode_position(&cursor)?,
            None => 0,
        };
        let query = EventQuery {
            after_position,
            aggregate_id: aggregate_id.map(|id| id.0),
            aggregate_type,
            event_types: event_types.unwrap_or_default(),
            recorded_from: from,
            recorded_to: to,
            limit: first as u32 + 1,
        };
        let mut events = QueryApi::of(ctx)
            .store
            .query(&query)
            .await
            .map_err(QueryError::from)?;
        let has_next_page = events.len() > first;
        events.truncate(first);
        let edges: Vec<EventEdge> = events
            .into_iter()
            .map(|event| EventEdge {
                cursor: encode_position(event.position),
                node: Event(event),
            })
            .collect();
        Ok(EventConnection {
            page_info: PageInfo {
                has_next_page,
                end_cursor: edges.last().map(|edge| edge.cursor.clone()),
            },
            edges,
        })
    }

    /// The movie as it stood at time `at` and/or after `version` events, replayed from its
    /// stream; null if it did not exist yet.
    #[graphql(guard = "AUDITOR")]
    async fn movie_as_of(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at: Option<DateTime<Utc>>,
        version: Option<i32>,
    ) -> FieldResult<Option<MovieRecord>> {
        if version.is_some_and(|v| v < 0) {
            return Err(
                QueryError::BadInput("bad_version", "version must be 0 or more".into()).into(),
            );
        }
        let api = QueryApi::of(ctx);
        Ok(movie_as_of(&api.store, &api.catalogue, &id, at, version.map(i64::from)).await?)
    }

    /// The same check as `marquee verify`: the whole store, or with `incremental` only what
    /// came after the last checkpoint (trusting the sealed ranges before it).
    #[graphql(guard = "AUDITOR")]
    async fn ledger(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] incremental: Option<bool>,
    ) -> FieldResult<LedgerStatus> {
        let store = &QueryApi::of(ctx).store;
        let report = if incremental.unwrap_or(false) {
            store.verify_since_last_checkpoint().await
        } else {
            store.verify().await
        }
        .map_err(QueryError::from)?;
        Ok(LedgerStatus {
            intact: report.intact,
            checked_events: report.checked_events,
            first_broken_position: report.first_broken_position,
            last_checkpoint: report.last_checkpoint,
            head: report.head,
            problems: report
                .problems
                .into_iter()
                .map(|problem| LedgerProblem {
                    position: problem.position,
                    kind: serde_json::to_value(problem.kind)
                        .ok()
                        .and_then(|kind| kind.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    detail: problem.detail,
                })
                .collect(),
        })
    }
}

/// Folds the movie's stream up to `at` and `version`.
pub async fn movie_as_of(
    store: &EventStore,
    catalogue: &Catalogue,
    id: &str,
    at: Option<DateTime<Utc>>,
    version: Option<i64>,
) -> Result<Option<MovieRecord>> {
    let events = store
        .read_stream(&StreamId::new(Movie::aggregate_type(), id), 0)
        .await?;
    let mut movie = Movie::default();
    let mut position = 0;
    for event in events
        .into_iter()
        .take_while(|e| version.is_none_or(|v| e.sequence <= v))
        .take_while(|e| at.is_none_or(|at| e.recorded_at <= at))
    {
        let decoded: MovieEvent =
            event_store::decode_event(&event.event_type, event.payload, event.position)?;
        movie.apply(decoded);
        position = event.position;
    }
    let Some(state) = movie.state() else {
        return Ok(None);
    };
    let added_by = username(store, &state.added_by.to_string()).await?;
    Ok(Some(record(
        catalogue,
        state,
        movie.version(),
        position,
        added_by,
    )))
}

async fn username(store: &EventStore, user_id: &str) -> Result<String> {
    let row = sqlx::query("SELECT username FROM rm_users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(store.database().pool())
        .await?;
    Ok(match row {
        Some(row) => event_store::text_column(&row, 0)?.unwrap_or_default(),
        None => user_id.to_string(),
    })
}

fn record(
    catalogue: &Catalogue,
    state: &MovieState,
    version: u64,
    position: i64,
    added_by: String,
) -> MovieRecord {
    MovieRecord {
        id: state.id.to_string(),
        title: state.title.to_string(),
        year: i64::from(state.year.value()),
        director: state.director.to_string(),
        genres: state
            .genres
            .as_slice()
            .iter()
            .map(|g| g.to_string())
            .collect(),
        description: state.description.to_string(),
        poster_url: state
            .poster
            .as_ref()
            .map(|p| catalogue.poster_url(&p.original_key)),
        thumbnail_url: state
            .poster
            .as_ref()
            .map(|p| catalogue.poster_url(&p.thumbnail_key)),
        added_by,
        added_at: state.added_at,
        updated_at: state.updated_at,
        version: version as i64,
        removed: state.removed,
        position,
    }
}

fn encode_position(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("position:{position}"))
}

fn decode_position(cursor: &str) -> Result<i64> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("position:")?.parse().ok())
        .filter(|position: &i64| *position >= 0)
        .ok_or_else(|| {
            QueryError::BadInput(
                "bad_cursor",
                "`after` is not a cursor this API handed out".into(),
            )
        })
}

#[derive(SimpleObject)]
pub struct EventConnection {
    pub edges: Vec<EventEdge>,
    pub page_info: PageInfo,
}

#[derive(SimpleObject)]
pub struct EventEdge {
    pub cursor: String,
    pub node: Event,
}

/// A stored event as auditors see it.
pub struct Event(pub RecordedEvent);

#[Object]
impl Event {
    async fn position(&self) -> i64 {
        self.0.position
    }
    async fn aggregate_type(&self) -> &str {
        &self.0.aggregate_type
    }
    async fn aggregate_id(&self) -> ID {
        ID(self.0.aggregate_id.clone())
    }
    async fn sequence(&self) -> i64 {
        self.0.sequence
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The payload's schema version as stored; the payload itself is upcast to the current one.
    async fn schema_version(&self) -> u32 {
        self.0.schema_version
    }
    async fn payload(&self, ctx: &Context<'_>) -> Json<serde_json::Value> {
        // The one place `events` and `eventAppended` both answer a payload from: secret fields
        // (a password hash) read as "[redacted]". `hash` still covers what is stored. (A plain
        // comment: a doc comment would change the SDL.)
        let mut event = self.0.clone();
        QueryApi::of(ctx).store.redact_secrets(&mut event);
        Json(event.payload)
    }
    async fn metadata(&self) -> Json<&serde_json::Value> {
        Json(&self.0.metadata)
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
    async fn hash(&self) -> &str {
        &self.0.hash
    }
    async fn prev_hash(&self) -> Option<&str> {
        self.0.prev_hash.as_deref()
    }
}

#[derive(SimpleObject)]
pub struct LedgerStatus {
    pub intact: bool,
    pub checked_events: i64,
    pub first_broken_position: Option<i64>,
    pub last_checkpoint: Option<i64>,
    /// The store's head when checked.
    pub head: i64,
    /// Every break found, at the first position it affects.
    pub problems: Vec<LedgerProblem>,
}

#[derive(SimpleObject)]
pub struct LedgerProblem {
    pub position: i64,
    /// `missing_event`, `hash_mismatch`, `sequence_broken`, `chain_broken`,
    /// `checkpoint_mismatch` or `head_mismatch`.
    pub kind: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_event_cursor_reads_back_as_its_position(position in 0i64..=i64::MAX) {
            prop_assert_eq!(decode_position(&encode_position(position)).unwrap(), position);
        }

        #[test]
        fn a_negative_position_is_refused(position in i64::MIN..0) {
            prop_assert!(decode_position(&encode_position(position)).is_err());
        }

        #[test]
        fn any_other_string_is_a_bad_cursor_never_a_panic(raw in any::<String>()) {
            if let Err(error) = decode_position(&raw) {
                prop_assert!(matches!(error, QueryError::BadInput("bad_cursor", _)));
            }
        }

        #[test]
        fn garbage_bytes_behind_valid_base64_are_a_bad_cursor(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Err(error) = decode_position(&URL_SAFE_NO_PAD.encode(bytes)) {
                prop_assert!(matches!(error, QueryError::BadInput("bad_cursor", _)));
            }
        }
    }
}
