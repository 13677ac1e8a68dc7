//! The catalogue: `movies` (keyset pages, filters, three orders, total) and `movie`; open to all.

use async_graphql::{ComplexObject, Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::catalogue::{MovieFilter, MovieOrder, MovieRecord, MAX_PAGE_SIZE};
use crate::error::{FieldResult, QueryError, Result};
use crate::QueryApi;

#[derive(Default)]
pub struct MoviesQuery;

#[Object]
impl MoviesQuery {
    /// The catalogue, removed movies left out, a page at a time.
    #[graphql(complexity = "first.unwrap_or(0).clamp(0, 100) as usize * child_complexity + 1")]
    async fn movies(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        filter: Option<MovieFilter>,
        #[graphql(default_with = "Some(MovieOrder::AddedAtDesc)")] order_by: Option<MovieOrder>,
    ) -> FieldResult<MovieConnection> {
        let first = page_size(first.unwrap_or(20))?;
        let filter = filter.unwrap_or_default();
        let page = QueryApi::of(ctx)
            .catalogue
            .page(
                &filter,
                order_by.unwrap_or_default(),
                first,
                after.as_deref(),
            )
            .await?;
        Ok(MovieConnection {
            edges: page
                .edges
                .into_iter()
                .map(|edge| MovieEdge {
                    cursor: edge.cursor,
                    node: edge.node,
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            filter,
        })
    }

    /// One movie by id, removed ones included (`removed: true`).
    async fn movie(&self, ctx: &Context<'_>, id: ID) -> FieldResult<Option<MovieRecord>> {
        Ok(QueryApi::of(ctx).catalogue.movie(&id).await?)
    }
}

/// Checks a requested page size against the limit.
pub fn page_size(first: i32) -> Result<usize> {
    usize::try_from(first)
        .ok()
        .filter(|first| *first <= MAX_PAGE_SIZE)
        .ok_or_else(|| {
            QueryError::BadInput(
                "page_size_exceeded",
                format!("first must be between 0 and {MAX_PAGE_SIZE}, not {first}"),
            )
        })
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct MovieConnection {
    pub edges: Vec<MovieEdge>,
    pub page_info: PageInfo,
    #[graphql(skip)]
    filter: MovieFilter,
}

#[ComplexObject]
impl MovieConnection {
    /// Every movie the filter matches, across all pages (one query, only when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> FieldResult<i64> {
        Ok(QueryApi::of(ctx).catalogue.count(&self.filter).await?)
    }
}

#[derive(SimpleObject)]
pub struct MovieEdge {
    pub cursor: String,
    pub node: MovieRecord,
}

#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[Object(name = "Movie")]
impl MovieRecord {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn title(&self) -> &str {
        &self.title
    }
    async fn year(&self) -> i64 {
        self.year
    }
    async fn director(&self) -> &str {
        &self.director
    }
    async fn genres(&self) -> &[String] {
        &self.genres
    }
    async fn description(&self) -> &str {
        &self.description
    }
    /// The original poster image, if one was uploaded.
    async fn poster_url(&self) -> Option<&str> {
        self.poster_url.as_deref()
    }
    /// A 320 px wide JPEG of the poster.
    async fn thumbnail_url(&self) -> Option<&str> {
        self.thumbnail_url.as_deref()
    }
    /// The username of who added it.
    async fn added_by(&self) -> &str {
        &self.added_by
    }
    async fn added_at(&self) -> DateTime<Utc> {
        self.added_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
    /// What `If-Match` takes to edit it.
    async fn version(&self) -> i64 {
        self.version
    }
    async fn removed(&self) -> bool {
        self.removed
    }
}
