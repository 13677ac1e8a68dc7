use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use domain::{
    Description, Director, Genres, Movie, MovieAdded, MovieChanges, MovieCommand,
    MovieDetailsUpdated, MovieError, MovieEvent, MovieId, MovieRemoved, Poster, PosterAttached,
    Title, UserId, Year,
};
use serde_json::json;
use uuid::Uuid;

type MovieTest = TestFramework<Movie>;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

fn movie_id() -> MovieId {
    MovieId::from(Uuid::from_u128(0x1111))
}

fn alice() -> UserId {
    UserId::from(Uuid::from_u128(0xa11ce))
}

fn bob() -> UserId {
    UserId::from(Uuid::from_u128(0xb0b))
}

fn title(text: &str) -> Title {
    Title::parse(text).unwrap()
}

fn year(value: i32) -> Year {
    Year::parse(value, 2026).unwrap()
}

fn genres(names: &[&str]) -> Genres {
    Genres::parse(names).unwrap()
}

fn movie_added() -> MovieAdded {
    MovieAdded {
        movie_id: movie_id(),
        title: title("Heat"),
        year: year(1995),
        director: Director::parse("Michael Mann").unwrap(),
        genres: genres(&["Crime", "Drama"]),
        description: Description::parse("A cop and a thief.").unwrap(),
        added_by: alice(),
        at: at(0),
    }
}

fn added() -> MovieEvent {
    movie_added().into()
}

fn removed() -> MovieEvent {
    MovieRemoved {
        by: alice(),
        at: at(5),
    }
    .into()
}

fn poster() -> Poster {
    Poster {
        original_key: "posters/1111/original.png".to_owned(),
        thumbnail_key: "posters/1111/thumb.webp".to_owned(),
        content_hash: "ab".repeat(32),
        content_type: "image/png".to_owned(),
        width: 800,
        height: 1200,
        bytes: 123_456,
    }
}

fn retitle(expected_version: Option<u64>) -> MovieCommand {
    MovieCommand::UpdateDetails {
        changes: MovieChanges {
            title: Some(title("Heat (1995)")),
            ..MovieChanges::default()
        },
        expected_version,
        by: bob(),
        at: at(10),
    }
}

fn retitled() -> MovieEvent {
    MovieDetailsUpdated {
        changes: MovieChanges {
            title: Some(title("Heat (1995)")),
            ..MovieChanges::default()
        },
        by: bob(),
        at: at(10),
    }
    .into()
}

fn attach_poster(expected_version: Option<u64>) -> MovieCommand {
    MovieCommand::AttachPoster {
        poster: poster(),
        expected_version,
        by: bob(),
        at: at(10),
    }
}

fn remove(expected_version: Option<u64>) -> MovieCommand {
    MovieCommand::Remove {
        expected_version,
        by: bob(),
        at: at(10),
    }
}

fn replay(events: Vec<MovieEvent>) -> Movie {
    let mut movie = Movie::default();
    for event in events {
        movie.apply(event);
    }
    movie
}

#[test]
fn aggregate_type_is_movie() {
    assert_eq!(Movie::aggregate_type(), "Movie");
}

#[test]
fn add_records_movie_added() {
    let added = movie_added();
    MovieTest::with(())
        .given_no_previous_events()
        .when(MovieCommand::Add {
            id: added.movie_id,
            title: added.title.clone(),
            year: added.year,
            director: added.director.clone(),
            genres: added.genres.clone(),
            description: added.description.clone(),
            added_by: added.added_by,
            at: added.at,
        })
        .then_expect_events(vec![added.into()]);
}

#[test]
fn add_refuses_an_existing_movie_even_after_removal() {
    let add = MovieCommand::Add {
        id: movie_id(),
        title: title("Heat"),
        year: year(1995),
        director: Director::parse("Michael Mann").unwrap(),
        genres: Genres::default(),
        description: Description::default(),
        added_by: bob(),
        at: at(1),
    };
    MovieTest::with(())
        .given(vec![added()])
        .when(add.clone())
        .then_expect_error(MovieError::AlreadyExists);
    MovieTest::with(())
        .given(vec![added(), removed()])
        .when(add)
        .then_expect_error_message("a movie with this id already exists");
}

#[test]
fn update_records_only_the_fields_that_differ() {
    MovieTest::with(())
        .given(vec![added()])
        .when(MovieCommand::UpdateDetails {
            changes: MovieChanges {
                title: Some(title("Heat")),
                year: Some(year(1995)),
                director: Some(Director::parse("M. Mann").unwrap()),
                genres: Some(genres(&["Crime", "Drama"])),
                description: Some(Description::parse("Los Angeles, 1995.").unwrap()),
            },
            expected_version: Some(1),
            by: bob(),
            at: at(10),
        })
        .then_expect_events(vec![MovieDetailsUpdated {
            changes: MovieChanges {
                director: Some(Director::parse("M. Mann").unwrap()),
                description: Some(Description::parse("Los Angeles, 1995.").unwrap()),
                ..MovieChanges::default()
            },
            by: bob(),
            at: at(10),
        }
        .into()]);
}

#[test]
fn update_without_an_expected_version_skips_the_check() {
    MovieTest::with(())
        .given(vec![added(), retitled()])
        .when(MovieCommand::UpdateDetails {
            changes: MovieChanges {
                year: Some(year(1996)),
                ..MovieChanges::default()
            },
            expected_version: None,
            by: bob(),
            at: at(20),
        })
        .then_expect_events(vec![MovieDetailsUpdated {
            changes: MovieChanges {
                year: Some(year(1996)),
                ..MovieChanges::default()
            },
            by: bob(),
            at: at(20),
        }
        .into()]);
}

#[test]
fn update_treats_a_reordered_genre_list_as_a_change() {
    let reordered = genres(&["Drama", "Crime"]);
    MovieTest::with(())
        .given(vec![added()])
        .when(MovieCommand::UpdateDetails {
            changes: MovieChanges {
                genres: Some(reordered.clone()),
                ..MovieChanges::default()
            },
            expected_version: Some(1),
            by: bob(),
            at: at(10),
        })
        .then_expect_events(vec![MovieDetailsUpdated {
            changes: MovieChanges {
                genres: Some(reordered),
                ..MovieChanges::default()
            },
            by: bob(),
            at: at(10),
        }
        .into()]);
}

#[test]
fn update_with_every_field_unchanged_has_nothing_to_change() {
    let current = movie_added();
    MovieTest::with(())
        .given(vec![added()])
        .when(MovieCommand::UpdateDetails {
            changes: MovieChanges {
                title: Some(current.title),
                year: Some(current.year),
                director: Some(current.director),
                genres: Some(current.genres),
                description: Some(current.description),
            },
            expected_version: Some(1),
            by: bob(),
            at: at(10),
        })
        .then_expect_error(MovieError::NothingToChange);
}

#[test]
fn update_with_no_fields_has_nothing_to_change() {
    MovieTest::with(())
        .given(vec![added()])
        .when(MovieCommand::UpdateDetails {
            changes: MovieChanges::default(),
            expected_version: None,
            by: bob(),
            at: at(10),
        })
        .then_expect_error_message("nothing to change: every field given already has that value");
}

#[test]
fn update_of_an_unknown_movie_is_not_found() {
    MovieTest::with(())
        .given_no_previous_events()
        .when(retitle(None))
        .then_expect_error(MovieError::NotFound);
}

#[test]
fn removed_movie_refuses_edits() {
    MovieTest::with(())
        .given(vec![added(), removed()])
        .when(retitle(Some(2)))
        .then_expect_error(MovieError::Removed);
}

#[test]
fn update_with_a_stale_version_conflicts() {
    MovieTest::with(())
        .given(vec![added(), retitled()])
        .when(MovieCommand::UpdateDetails {
            changes: MovieChanges {
                year: Some(year(1996)),
                ..MovieChanges::default()
            },
            expected_version: Some(1),
            by: bob(),
            at: at(20),
        })
        .then_expect_error(MovieError::VersionConflict {
            expected: 1,
            actual: 2,
        });
    MovieTest::with(())
        .given(vec![added()])
        .when(retitle(Some(7)))
        .then_expect_error_message(
            "movie was changed by someone else: you sent version 7, the current version is 1",
        );
}

#[test]
fn version_conflict_is_checked_before_nothing_to_change() {
    MovieTest::with(())
        .given(vec![added(), retitled()])
        .when(retitle(Some(1)))
        .then_expect_error(MovieError::VersionConflict {
            expected: 1,
            actual: 2,
        });
}

#[test]
fn attach_poster_records_poster_attached() {
    MovieTest::with(())
        .given(vec![added()])
        .when(attach_poster(Some(1)))
        .then_expect_events(vec![PosterAttached {
            poster: poster(),
            by: bob(),
            at: at(10),
        }
        .into()]);
}

#[test]
fn attach_poster_refuses_unknown_removed_and_stale_movies() {
    MovieTest::with(())
        .given_no_previous_events()
        .when(attach_poster(None))
        .then_expect_error(MovieError::NotFound);
    MovieTest::with(())
        .given(vec![added(), removed()])
        .when(attach_poster(None))
        .then_expect_error(MovieError::Removed);
    MovieTest::with(())
        .given(vec![added()])
        .when(attach_poster(Some(0)))
        .then_expect_error(MovieError::VersionConflict {
            expected: 0,
            actual: 1,
        });
}

#[test]
fn remove_records_movie_removed() {
    MovieTest::with(())
        .given(vec![added(), retitled()])
        .when(remove(Some(2)))
        .then_expect_events(vec![MovieRemoved {
            by: bob(),
            at: at(10),
        }
        .into()]);
}

#[test]
fn remove_refuses_unknown_already_removed_and_stale_movies() {
    MovieTest::with(())
        .given_no_previous_events()
        .when(remove(None))
        .then_expect_error(MovieError::NotFound);
    MovieTest::with(())
        .given(vec![added(), removed()])
        .when(remove(Some(2)))
        .then_expect_error(MovieError::AlreadyRemoved);
    MovieTest::with(())
        .given(vec![added()])
        .when(remove(Some(2)))
        .then_expect_error(MovieError::VersionConflict {
            expected: 2,
            actual: 1,
        });
}

#[test]
fn applying_events_tracks_details_poster_removal_and_version() {
    let movie = replay(vec![added()]);
    let state = movie.state().unwrap();
    assert_eq!(movie.version(), 1);
    assert_eq!(state.id, movie_id());
    assert_eq!(state.title, title("Heat"));
    assert_eq!(state.added_by, alice());
    assert_eq!((state.added_at, state.updated_at), (at(0), at(0)));
    assert_eq!(state.poster, None);
    assert!(!state.removed);

    let poster_attached = PosterAttached {
        poster: poster(),
        by: bob(),
        at: at(20),
    };
    let movie = replay(vec![added(), retitled(), poster_attached.into(), removed()]);
    let state = movie.state().unwrap();
    assert_eq!(movie.version(), 4);
    assert_eq!(state.title, title("Heat (1995)"));
    assert_eq!(state.year, year(1995));
    assert_eq!(state.poster, Some(poster()));
    assert!(state.removed);
    assert_eq!(state.added_at, at(0));
    assert_eq!(state.updated_at, at(5));
}

#[test]
fn a_new_movie_has_no_state_and_version_zero() {
    let movie = Movie::default();
    assert_eq!(movie.state(), None);
    assert_eq!(movie.version(), 0);
}

#[test]
fn event_types_and_versions_follow_the_contract() {
    let cases = [
        (added(), "MovieAdded", "2"),
        (retitled(), "MovieDetailsUpdated", "1"),
        (
            PosterAttached {
                poster: poster(),
                by: bob(),
                at: at(1),
            }
            .into(),
            "PosterAttached",
            "1",
        ),
        (removed(), "MovieRemoved", "1"),
    ];
    for (event, event_type, version) in cases {
        assert_eq!(event.event_type(), event_type);
        assert_eq!(event.event_version(), version);
        assert_eq!(
            MovieEvent::current_version(event_type).map(|v| v.to_string()),
            Some(version.to_owned())
        );
    }
}

#[test]
fn payload_is_the_bare_event_struct() {
    assert_eq!(
        added().payload(),
        json!({
            "movie_id": "00000000-0000-0000-0000-000000001111",
            "title": "Heat",
            "year": 1995,
            "director": "Michael Mann",
            "genres": ["Crime", "Drama"],
            "description": "A cop and a thief.",
            "added_by": "00000000-0000-0000-0000-0000000a11ce",
            "at": "2026-03-01T12:00:00Z",
        })
    );
    assert_eq!(
        retitled().payload(),
        json!({
            "changes": {"title": "Heat (1995)"},
            "by": "00000000-0000-0000-0000-000000000b0b",
            "at": "2026-03-01T12:10:00Z",
        })
    );
}

#[test]
fn from_payload_rebuilds_the_event_and_refuses_unknown_types() {
    for event in [added(), retitled(), removed()] {
        assert_eq!(
            MovieEvent::from_payload(&event.event_type(), event.payload()).unwrap(),
            event
        );
    }
    let unknown = MovieEvent::from_payload("MovieRenamed", json!({})).unwrap_err();
    assert!(unknown.to_string().contains("MovieRenamed"));
    assert!(MovieEvent::from_payload("MovieRemoved", json!({"by": "x"})).is_err());
}
