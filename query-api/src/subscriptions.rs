//! `movieChanged` (anyone) and `eventAppended` (auditors and admins), from the process's
//! broadcasters in `live`.

use std::sync::Arc;

use async_graphql::{Context, SimpleObject, Subscription, ID};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tracing::warn;

use crate::audit::Event;
use crate::auth::AUDITOR_OR_ADMIN;
use crate::catalogue::MovieRecord;
use crate::live::{ChangeKind, MovieChangeRecord};
use crate::QueryApi;

#[derive(SimpleObject)]
pub struct MovieChange {
    pub kind: ChangeKind,
    /// The movie once the change applied.
    pub movie: MovieRecord,
    /// The event's position: give it as `X-Min-Position` to read it back.
    pub position: i64,
}

#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// Every change of the movie `id`, or of any movie.
    async fn movie_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> impl Stream<Item = MovieChange> {
        let changes = QueryApi::of(ctx).live.movie_changes();
        received(changes).filter_map(move |change: Arc<MovieChangeRecord>| {
            let wanted = id.as_ref().is_none_or(|id| id.0 == change.movie.id);
            futures::future::ready(wanted.then(|| MovieChange {
                kind: change.kind,
                movie: change.movie.clone(),
                position: change.position,
            }))
        })
    }

    /// Every event stored from now on, or those of one aggregate type.
    #[graphql(guard = "AUDITOR_OR_ADMIN")]
    async fn event_appended(
        &self,
        ctx: &Context<'_>,
        aggregate_type: Option<String>,
    ) -> impl Stream<Item = Event> {
        let events = QueryApi::of(ctx).live.events();
        received(events).filter_map(move |event: Arc<event_store::RecordedEvent>| {
            let wanted = aggregate_type
                .as_ref()
                .is_none_or(|kind| *kind == event.aggregate_type);
            futures::future::ready(wanted.then(|| Event((*event).clone())))
        })
    }
}

/// A broadcast receiver as a stream; a subscriber too slow to keep up skips what it missed.
fn received<T: Clone + Send + 'static>(receiver: broadcast::Receiver<T>) -> impl Stream<Item = T> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(item) => return Some((item, receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!(missed, "a subscriber fell behind; it misses some updates");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
