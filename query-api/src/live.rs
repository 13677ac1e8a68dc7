//! Live updates, driven by the store so they work whichever process ran the command: one task
//! per process tails the global log (woken by this process's commits, polling for the others')
//! and broadcasts each event; a second turns movie events into catalogue rows once the read
//! models have applied them. Also the read-your-writes wait on the read models' position.

use std::sync::Arc;
use std::time::Duration;

use event_store::{EventStore, RecordedEvent};
use sqlx::Row;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tracing::warn;

use crate::catalogue::{Catalogue, MovieRecord};
use crate::error::Result;

/// Events per read while tailing.
const PAGE: u32 = 500;
/// Events and changes a slow subscriber may fall behind before it misses some.
const CAPACITY: usize = 1024;
/// How often a waiter looks at the read models' position.
const POSITION_POLL: Duration = Duration::from_millis(10);
/// How long a movie change waits for the read models before it is given as replayed instead.
const READ_MODEL_WAIT: Duration = Duration::from_secs(10);

/// What happened to a movie.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Updated,
    Removed,
}

/// A movie event and the movie's state once it applied.
#[derive(Debug, Clone)]
pub struct MovieChangeRecord {
    pub kind: ChangeKind,
    pub movie: MovieRecord,
    pub position: i64,
}

/// The process's broadcasters.
#[derive(Clone)]
pub struct Live {
    events: broadcast::Sender<Arc<RecordedEvent>>,
    movies: broadcast::Sender<Arc<MovieChangeRecord>>,
}

impl Live {
    /// Starts tailing the store from its current head; stops when `stop` turns true.
    pub fn start(
        store: EventStore,
        catalogue: Catalogue,
        poll: Duration,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let (events, _) = broadcast::channel(CAPACITY);
        let (movies, _) = broadcast::channel(CAPACITY);
        tokio::spawn(tail(store.clone(), events.clone(), poll, stop.clone()));
        tokio::spawn(movie_changes(
            store,
            catalogue,
            events.subscribe(),
            movies.clone(),
            stop,
        ));
        Self { events, movies }
    }

    pub fn events(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.events.subscribe()
    }

    pub fn movie_changes(&self) -> broadcast::Receiver<Arc<MovieChangeRecord>> {
        self.movies.subscribe()
    }
}

async fn tail(
    store: EventStore,
    sender: broadcast::Sender<Arc<RecordedEvent>>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut commits = store.commits();
    let mut after = loop {
        match store.head().await {
            Ok(head) => break head,
            Err(error) => {
                warn!(%error, "live updates cannot read the head; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    loop {
        match store.read_all(after, PAGE).await {
            Ok(events) => {
                let full = events.len() == PAGE as usize;
                for event in events {
                    after = event.position;
                    // No subscriber is not an error: the event is simply not wanted.
                    let _ = sender.send(Arc::new(event));
                }
                if full {
                    continue;
                }
            }
            Err(error) => warn!(%error, after, "live updates cannot read the log; retrying"),
        }
        tokio::select! {
            _ = commits.changed() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn movie_changes(
    store: EventStore,
    catalogue: Catalogue,
    mut events: broadcast::Receiver<Arc<RecordedEvent>>,
    sender: broadcast::Sender<Arc<MovieChangeRecord>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            event = events.recv() => event,
            _ = stop.changed() => return,
        };
        // Everything already waiting goes in one batch with one wait for the read models, so
        // a burst costs one wait, not one per event, and the task keeps up with the log.
        let mut batch = Vec::new();
        let mut next = first;
        loop {
            match next {
                Ok(event) => batch.push(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => warn!(
                    missed,
                    "movie changes fell behind the log; some were not sent"
                ),
                Err(broadcast::error::RecvError::Closed) => return,
            }
            next = match events.try_recv() {
                Ok(event) => Ok(event),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    Err(broadcast::error::RecvError::Lagged(missed))
                }
                Err(broadcast::error::TryRecvError::Closed) => {
                    Err(broadcast::error::RecvError::Closed)
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
            };
        }
        // Work only for someone listening.
        batch.retain(|event| event.aggregate_type == "Movie");
        if batch.is_empty() || sender.receiver_count() == 0 {
            continue;
        }
        let newest = batch.iter().map(|event| event.position).max().unwrap_or(0);
        let applied = match wait_for_read_models(&store, newest, READ_MODEL_WAIT).await {
            Ok(applied) => applied,
            Err(error) => {
                warn!(%error, position = newest, "movie changes not sent");
                continue;
            }
        };
        for event in &batch {
            match movie_change(&store, &catalogue, event, applied).await {
                Ok(Some(change)) => {
                    let _ = sender.send(Arc::new(change));
                }
                Ok(None) => {}
                Err(error) => warn!(%error, position = event.position, "movie change not sent"),
            }
        }
    }
}

/// The movie as the read model shows it once it has `applied` `event`; replayed from the
/// stream if the read model did not get there in time.
async fn movie_change(
    store: &EventStore,
    catalogue: &Catalogue,
    event: &RecordedEvent,
    applied: bool,
) -> Result<Option<MovieChangeRecord>> {
    let kind = match event.event_type.as_str() {
        "MovieAdded" => ChangeKind::Added,
        "MovieRemoved" => ChangeKind::Removed,
        _ => ChangeKind::Updated,
    };
    let movie = if applied {
        catalogue.movie(&event.aggregate_id).await?
    } else {
        None
    };
    let movie = match movie {
        Some(movie) => Some(movie),
        None => {
            crate::audit::movie_as_of(
                store,
                catalogue,
                &event.aggregate_id,
                None,
                Some(event.sequence),
            )
            .await?
        }
    };
    Ok(movie.map(|movie| MovieChangeRecord {
        kind,
        movie,
        position: event.position,
    }))
}

/// Waits until the read models have applied `position`, up to `bound`: true when they have.
pub async fn wait_for_read_models(
    store: &EventStore,
    position: i64,
    bound: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + bound;
    loop {
        let row = sqlx::query("SELECT position FROM projection_status WHERE name = ?")
            .bind(projectors::READ_MODELS)
            .fetch_optional(store.database().pool())
            .await?;
        let applied: i64 = match row {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        if applied >= position {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POSITION_POLL.min(deadline - Instant::now())).await;
    }
}
