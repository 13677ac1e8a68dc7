//! Marquee's GraphQL query API: the catalogue, accounts, history, temporal queries, the ledger,
//! admin figures and live updates, read from the read models and the event store (never from
//! the command side's aggregates in memory).

mod admin;
mod alerts;
mod audit;
mod auth;
pub mod catalogue;
mod codes;
mod error;
mod http;
mod limits;
mod live;
mod me;
mod movies;
mod subscriptions;
mod websocket;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{
    Context, EmptyMutation, MergedObject, MergedSubscription, Schema, SchemaBuilder,
};
use command_api::{PosterStorage, Sessions};
use event_store::EventStore;
use projectors::DeadLetterProbe;
use tokio::sync::watch;

pub use admin::{CloudWatchSource, LocalMetrics, MetricSource};
pub use catalogue::{Catalogue, MovieFilter, MovieOrder, MoviePage, MovieRecord, MAX_PAGE_SIZE};
pub use error::QueryError;
pub use http::{router, KEEPALIVE as WEBSOCKET_KEEPALIVE, MIN_POSITION_HEADER};
pub use limits::{MAX_ALIASES, MAX_ROOT_FIELDS};
pub use websocket::MAX_SUBSCRIPTIONS_PER_SOCKET;

/// The deepest selection accepted (introspection's type references need 13).
pub const MAX_DEPTH: usize = 15;
/// The costliest query accepted: a field costs 1, a list field its page size times its items.
pub const MAX_COMPLEXITY: usize = 2500;

#[derive(MergedObject, Default)]
pub struct Query(
    movies::MoviesQuery,
    me::MeQuery,
    audit::AuditQuery,
    admin::AdminQuery,
    alerts::AlertsQuery,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(subscriptions::LiveSubscription);

pub type MarqueeSchema = Schema<Query, EmptyMutation, Subscription>;

/// Settings of the query API, validated by the binary's configuration.
#[derive(Debug, Clone, Copy)]
pub struct QueryConfig {
    /// How long a request with `X-Min-Position` waits for the read models.
    pub min_position_wait: Duration,
    /// How often live updates look for events other processes committed.
    pub live_poll: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            min_position_wait: Duration::from_secs(2),
            live_poll: Duration::from_millis(200),
        }
    }
}

/// What every resolver can reach.
#[derive(Clone)]
pub struct QueryApi {
    store: EventStore,
    catalogue: Catalogue,
    metrics: Arc<dyn MetricSource>,
    dead_letters: Option<Arc<dyn DeadLetterProbe>>,
    sessions: Sessions,
    config: QueryConfig,
    live: live::Live,
    /// The site's origin as browsers send it: a cookie-authenticated WebSocket from any other
    /// page is refused.
    public_origin: String,
}

impl QueryApi {
    /// Starts the live-update tasks (until `stop` turns true). `dead_letters` is the
    /// pipeline's probe where it has dead-letter queues; `public_origin` the site's origin, as
    /// the command API's CSRF check takes it.
    pub fn new(
        store: EventStore,
        posters: Arc<dyn PosterStorage>,
        metrics: Arc<dyn MetricSource>,
        dead_letters: Option<Arc<dyn DeadLetterProbe>>,
        config: QueryConfig,
        public_origin: String,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let catalogue = Catalogue::new(store.database().clone(), posters);
        let live = live::Live::start(store.clone(), catalogue.clone(), config.live_poll, stop);
        Self {
            sessions: Sessions::new(store.database().pool().clone()),
            store,
            catalogue,
            metrics,
            dead_letters,
            config,
            live,
            public_origin,
        }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn of<'a>(ctx: &Context<'a>) -> &'a QueryApi {
        ctx.data_unchecked::<QueryApi>()
    }
}

/// The schema with its limits, without data: what `sdl` prints and `router` serves.
pub fn schema_builder() -> SchemaBuilder<Query, EmptyMutation, Subscription> {
    // The first extension wraps the others, so every error leaves with a code.
    Schema::build(Query::default(), EmptyMutation, Subscription::default())
        .extension(codes::ErrorCodes)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(8)
        .extension(limits::AliasLimit)
}

/// The schema in SDL, as checked in at `query-api/schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}
