//! The query side's tables: the catalogue (with full-text search), users with their roles and
//! passkey counts, and every sign-in attempt. The fold from events to rows is pure
//! (`ReadModel::apply`); loading and saving rows is the only SQL.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use domain::{LoginFailureReason, LoginMethod, MovieEvent, UserEvent, ERASED};
use event_store::{format_timestamp, text_column, Backend, RecordedEvent};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::engine::{Projection, Rebuild};
use crate::error::Result;
use crate::facts::{fact, Fact};
use crate::sql::{self, insert_rows, key_chunks, placeholders, OnConflict, Tx, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct MovieRow {
    pub id: String,
    pub title: String,
    pub year: i64,
    pub director: String,
    pub genres: Vec<String>,
    pub description: String,
    pub poster_key: Option<String>,
    pub thumbnail_key: Option<String>,
    pub added_by: String,
    pub added_at: String,
    pub updated_at: String,
    pub version: i64,
    pub removed: bool,
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    /// Sorted, without duplicates.
    pub roles: Vec<String>,
    pub passkeys: i64,
    pub locked_until: Option<String>,
    pub registered_at: String,
    pub version: i64,
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoginRow {
    pub position: i64,
    pub user_id: String,
    pub username: String,
    pub at: String,
    pub method: String,
    pub succeeded: bool,
    pub reason: Option<String>,
    pub ip: Option<String>,
}

/// The rows an event batch touches (live), or every row (replay and comparison).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadModel {
    pub movies: BTreeMap<String, MovieRow>,
    pub users: BTreeMap<String, UserRow>,
    pub logins: BTreeMap<i64, LoginRow>,
    /// Users whose personal data was erased in this batch: their stored sign-ins lose the
    /// address too (a replay reads those addresses as erased from the store).
    pub erased: BTreeSet<String>,
}

impl ReadModel {
    /// Applies one event to the rows it touches; those rows must already be loaded.
    pub fn apply(&mut self, event: &RecordedEvent, fact: &Fact) {
        let id = &event.aggregate_id;
        match fact {
            Fact::Movie(MovieEvent::MovieAdded(added)) => {
                self.movies.insert(
                    id.clone(),
                    MovieRow {
                        id: id.clone(),
                        title: added.title.to_string(),
                        year: i64::from(added.year.value()),
                        director: added.director.to_string(),
                        genres: added
                            .genres
                            .as_slice()
                            .iter()
                            .map(|g| g.to_string())
                            .collect(),
                        description: added.description.to_string(),
                        poster_key: None,
                        thumbnail_key: None,
                        added_by: added.added_by.to_string(),
                        added_at: format_timestamp(added.at),
                        updated_at: format_timestamp(added.at),
                        version: event.sequence,
                        removed: false,
                        position: event.position,
                    },
                );
            }
            Fact::Movie(movie_event) => {
                let Some(movie) = self.movies.get_mut(id) else {
                    return;
                };
                match movie_event {
                    MovieEvent::MovieAdded(_) => unreachable!("handled above"),
                    MovieEvent::MovieDetailsUpdated(updated) => {
                        let changes = &updated.changes;
                        if let Some(title) = &changes.title {
                            movie.title = title.to_string();
                        }
                        if let Some(year) = changes.year {
                            movie.year = i64::from(year.value());
                        }
                        if let Some(director) = &changes.director {
                            movie.director = director.to_string();
                        }
                        if let Some(genres) = &changes.genres {
                            movie.genres =
                                genres.as_slice().iter().map(|g| g.to_string()).collect();
                        }
                        if let Some(description) = &changes.description {
                            movie.description = description.to_string();
                        }
                        movie.updated_at = format_timestamp(updated.at);
                    }
                    MovieEvent::PosterAttached(attached) => {
                        movie.poster_key = Some(attached.poster.original_key.clone());
                        movie.thumbnail_key = Some(attached.poster.thumbnail_key.clone());
                        movie.updated_at = format_timestamp(attached.at);
                    }
                    MovieEvent::MovieRemoved(removed) => {
                        movie.removed = true;
                        movie.updated_at = format_timestamp(removed.at);
                    }
                }
                movie.version = event.sequence;
                movie.position = event.position;
            }
            Fact::User(UserEvent::UserRegistered(registered)) => {
                self.users.insert(
                    id.clone(),
                    UserRow {
                        id: id.clone(),
                        username: registered.username.to_string(),
                        email: registered.email.to_string(),
                        roles: registered
                            .roles
                            .iter()
                            .map(|r| r.as_str().to_owned())
                            .collect(),
                        passkeys: 0,
                        locked_until: None,
                        registered_at: format_timestamp(registered.at),
                        version: event.sequence,
                        position: event.position,
                    },
                );
            }
            Fact::User(user_event) => {
                let Some(user) = self.users.get_mut(id) else {
                    return;
                };
                let login = |at,
                             method: LoginMethod,
                             reason: Option<LoginFailureReason>,
                             ip: &Option<String>| LoginRow {
                    position: event.position,
                    user_id: id.clone(),
                    username: user.username.clone(),
                    at: format_timestamp(at),
                    method: method.as_str().to_owned(),
                    succeeded: reason.is_none(),
                    reason: reason.map(reason_name),
                    ip: ip.clone(),
                };
                match user_event {
                    UserEvent::UserRegistered(_) => unreachable!("handled above"),
                    UserEvent::PasswordLoginSucceeded(ok) => {
                        let row = login(ok.at, LoginMethod::Password, None, &ok.ip);
                        self.logins.insert(event.position, row);
                    }
                    UserEvent::PasskeyLoginSucceeded(ok) => {
                        let row = login(ok.at, LoginMethod::Passkey, None, &ok.ip);
                        self.logins.insert(event.position, row);
                    }
                    UserEvent::LoginFailed(failed) => {
                        let row = login(failed.at, failed.method, Some(failed.reason), &failed.ip);
                        self.logins.insert(event.position, row);
                    }
                    UserEvent::PasskeyRegistered(_) => user.passkeys += 1,
                    UserEvent::AccountLocked(locked) => {
                        user.locked_until = Some(format_timestamp(locked.until));
                    }
                    UserEvent::AccountUnlocked(_) => user.locked_until = None,
                    UserEvent::RoleGranted(granted) => {
                        let role = granted.role.as_str().to_owned();
                        if let Err(at) = user.roles.binary_search(&role) {
                            user.roles.insert(at, role);
                        }
                    }
                    UserEvent::PersonalDataErased(_) => {
                        user.email = ERASED.to_owned();
                        for login in self.logins.values_mut().filter(|l| &l.user_id == id) {
                            if login.ip.is_some() {
                                login.ip = Some(ERASED.to_owned());
                            }
                        }
                        self.erased.insert(id.clone());
                    }
                }
                user.version = event.sequence;
                user.position = event.position;
            }
        }
    }

    /// The rows `events` touch, read from the tables.
    pub async fn load_touched(tx: &mut Tx, events: &[RecordedEvent]) -> Result<Self> {
        let ids_of = |aggregate_type: &str| {
            let mut ids: Vec<String> = events
                .iter()
                .filter(|e| e.aggregate_type == aggregate_type)
                .map(|e| e.aggregate_id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let mut model = Self::default();
        for chunk in key_chunks(&ids_of("Movie")) {
            let sql = format!(
                "SELECT {MOVIE_COLUMNS} FROM rm_movies WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let values: Vec<Value> = chunk.iter().map(|id| Value::from(id.as_str())).collect();
            for row in sql::bind_all(sqlx::query(&sql), &values)
                .fetch_all(&mut **tx)
                .await?
            {
                let movie = movie_row(&row)?;
                model.movies.insert(movie.id.clone(), movie);
            }
        }
        for chunk in key_chunks(&ids_of("User")) {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM rm_users WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let values: Vec<Value> = chunk.iter().map(|id| Value::from(id.as_str())).collect();
            for row in sql::bind_all(sqlx::query(&sql), &values)
                .fetch_all(&mut **tx)
                .await?
            {
                let user = user_row(&row)?;
                model.users.insert(user.id.clone(), user);
            }
        }
        Ok(model)
    }

    /// Every row of the live tables (for comparison with a replay).
    pub async fn load_all(conn: &mut sqlx::AnyConnection) -> Result<Self> {
        let mut model = Self::default();
        for row in sqlx::query(&format!("SELECT {MOVIE_COLUMNS} FROM rm_movies"))
            .fetch_all(&mut *conn)
            .await?
        {
            let movie = movie_row(&row)?;
            model.movies.insert(movie.id.clone(), movie);
        }
        for row in sqlx::query(&format!("SELECT {USER_COLUMNS} FROM rm_users"))
            .fetch_all(&mut *conn)
            .await?
        {
            let user = user_row(&row)?;
            model.users.insert(user.id.clone(), user);
        }
        for row in sqlx::query(&format!("SELECT {LOGIN_COLUMNS} FROM rm_logins"))
            .fetch_all(&mut *conn)
            .await?
        {
            let login = login_row(&row)?;
            model.logins.insert(login.position, login);
        }
        Ok(model)
    }

    /// Writes every row held here (all of them touched by the batch) over the stored ones.
    pub async fn save(&self, tx: &mut Tx, backend: Backend) -> Result<()> {
        let ids: Vec<String> = self.movies.keys().cloned().collect();
        for chunk in key_chunks(&ids) {
            let sql = format!(
                "DELETE FROM rm_movie_genres WHERE movie_id IN ({})",
                placeholders(chunk.len())
            );
            let values: Vec<Value> = chunk.iter().map(|id| Value::from(id.as_str())).collect();
            sql::bind_all(sqlx::query(&sql), &values)
                .execute(&mut **tx)
                .await?;
        }
        self.write(
            tx,
            backend,
            OnConflict::Replace(&MOVIE_FIELDS[1..]),
            OnConflict::Replace(&USER_FIELDS[1..]),
            OnConflict::Ignore,
        )
        .await?;
        let erased: Vec<String> = self.erased.iter().cloned().collect();
        for chunk in key_chunks(&erased) {
            let sql = format!(
                "UPDATE rm_logins SET ip = ? WHERE ip IS NOT NULL AND user_id IN ({})",
                placeholders(chunk.len())
            );
            let mut values = vec![Value::from(ERASED)];
            values.extend(chunk.iter().map(|id| Value::from(id.as_str())));
            sql::bind_all(sqlx::query(&sql), &values)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn write(
        &self,
        tx: &mut Tx,
        backend: Backend,
        movies_conflict: OnConflict<'_>,
        users_conflict: OnConflict<'_>,
        logins_conflict: OnConflict<'_>,
    ) -> Result<()> {
        let movies: Vec<Vec<Value>> = self.movies.values().map(movie_values).collect();
        insert_rows(
            tx,
            backend,
            "rm_movies",
            &MOVIE_FIELDS,
            &["id"],
            movies_conflict,
            &movies,
        )
        .await?;
        let genres: Vec<Vec<Value>> = self
            .movies
            .values()
            .flat_map(|m| {
                m.genres
                    .iter()
                    .map(move |g| vec![Value::from(m.id.as_str()), Value::from(g.as_str())])
            })
            .collect();
        // The column's collation may equate two genres the domain keeps apart (accents): one row.
        insert_rows(
            tx,
            backend,
            "rm_movie_genres",
            &GENRE_FIELDS,
            &GENRE_FIELDS,
            OnConflict::Ignore,
            &genres,
        )
        .await?;
        let users: Vec<Vec<Value>> = self.users.values().map(user_values).collect();
        insert_rows(
            tx,
            backend,
            "rm_users",
            &USER_FIELDS,
            &["id"],
            users_conflict,
            &users,
        )
        .await?;
        let logins: Vec<Vec<Value>> = self.logins.values().map(login_values).collect();
        insert_rows(
            tx,
            backend,
            "rm_logins",
            &LOGIN_FIELDS,
            &["position"],
            logins_conflict,
            &logins,
        )
        .await?;
        Ok(())
    }

    /// Every row that differs between `self` (the live tables) and `expected` (a replay).
    pub fn differences(&self, expected: &Self) -> Vec<Difference> {
        let mut found = Vec::new();
        diff_table("rm_movies", &self.movies, &expected.movies, &mut found);
        diff_table("rm_users", &self.users, &expected.users, &mut found);
        diff_table("rm_logins", &self.logins, &expected.logins, &mut found);
        found
    }
}

/// One row that a replay would write differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub table: &'static str,
    pub key: String,
    pub live: Option<String>,
    pub replayed: Option<String>,
}

fn diff_table<K: Ord + ToString, R: PartialEq + std::fmt::Debug>(
    table: &'static str,
    live: &BTreeMap<K, R>,
    replayed: &BTreeMap<K, R>,
    found: &mut Vec<Difference>,
) {
    let show = |row: Option<&R>| row.map(|r| format!("{r:?}"));
    for (key, row) in live {
        if replayed.get(key) != Some(row) {
            found.push(Difference {
                table,
                key: key.to_string(),
                live: show(Some(row)),
                replayed: show(replayed.get(key)),
            });
        }
    }
    for (key, row) in replayed {
        if !live.contains_key(key) {
            found.push(Difference {
                table,
                key: key.to_string(),
                live: None,
                replayed: show(Some(row)),
            });
        }
    }
}

fn reason_name(reason: LoginFailureReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Each table's columns in the order its rows are written (also by `replay::swap`).
pub(crate) const MOVIE_FIELDS: [&str; 14] = [
    "id",
    "title",
    "year",
    "director",
    "genres",
    "description",
    "poster_key",
    "thumbnail_key",
    "added_by",
    "added_at",
    "updated_at",
    "version",
    "removed",
    "position",
];
const MOVIE_COLUMNS: &str =
    "id, title, year, director, genres, description, poster_key, thumbnail_key, \
     added_by, added_at, updated_at, version, removed, position";
pub(crate) const USER_FIELDS: [&str; 9] = [
    "id",
    "username",
    "email",
    "roles",
    "passkeys",
    "locked_until",
    "registered_at",
    "version",
    "position",
];
const USER_COLUMNS: &str =
    "id, username, email, roles, passkeys, locked_until, registered_at, version, position";
pub(crate) const LOGIN_FIELDS: [&str; 8] = [
    "position",
    "user_id",
    "username",
    "at",
    "method",
    "succeeded",
    "reason",
    "ip",
];
const LOGIN_COLUMNS: &str = "position, user_id, username, at, method, succeeded, reason, ip";
pub(crate) const GENRE_FIELDS: [&str; 2] = ["movie_id", "genre"];

fn text(row: &AnyRow, index: usize) -> Result<String> {
    Ok(text_column(row, index)?.unwrap_or_default())
}

fn movie_row(row: &AnyRow) -> Result<MovieRow> {
    Ok(MovieRow {
        id: text(row, 0)?,
        title: text(row, 1)?,
        year: row.try_get(2)?,
        director: text(row, 3)?,
        genres: serde_json::from_str(&text(row, 4)?).unwrap_or_default(),
        description: text(row, 5)?,
        poster_key: text_column(row, 6)?,
        thumbnail_key: text_column(row, 7)?,
        added_by: text(row, 8)?,
        added_at: text(row, 9)?,
        updated_at: text(row, 10)?,
        version: row.try_get(11)?,
        removed: row.try_get::<i64, _>(12)? != 0,
        position: row.try_get(13)?,
    })
}

fn movie_values(movie: &MovieRow) -> Vec<Value> {
    vec![
        movie.id.clone().into(),
        movie.title.clone().into(),
        movie.year.into(),
        movie.director.clone().into(),
        serde_json::to_string(&movie.genres)
            .unwrap_or_default()
            .into(),
        movie.description.clone().into(),
        movie.poster_key.clone().into(),
        movie.thumbnail_key.clone().into(),
        movie.added_by.clone().into(),
        movie.added_at.clone().into(),
        movie.updated_at.clone().into(),
        movie.version.into(),
        i64::from(movie.removed).into(),
        movie.position.into(),
    ]
}

fn user_row(row: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: text(row, 0)?,
        username: text(row, 1)?,
        email: text(row, 2)?,
        roles: serde_json::from_str(&text(row, 3)?).unwrap_or_default(),
        passkeys: row.try_get(4)?,
        locked_until: text_column(row, 5)?,
        registered_at: text(row, 6)?,
        version: row.try_get(7)?,
        position: row.try_get(8)?,
    })
}

fn user_values(user: &UserRow) -> Vec<Value> {
    vec![
        user.id.clone().into(),
        user.username.clone().into(),
        user.email.clone().into(),
        serde_json::to_string(&user.roles)
            .unwrap_or_default()
            .into(),
        user.passkeys.into(),
        user.locked_until.clone().into(),
        user.registered_at.clone().into(),
        user.version.into(),
        user.position.into(),
    ]
}

fn login_row(row: &AnyRow) -> Result<LoginRow> {
    Ok(LoginRow {
        position: row.try_get(0)?,
        user_id: text(row, 1)?,
        username: text(row, 2)?,
        at: text(row, 3)?,
        method: text(row, 4)?,
        succeeded: row.try_get::<i64, _>(5)? != 0,
        reason: text_column(row, 6)?,
        ip: text_column(row, 7)?,
    })
}

fn login_values(login: &LoginRow) -> Vec<Value> {
    vec![
        login.position.into(),
        login.user_id.clone().into(),
        login.username.clone().into(),
        login.at.clone().into(),
        login.method.clone().into(),
        i64::from(login.succeeded).into(),
        login.reason.clone().into(),
        login.ip.clone().into(),
    ]
}

/// The `read-models` projection: catalogue, users and sign-ins.
pub struct ReadModels;

pub const READ_MODELS: &str = "read-models";

#[async_trait]
impl Projection for ReadModels {
    fn name(&self) -> &'static str {
        READ_MODELS
    }

    async fn apply(&self, tx: &mut Tx, backend: Backend, events: &[RecordedEvent]) -> Result<()> {
        let mut model = ReadModel::load_touched(tx, events).await?;
        for event in events {
            model.apply(event, &fact(event)?);
        }
        model.save(tx, backend).await
    }

    fn rebuild(&self) -> Option<Box<dyn Rebuild>> {
        Some(Box::new(ReadModel::default()))
    }
}

#[async_trait]
impl Rebuild for ReadModel {
    fn tables(&self) -> &'static [&'static str] {
        &["rm_movies", "rm_movie_genres", "rm_users", "rm_logins"]
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<()> {
        ReadModel::apply(self, event, &fact(event)?);
        Ok(())
    }

    async fn write(&self, tx: &mut Tx, backend: Backend) -> Result<()> {
        ReadModel::write(
            self,
            tx,
            backend,
            OnConflict::Fail,
            OnConflict::Fail,
            OnConflict::Fail,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeDelta, Utc};
    use cqrs_es::Aggregate;
    use domain::{
        Description, Director, Genres, Movie, MovieChanges, MovieCommand, MovieId, Poster, Title,
        UserId, Username, Year,
    };
    use proptest::prelude::*;

    use super::*;

    /// One edit a user may make after adding a movie.
    #[derive(Debug, Clone)]
    enum Edit {
        Retitle(String),
        Redate(i32),
        Regenre(Vec<String>),
        Poster(u8),
        Remove,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            "[A-Za-z ]{1,20}".prop_map(Edit::Retitle),
            (1890..2020i32).prop_map(Edit::Redate),
            prop::collection::vec("[A-Za-z]{1,12}", 0..4).prop_map(Edit::Regenre),
            any::<u8>().prop_map(Edit::Poster),
            Just(Edit::Remove),
        ]
    }

    fn command(edit: Edit, by: UserId, at: chrono::DateTime<Utc>) -> Option<MovieCommand> {
        let year_now = Utc::now().year();
        Some(match edit {
            Edit::Retitle(title) => MovieCommand::UpdateDetails {
                changes: MovieChanges {
                    title: Some(Title::parse(&title).ok()?),
                    ..MovieChanges::default()
                },
                expected_version: None,
                by,
                at,
            },
            Edit::Redate(year) => MovieCommand::UpdateDetails {
                changes: MovieChanges {
                    year: Some(Year::parse(year, year_now).ok()?),
                    ..MovieChanges::default()
                },
                expected_version: None,
                by,
                at,
            },
            Edit::Regenre(genres) => MovieCommand::UpdateDetails {
                changes: MovieChanges {
                    genres: Some(Genres::parse(genres).ok()?),
                    ..MovieChanges::default()
                },
                expected_version: None,
                by,
                at,
            },
            Edit::Poster(n) => MovieCommand::AttachPoster {
                poster: Poster {
                    original_key: format!("p/{n}.png"),
                    thumbnail_key: format!("p/{n}-thumb.webp"),
                    content_hash: format!("{n:064x}"),
                    content_type: "image/png".into(),
                    width: 1,
                    height: 1,
                    bytes: 1,
                },
                expected_version: None,
                by,
                at,
            },
            Edit::Remove => MovieCommand::Remove {
                expected_version: None,
                by,
                at,
            },
        })
    }

    /// The events the aggregate itself makes of an add and `edits` (refused edits leave none).
    fn history(edits: Vec<Edit>) -> (Movie, Vec<RecordedEvent>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let id = MovieId::from(uuid::Uuid::new_v4());
        let by = UserId::for_username(&Username::parse("tester").unwrap());
        let start = Utc::now();
        let add = MovieCommand::Add {
            id,
            title: Title::parse("Stalker").unwrap(),
            year: Year::parse(1979, start.year()).unwrap(),
            director: Director::parse("Andrei Tarkovsky").unwrap(),
            genres: Genres::parse(["Drama"]).unwrap(),
            description: Description::parse("The Zone.").unwrap(),
            added_by: by,
            at: start,
        };
        let commands = std::iter::once(Some(add)).chain(
            edits
                .into_iter()
                .enumerate()
                .map(|(n, e)| command(e, by, start + TimeDelta::seconds(n as i64 + 1))),
        );
        let mut movie = Movie::default();
        let mut recorded = Vec::new();
        for command in commands.flatten() {
            let Ok(events) = runtime.block_on(movie.handle(command, &())) else {
                continue;
            };
            for event in events {
                let sequence = recorded.len() as i64 + 1;
                recorded.push(RecordedEvent {
                    position: sequence * 10,
                    event_id: uuid::Uuid::new_v4(),
                    aggregate_type: "Movie".into(),
                    aggregate_id: id.to_string(),
                    sequence,
                    event_type: cqrs_es::DomainEvent::event_type(&event),
                    schema_version: 1,
                    payload: event.payload(),
                    metadata: serde_json::json!({}),
                    data_subject: None,
                    recorded_at: Utc::now(),
                    prev_hash: None,
                    hash: String::new(),
                });
                movie.apply(event);
            }
        }
        (movie, recorded)
    }

    proptest! {
        /// The catalogue row always shows what the aggregate holds after the same events.
        #[test]
        fn the_movie_row_matches_the_aggregate(edits in prop::collection::vec(edit(), 0..12)) {
            let (movie, events) = history(edits);
            let mut model = ReadModel::default();
            for event in &events {
                model.apply(event, &fact(event).unwrap());
            }
            let state = movie.state().unwrap();
            let row = &model.movies[&state.id.to_string()];
            prop_assert_eq!(&row.title, &state.title.to_string());
            prop_assert_eq!(row.year, i64::from(state.year.value()));
            let genres: Vec<String> = state.genres.as_slice().iter().map(|g| g.to_string()).collect();
            prop_assert_eq!(&row.genres, &genres);
            prop_assert_eq!(row.poster_key.as_deref(), state.poster.as_ref().map(|p| p.original_key.as_str()));
            prop_assert_eq!(row.removed, state.removed);
            prop_assert_eq!(row.version, movie.version() as i64);
            prop_assert_eq!(&row.updated_at, &format_timestamp(state.updated_at));
        }

        /// Folding is deterministic: replaying the same events gives the same rows.
        #[test]
        fn folding_twice_gives_the_same_rows(edits in prop::collection::vec(edit(), 0..12)) {
            let (_, events) = history(edits);
            let fold = || {
                let mut model = ReadModel::default();
                for event in &events {
                    model.apply(event, &fact(event).unwrap());
                }
                model
            };
            prop_assert!(fold().differences(&fold()).is_empty());
        }
    }
}
