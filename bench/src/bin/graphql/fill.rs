//! The catalogue the benchmark searches: N movies added through the event store (the path
//! `POST /api/movies` takes), then the read models rebuilt by the release `marquee replay`, kept
//! between runs while they hold exactly N movies.
//!
//! Titles, directors and descriptions are made of words from one fixed vocabulary, so a search
//! for one of them matches a few hundred movies, and each term matches different ones.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use chrono::{Datelike, Utc};
use domain::{
    Description, Director, Genres, Movie, MovieCommand, MovieId, Title, UserId, Username, Year,
};
use event_store::{CommandContext, EventMetadata, EventStore, PoolSettings};
use serde::Serialize;
use sqlx::migrate::MigrateDatabase;
use sqlx::{Connection, MySql, MySqlConnection};
use tokio::process::Command;
use uuid::Uuid;

/// Words in the vocabulary: with 12 words a movie, each word is in about 200 of 100,000 movies.
const VOCABULARY: usize = 6_000;
/// Search terms the clients cycle through, spread over the vocabulary.
const SEARCH_TERMS: usize = 256;
/// Commands in flight while filling, so the store's group commit has batches to write.
const WRITERS: u64 = 64;
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

/// How the database came to hold the catalogue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Filled {
    pub movies: u64,
    /// Whether the database of an earlier run was reused.
    pub cached: bool,
    pub seconds: f64,
}

/// The fixed vocabulary: nine-letter words of three consonant-vowel-consonant syllables, so no
/// word is a prefix of another and none is a FULLTEXT stopword.
pub struct Vocabulary {
    words: Vec<String>,
}

impl Vocabulary {
    pub fn new() -> Self {
        const ONSETS: &[u8] = b"bdfgklmnprstvz";
        const VOWELS: &[u8] = b"aeiou";
        const CODAS: &[u8] = b"lnrst";
        let mut random = SplitMix64(0x6772_6170_6871_6c21);
        let mut words = std::collections::BTreeSet::new();
        while words.len() < VOCABULARY {
            let mut word = String::with_capacity(9);
            for _ in 0..3 {
                let pick = |set: &[u8], n: u64| set[(n % set.len() as u64) as usize] as char;
                word.push(pick(ONSETS, random.next()));
                word.push(pick(VOWELS, random.next()));
                word.push(pick(CODAS, random.next()));
            }
            words.insert(word);
        }
        Self {
            words: words.into_iter().collect(),
        }
    }

    /// The terms the clients search for, in a fixed order.
    pub fn search_terms(&self) -> Vec<String> {
        (0..SEARCH_TERMS)
            .map(|i| self.words[i * (VOCABULARY / SEARCH_TERMS)].clone())
            .collect()
    }

    fn phrase(&self, random: &mut SplitMix64, words: usize) -> String {
        (0..words)
            .map(|_| self.words[(random.next() % VOCABULARY as u64) as usize].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Makes sure the database at `url` holds exactly `movies` movies in its read models, adding
/// them and replaying with `marquee` (run with `env`) otherwise.
pub async fn ensure(
    url: &str,
    movies: u64,
    marquee: &Path,
    env: &[(&'static str, String)],
) -> Result<Filled> {
    let started = Instant::now();
    if MySql::database_exists(url).await? && holds(url, movies).await {
        return Ok(Filled {
            movies,
            cached: true,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    if MySql::database_exists(url).await? {
        MySql::drop_database(url).await?;
    }
    eprintln!("adding {movies} movies through the event store at {url}");
    let store = EventStore::open(
        url,
        PoolSettings {
            max_connections: 8,
            ..PoolSettings::default()
        },
        projectors::domain_upcaster(),
    )
    .await?;
    let vocabulary = Arc::new(Vocabulary::new());
    let next = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (store, vocabulary, next) = (store.clone(), vocabulary.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            let context = CommandContext {
                metadata: EventMetadata::system("bench"),
                data_subject: None,
            };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= movies {
                    return anyhow::Ok(());
                }
                let id = MovieId::from(Uuid::new_v4());
                store
                    .execute_new::<Movie>(&id.to_string(), add(&vocabulary, id, n)?, &(), &context)
                    .await?;
                if (n + 1) % (movies / 10).max(1) == 0 {
                    eprintln!("  {} movies added", n + 1);
                }
            }
        }));
    }
    for writer in writers {
        writer.await??;
    }
    store.database().close().await;

    eprintln!("marquee replay --projection read-models");
    let status = Command::new(marquee)
        .args(["replay", "--projection", "read-models"])
        .env("DATABASE_URL", url)
        .env("MARQUEE_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .await
        .context("running marquee replay")?;
    ensure!(status.success(), "marquee replay failed: {status}");
    ensure!(
        holds(url, movies).await,
        "after the replay the read models do not hold {movies} movies"
    );
    Ok(Filled {
        movies,
        cached: false,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Whether the store holds exactly `movies` events and the read models all of them, applied.
async fn holds(url: &str, movies: u64) -> bool {
    let counted = async {
        let mut conn = MySqlConnection::connect(url).await?;
        let (events, rows, applied): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM events), \
             (SELECT COUNT(*) FROM rm_movies WHERE removed = 0), \
             (SELECT COALESCE(MAX(position), 0) FROM projection_status WHERE name = 'read-models')",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        anyhow::Ok(events == movies as i64 && rows == movies as i64 && applied == movies as i64)
    };
    counted.await.unwrap_or(false)
}

/// Movie `n`'s Add command, with words drawn from the vocabulary by a generator seeded with `n`.
fn add(vocabulary: &Vocabulary, id: MovieId, n: u64) -> Result<MovieCommand> {
    let mut random = SplitMix64(n);
    let now = Utc::now();
    let genre = |k: u64| GENRES[((n + k) % GENRES.len() as u64) as usize];
    Ok(MovieCommand::Add {
        id,
        title: Title::parse(&vocabulary.phrase(&mut random, 3))?,
        year: Year::parse(1930 + (n % 95) as i32, now.year())?,
        director: Director::parse(&vocabulary.phrase(&mut random, 2))?,
        genres: Genres::parse([genre(0), genre(3)])?,
        description: Description::parse(&vocabulary.phrase(&mut random, 7))?,
        added_by: UserId::for_username(&Username::parse("bench")?),
        at: now,
    })
}

/// A small deterministic generator, so every fill writes the same words.
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
