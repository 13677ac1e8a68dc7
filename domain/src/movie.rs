//! The `Movie` aggregate: one stream per catalogue entry.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::values::{Description, Director, Genres, MovieId, Title, UserId, Year};

/// A stored poster image and its thumbnail, as produced outside the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poster {
    pub original_key: String,
    pub thumbnail_key: String,
    /// Hex SHA-256 of the original image bytes.
    pub content_hash: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// Edits to a movie's details; `None` leaves a field as it is. Absent fields are left out of the
/// stored payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovieChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<Year>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub director: Option<Director>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genres: Option<Genres>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
}

impl MovieChanges {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Keeps only the fields whose new value differs from the movie's current one.
    fn differing_from(self, movie: &MovieState) -> Self {
        fn differs<T: PartialEq>(new: Option<T>, current: &T) -> Option<T> {
            new.filter(|value| value != current)
        }
        Self {
            title: differs(self.title, &movie.title),
            year: differs(self.year, &movie.year),
            director: differs(self.director, &movie.director),
            genres: differs(self.genres, &movie.genres),
            description: differs(self.description, &movie.description),
        }
    }

    fn apply_to(self, movie: &mut MovieState) {
        if let Some(title) = self.title {
            movie.title = title;
        }
        if let Some(year) = self.year {
            movie.year = year;
        }
        if let Some(director) = self.director {
            movie.director = director;
        }
        if let Some(genres) = self.genres {
            movie.genres = genres;
        }
        if let Some(description) = self.description {
            movie.description = description;
        }
    }
}

/// `expected_version: None` skips the optimistic concurrency check; `Some(v)` must equal the
/// movie's current version (the one clients send back in `If-Match`).
#[derive(Debug, Clone, PartialEq)]
pub enum MovieCommand {
    Add {
        id: MovieId,
        title: Title,
        year: Year,
        director: Director,
        genres: Genres,
        description: Description,
        added_by: UserId,
        at: DateTime<Utc>,
    },
    UpdateDetails {
        changes: MovieChanges,
        expected_version: Option<u64>,
        by: UserId,
        at: DateTime<Utc>,
    },
    AttachPoster {
        poster: Poster,
        expected_version: Option<u64>,
        by: UserId,
        at: DateTime<Utc>,
    },
    Remove {
        expected_version: Option<u64>,
        by: UserId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieAdded {
    pub movie_id: MovieId,
    pub title: Title,
    pub year: Year,
    pub director: Director,
    pub genres: Genres,
    pub description: Description,
    pub added_by: UserId,
    pub at: DateTime<Utc>,
}

/// `changes` holds only the fields that actually changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieDetailsUpdated {
    pub changes: MovieChanges,
    pub by: UserId,
    pub at: DateTime<Utc>,
}

/// Replaces any earlier poster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PosterAttached {
    pub poster: Poster,
    pub by: UserId,
    pub at: DateTime<Utc>,
}

/// The movie leaves the catalogue; its history stays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieRemoved {
    pub by: UserId,
    pub at: DateTime<Utc>,
}

event_enum! {
    /// Everything that can happen to a movie. Version 1 of `MovieAdded` had a single `genre`.
    pub enum MovieEvent {
        MovieAdded => 2,
        MovieDetailsUpdated => 1,
        PosterAttached => 1,
        MovieRemoved => 1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MovieError {
    #[error("a movie with this id already exists")]
    AlreadyExists,
    #[error("movie not found")]
    NotFound,
    #[error("movie has been removed and can no longer be changed")]
    Removed,
    #[error("movie is already removed")]
    AlreadyRemoved,
    #[error(
        "movie was changed by someone else: you sent version {expected}, \
         the current version is {actual}"
    )]
    VersionConflict { expected: u64, actual: u64 },
    #[error("nothing to change: every field given already has that value")]
    NothingToChange,
}

/// A movie's current details, once added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieState {
    pub id: MovieId,
    pub title: Title,
    pub year: Year,
    pub director: Director,
    pub genres: Genres,
    pub description: Description,
    pub poster: Option<Poster>,
    pub added_by: UserId,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub removed: bool,
}

impl MovieState {
    fn added(event: MovieAdded) -> Self {
        Self {
            id: event.movie_id,
            title: event.title,
            year: event.year,
            director: event.director,
            genres: event.genres,
            description: event.description,
            poster: None,
            added_by: event.added_by,
            added_at: event.at,
            updated_at: event.at,
            removed: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Movie {
    state: Option<MovieState>,
    version: u64,
}

impl Movie {
    /// `None` until the movie has been added.
    pub fn state(&self) -> Option<&MovieState> {
        self.state.as_ref()
    }

    /// The number of events applied: what clients send back as the expected version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The current details, if the movie exists and `expected_version` (if any) matches.
    /// A removed movie is refused with `when_removed`.
    fn current(
        &self,
        expected_version: Option<u64>,
        when_removed: MovieError,
    ) -> Result<&MovieState, MovieError> {
        let movie = self.state.as_ref().ok_or(MovieError::NotFound)?;
        if movie.removed {
            return Err(when_removed);
        }
        match expected_version {
            Some(expected) if expected != self.version => Err(MovieError::VersionConflict {
                expected,
                actual: self.version,
            }),
            _ => Ok(movie),
        }
    }
}

#[async_trait]
impl Aggregate for Movie {
    type Command = MovieCommand;
    type Event = MovieEvent;
    type Error = MovieError;
    type Services = ();

    fn aggregate_type() -> String {
        "Movie".to_owned()
    }

    async fn handle(
        &self,
        command: MovieCommand,
        _services: &(),
    ) -> Result<Vec<MovieEvent>, MovieError> {
        let event = match command {
            MovieCommand::Add {
                id,
                title,
                year,
                director,
                genres,
                description,
                added_by,
                at,
            } => {
                if self.state.is_some() {
                    return Err(MovieError::AlreadyExists);
                }
                MovieEvent::from(MovieAdded {
                    movie_id: id,
                    title,
                    year,
                    director,
                    genres,
                    description,
                    added_by,
                    at,
                })
            }
            MovieCommand::UpdateDetails {
                changes,
                expected_version,
                by,
                at,
            } => {
                let movie = self.current(expected_version, MovieError::Removed)?;
                let changes = changes.differing_from(movie);
                if changes.is_empty() {
                    return Err(MovieError::NothingToChange);
                }
                MovieDetailsUpdated { changes, by, at }.into()
            }
            MovieCommand::AttachPoster {
                poster,
                expected_version,
                by,
                at,
            } => {
                self.current(expected_version, MovieError::Removed)?;
                PosterAttached { poster, by, at }.into()
            }
            MovieCommand::Remove {
                expected_version,
                by,
                at,
            } => {
                self.current(expected_version, MovieError::AlreadyRemoved)?;
                MovieRemoved { by, at }.into()
            }
        };
        Ok(vec![event])
    }

    fn apply(&mut self, event: MovieEvent) {
        self.version += 1;
        match (event, &mut self.state) {
            (MovieEvent::MovieAdded(added), state) => *state = Some(MovieState::added(added)),
            (MovieEvent::MovieDetailsUpdated(updated), Some(movie)) => {
                updated.changes.apply_to(movie);
                movie.updated_at = updated.at;
            }
            (MovieEvent::PosterAttached(attached), Some(movie)) => {
                movie.poster = Some(attached.poster);
                movie.updated_at = attached.at;
            }
            (MovieEvent::MovieRemoved(removed), Some(movie)) => {
                movie.removed = true;
                movie.updated_at = removed.at;
            }
            // A stream that lacks `MovieAdded` has nothing to update; the event still counts.
            (_, None) => {}
        }
    }
}
