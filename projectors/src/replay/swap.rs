//! The read models' replay on MySQL: new tables loaded beside the live ones and swapped in by
//! one `RENAME TABLE`.
//!
//! Written into the live tables in one transaction, every movie row costs InnoDB its four
//! secondary indexes row by row and its FULLTEXT document at the commit, all on one connection
//! after the fold. Here each table is copied empty (`<table>__replay`, `CREATE TABLE … LIKE`),
//! its secondary indexes dropped, loaded in key order over a connection of its own (sqlx's own
//! MySQL driver), and indexed once by `ALTER TABLE … ADD …`, which sorts instead of inserting
//! (and tokenises the FULLTEXT documents on several threads).
//!
//! The protocol, and why neither readers nor a live projector can tell:
//!
//! 1. The log is folded up to its head without locks, as on the transactional path.
//! 2. A transaction on the pool (A) takes the projection's status row, as every live apply does
//!    with its first statement; what arrived meanwhile is folded. From here a live apply waits
//!    on that row, before it has touched any read-model table.
//! 3. Beside each other: A replaces the projection's stream guards, moves its position and marks
//!    the row `swapping_since` (invisible until A commits); each copy is loaded and indexed
//!    (nobody reads the copies).
//! 4. A commits. Guards and position are now those of the copies, still beside the live tables;
//!    a live apply that waited, or comes later, finds the mark and refuses
//!    (`ProjectorError::ReplaySwapping`, retried like any failure) without applying anything.
//! 5. One `RENAME TABLE` swaps every live table for its copy (MySQL renames several tables in
//!    one atomic step). It waits for the statements using the live tables to finish, and readers
//!    arriving meanwhile wait for it: each statement sees all the old tables or all the new.
//! 6. The mark is cleared: live applies go on, over the new tables, and their guards drop every
//!    event the replay folded, so each event is applied once. The old tables
//!    (`<table>__replaced`) are dropped.
//!
//! If anything fails before step 4, A rolls back and the copies are dropped: nothing changed.
//! DDL commits by itself, so 4 and 5 are two commits, not one. If the process dies between
//! them, or the swap fails, the mark stays: live applies keep refusing (the projection's status
//! shows why) instead of applying again what the guards say is in, until a replay, which takes
//! the status row whatever its mark, replaces tables, guards and position again. The
//! transactional path needs no mark.
//!
//! It needs CREATE, ALTER and DROP on the database; the app user of `deploy/app-user.sql` has
//! no DDL, and then (or when the tables' columns are not the ones written here) the replay
//! writes into the live tables in one transaction, as on SQLite.

use std::time::{Duration, Instant};

use chrono::Utc;
use event_store::format_timestamp;
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySqlArguments, MySqlConnection, MySqlDatabaseError, MySqlRow};
use sqlx::{Arguments, Connection, Executor, Row};
use tracing::{error, info, warn};

use super::{write_position, Fold, ReplayMethod, ReplayReport, Steps};
use crate::engine::{lock_status, Projector, Rebuild};
use crate::error::{ProjectorError, Result};
use crate::pipeline::Failpoint;
use crate::read_models::{
    LoginRow, MovieRow, ReadModel, UserRow, GENRE_FIELDS, LOGIN_FIELDS, MOVIE_FIELDS, USER_FIELDS,
};

/// Suffix of the tables being loaded.
const LOADING: &str = "__replay";
/// Suffix of the live tables once swapped out, until dropped.
const REPLACED: &str = "__replaced";
/// The named lock that keeps two swaps of one database apart (the copies have fixed names),
/// followed by the database's name (MySQL's lock names are per server, at most 64 characters).
const SWAP_LOCK: &str = "marquee-replay-read-models:";
/// How long a second replay waits for the first.
const SWAP_LOCK_WAIT_SECONDS: i64 = 300;
/// How long the swap waits for statements using the live tables, per attempt.
const RENAME_LOCK_WAIT_SECONDS: i64 = 10;
const RENAME_ATTEMPTS: usize = 3;
/// Bound values per INSERT: under MySQL's 65,535 placeholders.
const VALUES_PER_STATEMENT: usize = 14_000;
/// MySQL's error numbers for a missing privilege.
const ACCESS_DENIED: [u32; 4] = [1044, 1142, 1143, 1227];

const MOVIES: &str = "rm_movies";
const GENRES: &str = "rm_movie_genres";
const USERS: &str = "rm_users";
const LOGINS: &str = "rm_logins";

/// The columns this module writes (the live path's, in its order), per table of
/// `ReadModel::tables`; the fast path declines when a live table has others, so a new column
/// can never be left out silently.
fn columns_of(table: &str) -> Option<&'static [&'static str]> {
    match table {
        MOVIES => Some(&MOVIE_FIELDS),
        GENRES => Some(&GENRE_FIELDS),
        USERS => Some(&USER_FIELDS),
        LOGINS => Some(&LOGIN_FIELDS),
        _ => None,
    }
}

/// Replays the read models by loading new tables and swapping them in; `None`, having changed
/// nothing, when the database does not allow it (then the caller writes in one transaction).
pub(super) async fn replay(
    projector: &Projector,
    steps: &mut Steps,
) -> Result<Option<ReplayReport>> {
    let store = projector.store();
    let db = store.database();
    let Some(mut ddl) = db.connect_native().await? else {
        return Ok(None);
    };
    let tables = ReadModel::default().tables();
    take_swap_lock(&mut ddl).await?;
    let copies = match Copies::create(&mut ddl, tables).await {
        Ok(Some(copies)) => copies,
        Ok(None) => {
            release_swap_lock(ddl).await;
            return Ok(None);
        }
        Err(error) => {
            drop_tables(&mut ddl, tables, LOADING).await;
            release_swap_lock(ddl).await;
            return Err(error);
        }
    };
    steps.done("create the new tables");
    let swapped = swap(projector, &mut ddl, &copies, steps).await;
    if swapped.is_err() {
        drop_tables(&mut ddl, tables, LOADING).await;
    }
    release_swap_lock(ddl).await;
    swapped.map(Some)
}

async fn swap(
    projector: &Projector,
    ddl: &mut MySqlConnection,
    copies: &Copies,
    steps: &mut Steps,
) -> Result<ReplayReport> {
    let name = projector.name();
    let store = projector.store();
    let db = store.database();
    let fold = Fold::new(Box::new(ReadModel::default()))
        .read_to_head(store)
        .await?;
    steps.done("fold the log (read beside)");

    // 2. Live applies wait from here.
    let mut tx = db.begin_write().await?;
    lock_status(&mut tx, db.backend(), name).await?;
    let fold = fold.read_to_head(store).await?;
    steps.done("take the status row, fold what arrived");

    // 3. Each table loaded and indexed over its own connection, and the guards, beside each other.
    let mut genres_conn = connect(projector).await?;
    let mut people_conn = connect(projector).await?;
    let model = &*fold.rebuild;
    let movies: Vec<&MovieRow> = model.movies.values().collect();
    let guards = async {
        let started = Instant::now();
        let since = format_timestamp(Utc::now());
        write_position(
            &mut tx,
            db.backend(),
            name,
            &fold.guards,
            fold.position,
            Some(&since),
        )
        .await?;
        Ok::<_, ProjectorError>(vec![(
            "write the guards and position".to_owned(),
            started.elapsed(),
        )])
    };
    let load_movies = load_and_index(ddl, copies, MOVIES, &movies);
    let load_genres = load_and_index(&mut genres_conn, copies, GENRES, &movies);
    let load_people = async {
        let started = Instant::now();
        load_people(&mut people_conn, model).await?;
        copies.index(&mut people_conn, USERS).await?;
        copies.index(&mut people_conn, LOGINS).await?;
        Ok::<_, ProjectorError>(vec![(
            format!("load and index {USERS}, {LOGINS}"),
            started.elapsed(),
        )])
    };
    let (guards, movies_times, genres_times, people_times) =
        tokio::try_join!(guards, load_movies, load_genres, load_people)?;
    for (step, elapsed) in [guards, movies_times, genres_times, people_times]
        .into_iter()
        .flatten()
    {
        steps.beside(step, elapsed);
    }
    steps.done("load and index the new tables, write the guards (beside each other)");
    let _ = genres_conn.close().await;
    let _ = people_conn.close().await;

    // 4. to 6.
    tx.commit().await?;
    steps.done("commit the guards, position and mark");
    if projector.failpoint() == Some(Failpoint::ReplayBeforeSwap) {
        error!(
            projection = name,
            "failpoint replay-before-swap: aborting after the commit"
        );
        std::process::abort();
    }
    if let Err(failed) = rename(ddl, &copies.tables).await {
        error!(
            projection = name,
            %failed,
            "replay: the new guards are in but the new tables are not; live applies wait \
             until the replay is run again"
        );
        return Err(failed);
    }
    steps.done("swap the tables in (RENAME TABLE)");
    clear_mark(projector).await?;
    steps.done("clear the mark");
    drop_tables(ddl, &copies.tables, REPLACED).await;
    steps.done("drop the old tables");
    info!(
        projection = name,
        events = fold.events,
        "read models swapped in"
    );
    Ok(steps.report(name, fold.events, ReplayMethod::Swap))
}

/// Loads `table`'s copy (rm_movies or rm_movie_genres, both written from the movie rows) in one
/// transaction, then adds its indexes; returns both steps' times.
async fn load_and_index(
    conn: &mut MySqlConnection,
    copies: &Copies,
    table: &'static str,
    movies: &[&MovieRow],
) -> Result<Vec<(String, Duration)>> {
    let started = Instant::now();
    let mut load = conn.begin().await?;
    insert_movie_rows(&mut load, table, movies).await?;
    load.commit().await?;
    let loaded = started.elapsed();
    let started = Instant::now();
    copies.index(conn, table).await?;
    Ok(vec![
        (format!("load {table}"), loaded),
        (format!("index {table}"), started.elapsed()),
    ])
}

/// Step 6: live applies may go on.
async fn clear_mark(projector: &Projector) -> Result<()> {
    sqlx::query("UPDATE projection_status SET swapping_since = NULL WHERE name = ?")
        .bind(projector.name())
        .execute(projector.store().database().pool())
        .await?;
    Ok(())
}

async fn connect(projector: &Projector) -> Result<MySqlConnection> {
    let conn = projector.store().database().connect_native().await?;
    conn.ok_or_else(|| sqlx::Error::Protocol("no native connection to MySQL".into()).into())
}

async fn take_swap_lock(ddl: &mut MySqlConnection) -> Result<()> {
    let taken: Option<i64> = sqlx::query("SELECT GET_LOCK(LEFT(CONCAT(?, DATABASE()), 64), ?)")
        .bind(SWAP_LOCK)
        .bind(SWAP_LOCK_WAIT_SECONDS)
        .fetch_one(&mut *ddl)
        .await?
        .try_get(0)?;
    if taken != Some(1) {
        return Err(sqlx::Error::Protocol(format!(
            "another replay of the read models held {SWAP_LOCK} for {SWAP_LOCK_WAIT_SECONDS} s"
        ))
        .into());
    }
    Ok(())
}

async fn release_swap_lock(mut ddl: MySqlConnection) {
    let _ = sqlx::query("SELECT RELEASE_LOCK(LEFT(CONCAT(?, DATABASE()), 64))")
        .bind(SWAP_LOCK)
        .execute(&mut ddl)
        .await;
    let _ = ddl.close().await;
}

/// The new tables and the secondary indexes each gets once loaded.
struct Copies {
    tables: Vec<&'static str>,
    /// Per table, its `ADD …` clauses (from `SHOW CREATE TABLE`).
    indexes: Vec<Vec<String>>,
}

impl Copies {
    /// Creates `<table>__replay` like each live table, without its secondary indexes; `None`
    /// (and nothing left behind) when the user may not, or a table has columns this module
    /// does not write.
    async fn create(
        ddl: &mut MySqlConnection,
        tables: &'static [&'static str],
    ) -> Result<Option<Self>> {
        // Left by a replay that died (the swap lock is ours, so no other is running).
        drop_tables(ddl, tables, LOADING).await;
        drop_tables(ddl, tables, REPLACED).await;
        let mut copies = Self {
            tables: Vec::new(),
            indexes: Vec::new(),
        };
        for &table in tables {
            let Some(columns) = columns_of(table) else {
                warn!(table, "replay: a read-model table this module does not write; one transaction instead");
                drop_tables(ddl, tables, LOADING).await;
                return Ok(None);
            };
            if !same_columns(ddl, table, columns).await? {
                warn!(
                    table,
                    "replay: the table's columns changed; one transaction instead"
                );
                drop_tables(ddl, tables, LOADING).await;
                return Ok(None);
            }
            let copy = format!("{table}{LOADING}");
            let created = ddl
                .execute(format!("CREATE TABLE {copy} LIKE {table}").as_str())
                .await;
            if let Err(error) = created {
                drop_tables(ddl, tables, LOADING).await;
                if denied(&error) {
                    info!(%error, "replay: no DDL rights; one transaction instead");
                    return Ok(None);
                }
                return Err(error.into());
            }
            copies.tables.push(table);
            let indexes = secondary_indexes(ddl, &copy).await?;
            if !indexes.is_empty() {
                let drops: Vec<String> = indexes
                    .iter()
                    .map(|(name, _)| format!("DROP INDEX `{name}`"))
                    .collect();
                let dropped = ddl
                    .execute(format!("ALTER TABLE {copy} {}", drops.join(", ")).as_str())
                    .await;
                if let Err(error) = dropped {
                    drop_tables(ddl, tables, LOADING).await;
                    if denied(&error) {
                        info!(%error, "replay: no ALTER right; one transaction instead");
                        return Ok(None);
                    }
                    return Err(error.into());
                }
            }
            copies.indexes.push(
                indexes
                    .into_iter()
                    .map(|(_, add)| format!("ADD {add}"))
                    .collect(),
            );
        }
        Ok(Some(copies))
    }

    /// Adds the copy's secondary indexes back, all in one ALTER (one pass over the rows).
    async fn index(&self, conn: &mut MySqlConnection, table: &str) -> Result<()> {
        let Some(at) = self.tables.iter().position(|t| *t == table) else {
            return Ok(());
        };
        if self.indexes[at].is_empty() {
            return Ok(());
        }
        conn.execute(
            format!(
                "ALTER TABLE {table}{LOADING} {}",
                self.indexes[at].join(", ")
            )
            .as_str(),
        )
        .await?;
        Ok(())
    }
}

fn denied(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|e| ACCESS_DENIED.contains(&u32::from(e.number())))
}

async fn same_columns(conn: &mut MySqlConnection, table: &str, written: &[&str]) -> Result<bool> {
    let rows: Vec<MySqlRow> = sqlx::query(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut live = rows
        .iter()
        .map(|row| Ok(row.try_get_unchecked::<&str, _>(0)?.to_owned()))
        .collect::<Result<Vec<String>>>()?;
    let mut written: Vec<String> = written.iter().map(|c| (*c).to_owned()).collect();
    live.sort();
    written.sort();
    Ok(live == written)
}

/// `(name, definition)` of every index but the primary key, as `SHOW CREATE TABLE` prints it
/// (prefix lengths, FULLTEXT and UNIQUE included).
async fn secondary_indexes(
    conn: &mut MySqlConnection,
    table: &str,
) -> Result<Vec<(String, String)>> {
    let show = format!("SHOW CREATE TABLE {table}");
    let row = conn.fetch_one(show.as_str()).await?;
    let create = row.try_get_unchecked::<&str, _>(1)?;
    Ok(create
        .lines()
        .map(str::trim)
        .filter(|line| {
            ["KEY ", "UNIQUE KEY ", "FULLTEXT KEY ", "SPATIAL KEY "]
                .iter()
                .any(|kind| line.starts_with(kind))
        })
        .filter_map(|line| {
            let definition = line.trim_end_matches(',').to_owned();
            let name = definition.split('`').nth(1)?.to_owned();
            Some((name, definition))
        })
        .collect())
}

async fn rename(ddl: &mut MySqlConnection, tables: &[&str]) -> Result<()> {
    let pairs: Vec<String> = tables
        .iter()
        .map(|t| format!("{t} TO {t}{REPLACED}, {t}{LOADING} TO {t}"))
        .collect();
    let rename = format!("RENAME TABLE {}", pairs.join(", "));
    ddl.execute(format!("SET SESSION lock_wait_timeout = {RENAME_LOCK_WAIT_SECONDS}").as_str())
        .await?;
    let mut attempt = 1;
    loop {
        match ddl.execute(rename.as_str()).await {
            Ok(_) => return Ok(()),
            // ER_LOCK_WAIT_TIMEOUT: a long statement on a live table; readers queued behind the
            // swap meanwhile, so let them through before trying again.
            Err(error)
                if attempt < RENAME_ATTEMPTS
                    && error
                        .as_database_error()
                        .and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>())
                        .is_some_and(|e| e.number() == 1205) =>
            {
                warn!(
                    attempt,
                    "replay: the swap waited {RENAME_LOCK_WAIT_SECONDS} s for readers; again"
                );
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Drops `<table><suffix>` for each table, if there; failures are left for the next replay.
async fn drop_tables(conn: &mut MySqlConnection, tables: &[&str], suffix: &str) {
    let names: Vec<String> = tables.iter().map(|t| format!("{t}{suffix}")).collect();
    let dropped = conn
        .execute(format!("DROP TABLE IF EXISTS {}", names.join(", ")).as_str())
        .await;
    if let Err(error) = dropped {
        warn!(%error, "replay: could not drop {}", names.join(", "));
    }
}

/// Binds one row's values, in column order.
type Bind<T> = fn(&mut MySqlArguments, T) -> std::result::Result<(), BoxDynError>;

/// Inserts `rows` into `<table>__replay` in multi-row INSERTs.
async fn insert_all<T: Copy>(
    conn: &mut MySqlConnection,
    table: &str,
    columns: &[&str],
    ignore: bool,
    rows: &[T],
    bind: Bind<T>,
) -> Result<()> {
    let per_statement = (VALUES_PER_STATEMENT / columns.len()).max(1);
    let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
    let verb = if ignore { "INSERT IGNORE" } else { "INSERT" };
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "{verb} INTO {table}{LOADING} ({}) VALUES {}",
            columns.join(", "),
            vec![tuple.as_str(); chunk.len()].join(", ")
        );
        let mut arguments = MySqlArguments::default();
        for row in chunk {
            bind(&mut arguments, *row).map_err(sqlx::Error::Encode)?;
        }
        sqlx::query_with(&sql, arguments)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Movie rows into `rm_movies`, or their genres into `rm_movie_genres`.
async fn insert_movie_rows(
    conn: &mut MySqlConnection,
    table: &str,
    movies: &[&MovieRow],
) -> Result<()> {
    if table == GENRES {
        let rows: Vec<(&str, &str)> = movies
            .iter()
            .flat_map(|m| m.genres.iter().map(|g| (m.id.as_str(), g.as_str())))
            .collect();
        // The column's collation may equate two genres the domain keeps apart (accents): one row.
        return insert_all(
            conn,
            GENRES,
            &GENRE_FIELDS,
            true,
            &rows,
            |a, (movie, genre)| {
                a.add(movie)?;
                a.add(genre)
            },
        )
        .await;
    }
    insert_all(conn, MOVIES, &MOVIE_FIELDS, false, movies, |a, m| {
        a.add(m.id.as_str())?;
        a.add(m.title.as_str())?;
        a.add(m.year)?;
        a.add(m.director.as_str())?;
        a.add(serde_json::to_string(&m.genres)?)?;
        a.add(m.description.as_str())?;
        a.add(m.poster_key.as_deref())?;
        a.add(m.thumbnail_key.as_deref())?;
        a.add(m.added_by.as_str())?;
        a.add(m.added_at.as_str())?;
        a.add(m.updated_at.as_str())?;
        a.add(m.version)?;
        a.add(i64::from(m.removed))?;
        a.add(m.position)
    })
    .await
}

/// Users and sign-ins, each table in one transaction.
async fn load_people(conn: &mut MySqlConnection, model: &ReadModel) -> Result<()> {
    let users: Vec<&UserRow> = model.users.values().collect();
    let mut tx = conn.begin().await?;
    insert_all(&mut tx, USERS, &USER_FIELDS, false, &users, |a, u| {
        a.add(u.id.as_str())?;
        a.add(u.username.as_str())?;
        a.add(u.email.as_str())?;
        a.add(serde_json::to_string(&u.roles)?)?;
        a.add(u.passkeys)?;
        a.add(u.locked_until.as_deref())?;
        a.add(u.registered_at.as_str())?;
        a.add(u.version)?;
        a.add(u.position)
    })
    .await?;
    let logins: Vec<&LoginRow> = model.logins.values().collect();
    insert_all(&mut tx, LOGINS, &LOGIN_FIELDS, false, &logins, |a, l| {
        a.add(l.position)?;
        a.add(l.user_id.as_str())?;
        a.add(l.username.as_str())?;
        a.add(l.at.as_str())?;
        a.add(l.method.as_str())?;
        a.add(i64::from(l.succeeded))?;
        a.add(l.reason.as_deref())?;
        a.add(l.ip.as_deref())
    })
    .await?;
    tx.commit().await?;
    Ok(())
}
