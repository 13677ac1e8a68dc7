//! A MariaDB event store holding N real movie events for the replay, kept between runs.
//!
//! Appending a million events through `EventStore::append` takes minutes, so the events are
//! written with multi-row INSERTs straight into `events`, with everything the store would give
//! them: dense positions, per-stream sequences, event ids, and the hash chain of
//! `event_store::event_hash`. The payloads come from the `Movie` aggregate's own command
//! handling, so they decode as the domain's types.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use chrono::{Datelike, Utc};
use cqrs_es::Aggregate;
use domain::{
    Description, Director, Genres, Movie, MovieChanges, MovieCommand, MovieId, Poster, Title,
    UserId, Username, Year,
};
use event_store::{
    canonical_json, encode_event, event_hash, format_timestamp, now_micros, Database,
    EventMetadata, NewEvent, PoolSettings, RecordedEvent,
};
use serde::Serialize;
use sqlx::migrate::MigrateDatabase;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::MySql;
use tokio::sync::{mpsc, Mutex};
use uuid::Uuid;

/// MovieAdded, a new title, a poster, new genres and year, then a new description (or, for one
/// movie in ten, its removal).
pub const EVENTS_PER_MOVIE: u64 = 5;
/// A movie's later events come at random while the next this many movies are added, so a page
/// of the log touches movies added pages before, as a catalogue edited over time would.
pub const SPREAD: u64 = 20_000;
const ROWS_PER_INSERT: usize = 1_000;
/// INSERTs in flight at once.
const INSERTERS: usize = 2;

/// How the database came to hold the events.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Filled {
    pub events: u64,
    pub movies: u64,
    /// Whether the database of an earlier run was reused.
    pub cached: bool,
    pub seconds: f64,
}

/// Makes sure the database at `url` holds exactly `events` events (refilling it otherwise).
pub async fn ensure(url: &str, events: u64) -> Result<Filled> {
    ensure!(
        events > 0 && events.is_multiple_of(EVENTS_PER_MOVIE),
        "--events must be a positive multiple of {EVENTS_PER_MOVIE}"
    );
    let movies = events / EVENTS_PER_MOVIE;
    let started = Instant::now();
    if MySql::database_exists(url).await? && holds(url, events).await {
        return Ok(Filled {
            events,
            movies,
            cached: true,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    eprintln!("filling {url} with {events} events ({movies} movies)");
    if MySql::database_exists(url).await? {
        MySql::drop_database(url).await?;
    }
    let db = Database::connect(url, PoolSettings::default()).await?;
    db.migrate().await?;
    db.close().await;

    let pool = MySqlPoolOptions::new()
        .max_connections(INSERTERS as u32)
        .connect(url)
        .await?;
    let (batches, queue) = mpsc::channel::<Vec<Row>>(2 * INSERTERS);
    let generator = tokio::task::spawn_blocking(move || generate(movies, batches));
    let queue = Arc::new(Mutex::new(queue));
    let mut inserters = Vec::new();
    for _ in 0..INSERTERS {
        let (pool, queue) = (pool.clone(), queue.clone());
        inserters.push(tokio::spawn(async move {
            loop {
                let Some(rows) = queue.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                insert(&pool, &rows).await?;
            }
        }));
    }
    let generated = generator.await?;
    for inserter in inserters {
        inserter.await??;
    }
    let written = generated?;
    ensure!(
        written == events,
        "generated {written} events instead of {events}"
    );
    // Last, so that an interrupted fill never looks complete.
    sqlx::query("UPDATE event_store_head SET last_position = ? WHERE id = 1")
        .bind(events as i64)
        .execute(&pool)
        .await?;
    pool.close().await;
    ensure!(
        holds(url, events).await,
        "the filled database does not hold {events} events"
    );
    Ok(Filled {
        events,
        movies,
        cached: false,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Whether the database holds exactly `events` events up to a head at the last of them, and
/// the read models' FULLTEXT index that a what-if of an interrupted run may have left dropped.
async fn holds(url: &str, events: u64) -> bool {
    let counted = async {
        let pool = MySqlPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let (count, head, fulltext): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM events), \
             (SELECT last_position FROM event_store_head WHERE id = 1), \
             (SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() \
              AND table_name = 'rm_movies' AND index_name = 'rm_movies_search')",
        )
        .fetch_one(&pool)
        .await?;
        pool.close().await;
        anyhow::Ok(count == events as i64 && head == events as i64 && fulltext > 0)
    };
    counted.await.unwrap_or(false)
}

/// One `events` row, as the store writes it.
struct Row {
    position: i64,
    event_id: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    schema_version: i64,
    payload: String,
    metadata: String,
    recorded_at: String,
    prev_hash: Option<String>,
    hash: String,
}

async fn insert(pool: &MySqlPool, rows: &[Row]) -> Result<()> {
    let values = vec!["(?, ?, 'Movie', ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)"; rows.len()].join(", ");
    let sql = format!(
        "INSERT INTO events (position, event_id, aggregate_type, aggregate_id, sequence, \
         event_type, schema_version, payload, metadata, data_subject, recorded_at, prev_hash, \
         hash) VALUES {values}"
    );
    let mut statement = sqlx::query(&sql);
    for row in rows {
        statement = statement
            .bind(row.position)
            .bind(&row.event_id)
            .bind(&row.aggregate_id)
            .bind(row.sequence)
            .bind(&row.event_type)
            .bind(row.schema_version)
            .bind(&row.payload)
            .bind(&row.metadata)
            .bind(&row.recorded_at)
            .bind(&row.prev_hash)
            .bind(&row.hash);
    }
    statement.execute(pool).await?;
    Ok(())
}

/// One movie's events, waiting to be written in their turn.
struct History {
    id: String,
    /// Each with its command's metadata; taken when written.
    events: Vec<Option<(NewEvent, serde_json::Value)>>,
    prev_hash: Option<String>,
}

/// Produces the log in position order and sends it in batches; returns how many events.
fn generate(movies: u64, batches: mpsc::Sender<Vec<Row>>) -> Result<u64> {
    let mut log = Log {
        histories: HashMap::new(),
        position: 0,
        batch: Vec::with_capacity(ROWS_PER_INSERT),
        batches,
    };
    let mut random = SplitMix64(0x006d_6172_7175_6565);
    // (due when this many movies have been added, movie, index of its event)
    let mut due = BinaryHeap::new();
    for added in 0..movies {
        log.histories.insert(added, history(added)?);
        log.emit(added, 0)?;
        let mut later: Vec<u64> = (1..EVENTS_PER_MOVIE)
            .map(|_| added + 1 + random.next() % SPREAD)
            .collect();
        later.sort_unstable();
        for (index, at) in later.into_iter().enumerate() {
            due.push(Reverse((at, added, index + 1)));
        }
        while let Some(&Reverse((at, movie, index))) = due.peek() {
            if at > added {
                break;
            }
            due.pop();
            log.emit(movie, index)?;
        }
        if (added + 1) % (movies / 10).max(1) == 0 {
            eprintln!("  {} events generated", log.position);
        }
    }
    while let Some(Reverse((_, movie, index))) = due.pop() {
        log.emit(movie, index)?;
    }
    log.flush()?;
    Ok(log.position as u64)
}

struct Log {
    histories: HashMap<u64, History>,
    position: i64,
    batch: Vec<Row>,
    batches: mpsc::Sender<Vec<Row>>,
}

impl Log {
    /// Writes event `index` of `movie` at the next position, chained to the one before it.
    fn emit(&mut self, movie: u64, index: usize) -> Result<()> {
        let history = self
            .histories
            .get_mut(&movie)
            .context("a movie's events are emitted after its MovieAdded")?;
        let (new, metadata) = history.events[index]
            .take()
            .context("each event is emitted once")?;
        self.position += 1;
        let mut event = RecordedEvent {
            position: self.position,
            event_id: Uuid::new_v4(),
            aggregate_type: "Movie".into(),
            aggregate_id: history.id.clone(),
            sequence: index as i64 + 1,
            event_type: new.event_type,
            schema_version: new.schema_version,
            payload: new.payload,
            metadata,
            data_subject: None,
            recorded_at: now_micros(),
            prev_hash: history.prev_hash.take(),
            hash: String::new(),
        };
        event.hash = event_hash(event.prev_hash.as_deref(), &event);
        history.prev_hash = Some(event.hash.clone());
        if index + 1 == history.events.len() {
            self.histories.remove(&movie);
        }
        self.batch.push(Row {
            position: event.position,
            event_id: event.event_id.to_string(),
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            schema_version: i64::from(event.schema_version),
            payload: canonical_json(&event.payload),
            metadata: canonical_json(&event.metadata),
            recorded_at: format_timestamp(event.recorded_at),
            event_type: event.event_type,
            prev_hash: event.prev_hash,
            hash: event.hash,
        });
        if self.batch.len() == ROWS_PER_INSERT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.batch.is_empty() {
            let rows = std::mem::replace(&mut self.batch, Vec::with_capacity(ROWS_PER_INSERT));
            self.batches
                .blocking_send(rows)
                .map_err(|_| anyhow::anyhow!("the inserters stopped"))?;
        }
        Ok(())
    }
}

const GENRES: [&str; 8] = [
    "Drama",
    "Comedy",
    "Action",
    "Science Fiction",
    "Thriller",
    "Documentary",
    "Animation",
    "Romance",
];

/// The events the `Movie` aggregate itself makes of movie `n`'s five commands, each with the
/// metadata of its own command.
fn history(n: u64) -> Result<History> {
    let id = MovieId::from(Uuid::new_v4());
    let by = UserId::for_username(&Username::parse("bench")?);
    let now = Utc::now();
    let genre = |k: u64| GENRES[((n + k) % GENRES.len() as u64) as usize];
    let year = 1930 + (n % 80) as i32;
    let update = |changes| MovieCommand::UpdateDetails {
        changes,
        expected_version: None,
        by,
        at: now,
    };
    let last = if n.is_multiple_of(10) {
        MovieCommand::Remove {
            expected_version: None,
            by,
            at: now,
        }
    } else {
        update(MovieChanges {
            description: Some(Description::parse(&format!(
                "Restored print of film number {n}, with a new score and commentary."
            ))?),
            ..MovieChanges::default()
        })
    };
    let commands = [
        MovieCommand::Add {
            id,
            title: Title::parse(&format!("Film number {n}"))?,
            year: Year::parse(year, now.year())?,
            director: Director::parse(&format!("Director {}", n % 5_000))?,
            genres: Genres::parse([genre(0), genre(3)])?,
            description: Description::parse("A story told in pictures.")?,
            added_by: by,
            at: now,
        },
        update(MovieChanges {
            title: Some(Title::parse(&format!("Film number {n} (director's cut)"))?),
            ..MovieChanges::default()
        }),
        MovieCommand::AttachPoster {
            poster: Poster {
                original_key: format!("posters/{id}/original.png"),
                thumbnail_key: format!("posters/{id}/thumbnail.webp"),
                content_hash: format!("{:064x}", u128::from(n) * 0x9e37_79b9),
                content_type: "image/png".into(),
                width: 800,
                height: 1200,
                bytes: 250_000 + n % 100_000,
            },
            expected_version: None,
            by,
            at: now,
        },
        update(MovieChanges {
            genres: Some(Genres::parse([genre(1), genre(5), genre(6)])?),
            year: Some(Year::parse(year + 1, now.year())?),
            ..MovieChanges::default()
        }),
        last,
    ];
    let mut movie = Movie::default();
    let mut events = Vec::with_capacity(commands.len());
    for command in commands {
        let handled = futures::executor::block_on(movie.handle(command, &()))?;
        let metadata = serde_json::to_value(EventMetadata::system("bench"))?;
        for event in handled {
            events.push(Some((encode_event(&event, None)?, metadata.clone())));
            movie.apply(event);
        }
    }
    ensure!(
        events.len() as u64 == EVENTS_PER_MOVIE,
        "movie {n} made {} events",
        events.len()
    );
    Ok(History {
        id: id.to_string(),
        events,
        prev_hash: None,
    })
}

/// A small deterministic generator, so every fill interleaves the log the same way.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d4_9ce3_4c2a_f0b5);
        z ^ (z >> 31)
    }
}
