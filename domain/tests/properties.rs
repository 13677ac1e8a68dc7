use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use domain::{
    sign_in_outcome, upcast, AccountLocked, AccountUnlocked, Description, Director, Email, Genre,
    Genres, LoginFailed, LoginFailureReason, LoginMethod, Movie, MovieAdded, MovieChanges,
    MovieCommand, MovieDetailsUpdated, MovieError, MovieEvent, MovieId, MovieRemoved,
    PasskeyLoginSucceeded, PasskeyRegistered, PasswordLoginSucceeded, PasswordVerifier, Poster,
    PosterAttached, Role, RoleGranted, SignInOutcome, Title, UnlockReason, User, UserCommand,
    UserEvent, UserId, UserRegistered, UserServices, Username, Year, FAILURE_WINDOW,
    MAX_FAILED_SIGN_INS,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

// ---- value properties ----

/// Any text, including control characters, line breaks and long runs.
fn any_text(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("(?s).{{0,{max_chars}}}")).unwrap()
}

fn single_line_ok(raw: &str, max: usize) -> bool {
    let trimmed = raw.trim();
    (1..=max).contains(&trimmed.chars().count()) && !trimmed.chars().any(char::is_control)
}

proptest! {
    #[test]
    fn title_accepts_exactly_the_valid_texts_and_parsing_is_idempotent(raw in any_text(230)) {
        let parsed = Title::parse(&raw);
        prop_assert_eq!(parsed.is_ok(), single_line_ok(&raw, 200));
        if let Ok(title) = parsed {
            prop_assert_eq!(title.as_str(), raw.trim());
            prop_assert_eq!(Title::parse(title.as_str()), Ok(title.clone()));
            let json = serde_json::to_value(&title).unwrap();
            prop_assert_eq!(serde_json::from_value::<Title>(json).unwrap(), title);
        }
    }

    #[test]
    fn director_accepts_exactly_the_valid_texts_and_parsing_is_idempotent(raw in any_text(230)) {
        let parsed = Director::parse(&raw);
        prop_assert_eq!(parsed.is_ok(), single_line_ok(&raw, 200));
        if let Ok(director) = parsed {
            prop_assert_eq!(Director::parse(director.as_str()), Ok(director.clone()));
        }
    }

    #[test]
    fn genre_accepts_exactly_the_valid_texts_and_parsing_is_idempotent(raw in any_text(60)) {
        let parsed = Genre::parse(&raw);
        prop_assert_eq!(parsed.is_ok(), single_line_ok(&raw, 50));
        if let Ok(genre) = parsed {
            prop_assert_eq!(Genre::parse(genre.as_str()), Ok(genre.clone()));
        }
    }

    #[test]
    fn genres_are_distinct_bounded_and_stable(raw in vec("[A-Za-z]{1,3}", 0..14)) {
        if let Ok(genres) = Genres::parse(&raw) {
            let names: Vec<&str> = genres.as_slice().iter().map(Genre::as_str).collect();
            prop_assert!(names.len() <= Genres::MAX);
            for (i, name) in names.iter().enumerate() {
                for other in &names[i + 1..] {
                    prop_assert_ne!(name.to_lowercase(), other.to_lowercase());
                }
            }
            prop_assert_eq!(Genres::parse(&names), Ok(genres.clone()));
        }
    }

    #[test]
    fn description_is_idempotent(raw in any_text(300)) {
        let description = Description::parse(&raw).unwrap();
        prop_assert_eq!(description.as_str(), raw.trim());
        prop_assert_eq!(Description::parse(description.as_str()), Ok(description.clone()));
    }

    #[test]
    fn year_is_accepted_exactly_within_bounds(year in 1800..2100i32, current in 1900..2090i32) {
        let parsed = Year::parse(year, current);
        prop_assert_eq!(parsed.is_ok(), (1878..=current + 5).contains(&year));
        if let Ok(parsed) = parsed {
            prop_assert_eq!(parsed.value(), year);
        }
    }

    #[test]
    fn username_is_idempotent(raw in any_text(40)) {
        if let Ok(name) = Username::parse(&raw) {
            prop_assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
            prop_assert_eq!(Username::parse(name.as_str()), Ok(name.clone()));
        }
    }

    #[test]
    fn well_formed_usernames_are_accepted_lower_cased(raw in "[A-Za-z0-9][A-Za-z0-9_.-]{2,31}") {
        let name = Username::parse(&raw).unwrap();
        prop_assert_eq!(name.as_str(), raw.to_ascii_lowercase());
    }

    #[test]
    fn email_is_idempotent(raw in any_text(40)) {
        if let Ok(email) = Email::parse(&raw) {
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
        }
    }

    #[test]
    fn well_formed_emails_are_accepted(
        local in "[A-Za-z0-9.+_-]{1,30}",
        domain in "[A-Za-z0-9-]{1,20}(\\.[A-Za-z]{2,6}){1,2}",
    ) {
        let email = Email::parse(&format!("{local}@{domain}")).unwrap();
        let expected = format!("{local}@{}", domain.to_ascii_lowercase());
        prop_assert_eq!(email.as_str(), expected);
    }
}

// ---- generators for events and commands ----

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(seconds, nanos)| Utc.timestamp_opt(seconds, nanos).unwrap())
}

fn user_id() -> impl Strategy<Value = UserId> {
    any::<u128>().prop_map(|n| UserId::from(Uuid::from_u128(n)))
}

fn title() -> impl Strategy<Value = Title> {
    "\\PC{1,200}".prop_filter_map("blank title", |raw| Title::parse(&raw).ok())
}

fn director() -> impl Strategy<Value = Director> {
    "\\PC{1,60}".prop_filter_map("blank director", |raw| Director::parse(&raw).ok())
}

fn genres() -> impl Strategy<Value = Genres> {
    vec("\\PC{1,20}", 0..=10).prop_filter_map("blank genre", |raw| Genres::parse(raw).ok())
}

fn description() -> impl Strategy<Value = Description> {
    "[\\PC\n]{0,300}".prop_map(|raw| Description::parse(&raw).unwrap())
}

fn year() -> impl Strategy<Value = Year> {
    (1878..=2031i32).prop_map(|year| Year::parse(year, 2026).unwrap())
}

fn movie_added() -> impl Strategy<Value = MovieAdded> {
    (
        any::<u128>(),
        title(),
        year(),
        director(),
        genres(),
        description(),
        user_id(),
        instant(),
    )
        .prop_map(
            |(id, title, year, director, genres, description, added_by, at)| MovieAdded {
                movie_id: MovieId::from(Uuid::from_u128(id)),
                title,
                year,
                director,
                genres,
                description,
                added_by,
                at,
            },
        )
}

fn changes() -> impl Strategy<Value = MovieChanges> {
    (
        option::of(title()),
        option::of(year()),
        option::of(director()),
        option::of(genres()),
        option::of(description()),
    )
        .prop_map(
            |(title, year, director, genres, description)| MovieChanges {
                title,
                year,
                director,
                genres,
                description,
            },
        )
}

fn poster() -> impl Strategy<Value = Poster> {
    (
        "[a-z0-9/._-]{1,40}",
        "[a-z0-9/._-]{1,40}",
        "[0-9a-f]{64}",
        "image/(png|jpeg|webp)",
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(
            |(original_key, thumbnail_key, content_hash, content_type, width, height, bytes)| {
                Poster {
                    original_key,
                    thumbnail_key,
                    content_hash,
                    content_type,
                    width,
                    height,
                    bytes,
                }
            },
        )
}

fn movie_event() -> impl Strategy<Value = MovieEvent> {
    prop_oneof![
        movie_added().prop_map(MovieEvent::from),
        (changes(), user_id(), instant())
            .prop_map(|(changes, by, at)| { MovieDetailsUpdated { changes, by, at }.into() }),
        (poster(), user_id(), instant()).prop_map(|(poster, by, at)| PosterAttached {
            poster,
            by,
            at
        }
        .into()),
        (user_id(), instant()).prop_map(|(by, at)| MovieRemoved { by, at }.into()),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Admin), Just(Role::Auditor)]
}

fn ip() -> impl Strategy<Value = Option<String>> {
    option::of("[0-9a-f:.]{2,39}")
}

fn passkey_json() -> impl Strategy<Value = Value> {
    btree_map("[a-z_]{1,8}", any::<i64>(), 0..4).prop_map(|fields| json!({ "cred": fields }))
}

fn user_event() -> impl Strategy<Value = UserEvent> {
    let method = prop_oneof![Just(LoginMethod::Password), Just(LoginMethod::Passkey)];
    let reason = prop_oneof![
        Just(LoginFailureReason::BadPassword),
        Just(LoginFailureReason::AccountLocked),
        Just(LoginFailureReason::CounterRegression),
    ];
    let unlock_reason = prop_oneof![Just(UnlockReason::Expired), Just(UnlockReason::Admin)];
    prop_oneof![
        (
            "[a-z0-9][a-z0-9_.-]{2,31}",
            "[a-z0-9.]{1,20}@[a-z]{1,10}\\.[a-z]{2,4}",
            "\\PC{0,60}",
            btree_set(role(), 1..=3),
            instant(),
        )
            .prop_map(|(name, email, password_hash, roles, at)| {
                let username = Username::parse(&name).unwrap();
                UserRegistered {
                    user_id: UserId::for_username(&username),
                    username,
                    email: Email::parse(&email).unwrap(),
                    password_hash: password_hash.into(),
                    roles,
                    at,
                }
                .into()
            }),
        (ip(), instant()).prop_map(|(ip, at)| PasswordLoginSucceeded { ip, at }.into()),
        (method, reason, ip(), instant()).prop_map(|(method, reason, ip, at)| {
            LoginFailed {
                method,
                reason,
                ip,
                at,
            }
            .into()
        }),
        ("\\PC{1,64}", passkey_json(), instant()).prop_map(|(credential_id, passkey, at)| {
            PasskeyRegistered {
                credential_id,
                passkey,
                at,
            }
            .into()
        }),
        ("\\PC{1,64}", any::<u32>(), ip(), instant()).prop_map(
            |(credential_id, counter, ip, at)| {
                PasskeyLoginSucceeded {
                    credential_id,
                    counter,
                    ip,
                    at,
                }
                .into()
            }
        ),
        (instant(), 0..1_000_000i64, 1..=10u32).prop_map(|(at, minutes, failures)| {
            AccountLocked {
                until: at + TimeDelta::minutes(minutes),
                failures,
                at,
            }
            .into()
        }),
        (option::of(user_id()), unlock_reason, instant())
            .prop_map(|(by, reason, at)| AccountUnlocked { by, reason, at }.into()),
        (role(), option::of(user_id()), instant()).prop_map(|(role, granted_by, at)| {
            RoleGranted {
                role,
                granted_by,
                at,
            }
            .into()
        }),
    ]
}

// ---- event and upcast properties ----

/// The path an event takes through the store: payload as JSON text, type stored beside it.
fn through_the_store<E: DomainEvent>(event: &E, payload: Value) -> (String, u32, Value) {
    let text = serde_json::to_string(&payload).unwrap();
    (
        event.event_type(),
        event.event_version().parse().unwrap(),
        serde_json::from_str(&text).unwrap(),
    )
}

proptest! {
    #[test]
    fn movie_event_payloads_round_trip(event in movie_event()) {
        let (event_type, version, payload) = through_the_store(&event, event.payload());
        prop_assert_eq!(upcast(&event_type, version, payload.clone()), Ok((version, payload.clone())));
        prop_assert_eq!(MovieEvent::from_payload(&event_type, payload).unwrap(), event);
    }

    #[test]
    fn user_event_payloads_round_trip(event in user_event()) {
        let (event_type, version, payload) = through_the_store(&event, event.payload());
        prop_assert_eq!(upcast(&event_type, version, payload.clone()), Ok((version, payload.clone())));
        prop_assert_eq!(UserEvent::from_payload(&event_type, payload).unwrap(), event);
    }

    #[test]
    fn flask_era_movie_added_upcasts_to_the_current_shape(added in movie_added()) {
        let first_genre = added.genres.as_slice().first().map(Genre::as_str);
        let mut v1 = MovieEvent::from(added.clone()).payload();
        let fields = v1.as_object_mut().unwrap();
        fields.remove("genres");
        fields.insert("genre".to_owned(), json!(first_genre.unwrap_or("")));

        let (version, payload) = upcast("MovieAdded", 1, v1).unwrap();
        prop_assert_eq!(version, 2);
        let expected = MovieAdded {
            genres: Genres::parse(first_genre).unwrap(),
            ..added
        };
        prop_assert_eq!(
            MovieEvent::from_payload("MovieAdded", payload).unwrap(),
            MovieEvent::from(expected)
        );
    }

    #[test]
    fn aggregates_survive_a_snapshot_round_trip(
        movie_events in vec(movie_event(), 0..6),
        user_events in vec(user_event(), 0..8),
    ) {
        let mut movie = Movie::default();
        movie_events.into_iter().for_each(|event| movie.apply(event));
        let snapshot = serde_json::to_value(&movie).unwrap();
        prop_assert_eq!(serde_json::from_value::<Movie>(snapshot).unwrap(), movie);

        let mut user = User::default();
        user_events.into_iter().for_each(|event| user.apply(event));
        let snapshot = serde_json::to_value(&user).unwrap();
        prop_assert_eq!(serde_json::from_value::<User>(snapshot).unwrap(), user);
    }
}

// ---- aggregate properties over command sequences ----

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn movie_command() -> impl Strategy<Value = MovieCommand> {
    let expected_version = || option::of(0u64..6);
    prop_oneof![
        1 => movie_added().prop_map(|added| MovieCommand::Add {
            id: added.movie_id,
            title: added.title,
            year: added.year,
            director: added.director,
            genres: added.genres,
            description: added.description,
            added_by: added.added_by,
            at: added.at,
        }),
        4 => (changes(), expected_version(), user_id(), instant()).prop_map(
            |(changes, expected_version, by, at)| MovieCommand::UpdateDetails {
                changes,
                expected_version,
                by,
                at,
            }
        ),
        2 => (poster(), expected_version(), user_id(), instant()).prop_map(
            |(poster, expected_version, by, at)| MovieCommand::AttachPoster {
                poster,
                expected_version,
                by,
                at,
            }
        ),
        1 => (expected_version(), user_id(), instant()).prop_map(
            |(expected_version, by, at)| MovieCommand::Remove {
                expected_version,
                by,
                at,
            }
        ),
    ]
}

fn expected_version(command: &MovieCommand) -> Option<u64> {
    match command {
        MovieCommand::Add { .. } => None,
        MovieCommand::UpdateDetails {
            expected_version, ..
        }
        | MovieCommand::AttachPoster {
            expected_version, ..
        }
        | MovieCommand::Remove {
            expected_version, ..
        } => *expected_version,
    }
}

proptest! {
    #[test]
    fn movie_version_counts_events_and_rules_hold(commands in vec(movie_command(), 1..25)) {
        let runtime = runtime();
        let mut movie = Movie::default();
        let mut applied = 0u64;
        for command in commands {
            let before = movie.version();
            let was_removed = movie.state().is_some_and(|state| state.removed);
            let is_add = matches!(command, MovieCommand::Add { .. });
            let expected = expected_version(&command);
            match runtime.block_on(movie.handle(command, &())) {
                Ok(events) => {
                    prop_assert!(!was_removed, "a removed movie accepted a command");
                    if let Some(expected) = expected {
                        prop_assert_eq!(expected, before);
                    }
                    for event in events {
                        if let MovieEvent::MovieDetailsUpdated(updated) = &event {
                            prop_assert!(!updated.changes.is_empty());
                        }
                        movie.apply(event);
                        applied += 1;
                    }
                }
                Err(MovieError::VersionConflict { expected: sent, actual }) => {
                    prop_assert_eq!(actual, before);
                    prop_assert_ne!(Some(sent), Some(actual));
                    prop_assert_eq!(Some(sent), expected);
                }
                Err(MovieError::AlreadyExists) => prop_assert!(is_add && before > 0),
                Err(MovieError::NotFound) => prop_assert!(movie.state().is_none()),
                Err(MovieError::Removed | MovieError::AlreadyRemoved) => prop_assert!(was_removed),
                Err(MovieError::NothingToChange) => {}
            }
            prop_assert_eq!(movie.version(), applied);
        }
    }
}

struct ExactPassword;

impl PasswordVerifier for ExactPassword {
    fn verify(&self, password: &str, password_hash: &str) -> bool {
        password == password_hash
    }
}

const PASSWORD: &str = "s3cret";

fn registered_user() -> User {
    let username = Username::parse("carol").unwrap();
    let mut user = User::default();
    user.apply(
        UserRegistered {
            user_id: UserId::for_username(&username),
            username,
            email: Email::parse("carol@example.com").unwrap(),
            password_hash: PASSWORD.into(),
            roles: [Role::User].into(),
            at: Utc.timestamp_opt(0, 0).unwrap(),
        }
        .into(),
    );
    user
}

/// Whether the latest `MAX_FAILED_SIGN_INS` wrong passwords in `run` all fall within the failure
/// window ending at `now`.
fn enough_recent_failures(run: &[DateTime<Utc>], now: DateTime<Utc>) -> bool {
    let needed = MAX_FAILED_SIGN_INS as usize;
    run.len() >= needed && now - run[run.len() - needed] <= FAILURE_WINDOW
}

proptest! {
    /// The lockout rule, stated independently of the aggregate: the account locks exactly when
    /// the five most recent wrong passwords since the last success, lock or unlock all fall
    /// within the failure window; and nobody signs in while it is locked.
    #[test]
    fn lockout_follows_the_rule(attempts in vec((0i64..400, any::<bool>()), 1..60)) {
        let runtime = runtime();
        let services = UserServices { passwords: Arc::new(ExactPassword) };
        let mut user = registered_user();
        let mut applied = 1u64;
        let mut now = Utc.timestamp_opt(1_000, 0).unwrap();
        let mut run: Vec<DateTime<Utc>> = Vec::new();
        let mut locked_until: Option<DateTime<Utc>> = None;
        for (gap_seconds, right_password) in attempts {
            now += TimeDelta::seconds(gap_seconds);
            let password = if right_password { PASSWORD } else { "guess" };
            let command = UserCommand::SignInWithPassword {
                password: password.into(),
                ip: None,
                at: now,
            };
            let was_locked = locked_until.is_some_and(|until| now < until);
            let events = runtime.block_on(user.handle(command, &services)).unwrap();
            let outcome = sign_in_outcome(&events);
            match outcome {
                SignInOutcome::Succeeded => prop_assert!(right_password && !was_locked),
                SignInOutcome::Failed => prop_assert!(!right_password && !was_locked),
                SignInOutcome::Locked => prop_assert!(was_locked || !right_password),
            }
            for event in events {
                match &event {
                    UserEvent::PasswordLoginSucceeded(_) => {
                        prop_assert!(locked_until.is_none());
                        run.clear();
                    }
                    UserEvent::LoginFailed(failed) if failed.reason == LoginFailureReason::BadPassword => {
                        run.push(failed.at);
                    }
                    UserEvent::AccountLocked(locked) => {
                        prop_assert!(enough_recent_failures(&run, now));
                        locked_until = Some(locked.until);
                        run.clear();
                    }
                    UserEvent::AccountUnlocked(_) => {
                        locked_until = None;
                        run.clear();
                    }
                    _ => {}
                }
                user.apply(event);
                applied += 1;
            }
            prop_assert!(
                !enough_recent_failures(&run, now),
                "enough wrong passwords within the window did not lock the account"
            );
            prop_assert_eq!(user.version(), applied);
        }
    }
}
