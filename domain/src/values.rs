//! Value types that can only hold valid data: each is built by `parse`, and deserialisation goes
//! through the same rules, so holding one is proof it was checked.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a raw input was refused. The message is written for API users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{field} must be {min} to {max} characters")]
    Length {
        field: &'static str,
        min: usize,
        max: usize,
    },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} must not contain control characters")]
    ControlCharacters { field: &'static str },
    #[error("year must be between {min} and {max}")]
    YearOutOfRange { min: i32, max: i32 },
    #[error("year must be {min} or later")]
    YearTooEarly { min: i32 },
    #[error("at most {max} genres are allowed")]
    TooManyGenres { max: usize },
    #[error(
        "username may contain only ASCII letters, digits, '_', '-' and '.', \
         and must start with a letter or digit"
    )]
    UsernameCharacters,
    #[error("email must be a valid address like name@example.com")]
    EmailFormat,
    #[error("role must be one of: user, admin, auditor")]
    UnknownRole,
    #[error("id must be a UUID")]
    MalformedId,
}

impl ValidationError {
    /// The input field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Length { field, .. }
            | Self::TooLong { field, .. }
            | Self::ControlCharacters { field } => field,
            Self::YearOutOfRange { .. } | Self::YearTooEarly { .. } => "year",
            Self::TooManyGenres { .. } => "genres",
            Self::UsernameCharacters => "username",
            Self::EmailFormat => "email",
            Self::UnknownRole => "role",
            Self::MalformedId => "id",
        }
    }
}

/// Trims `raw` and checks it is 1 to `max` characters with no control characters.
fn single_line_text(raw: &str, field: &'static str, max: usize) -> Result<String, ValidationError> {
    let text = raw.trim();
    if !(1..=max).contains(&text.chars().count()) {
        return Err(ValidationError::Length { field, min: 1, max });
    }
    if text.chars().any(char::is_control) {
        return Err(ValidationError::ControlCharacters { field });
    }
    Ok(text.to_owned())
}

/// The accessors shared by the string-backed values; `$name::parse(&str)` must exist.
macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

/// A movie title: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        single_line_text(raw, "title", Self::MAX_CHARS).map(Self)
    }
}

string_value!(Title);

/// A director's name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Director(String);

impl Director {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        single_line_text(raw, "director", Self::MAX_CHARS).map(Self)
    }
}

string_value!(Director);

/// One genre: trimmed, 1 to 50 characters, no control characters. Keeps the case it was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Genre(String);

impl Genre {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        single_line_text(raw, "genre", Self::MAX_CHARS).map(Self)
    }

    fn same_genre_as(&self, other: &Genre) -> bool {
        self.0.to_lowercase() == other.0.to_lowercase()
    }
}

string_value!(Genre);

/// A movie's genres, in the order given, at most 10. A genre repeated in another case
/// ("Drama", "drama") is dropped and the first spelling kept, so the limit counts distinct genres.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Genres(Vec<Genre>);

impl Genres {
    pub const MAX: usize = 10;

    pub fn parse<I>(raw: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut genres: Vec<Genre> = Vec::new();
        for item in raw {
            let genre = Genre::parse(item.as_ref())?;
            if genres.iter().any(|kept| kept.same_genre_as(&genre)) {
                continue;
            }
            if genres.len() == Self::MAX {
                return Err(ValidationError::TooManyGenres { max: Self::MAX });
            }
            genres.push(genre);
        }
        Ok(Self(genres))
    }

    pub fn as_slice(&self) -> &[Genre] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for Genres {
    type Error = ValidationError;

    fn try_from(raw: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

/// A free-text description: trimmed, at most 5000 characters, may be empty. Line breaks are
/// allowed, unlike in single-line values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 5000;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let text = raw.trim();
        if text.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::TooLong {
                field: "description",
                max: Self::MAX_CHARS,
            });
        }
        Ok(Self(text.to_owned()))
    }
}

string_value!(Description);

/// A release year, from 1878 (the first motion picture) up to five years ahead of the current
/// year, which the caller takes from the command's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i32")]
pub struct Year(i32);

impl Year {
    pub const EARLIEST: i32 = 1878;
    pub const MAX_YEARS_AHEAD: i32 = 5;

    pub fn parse(year: i32, current_year: i32) -> Result<Self, ValidationError> {
        let latest = current_year.saturating_add(Self::MAX_YEARS_AHEAD);
        if (Self::EARLIEST..=latest).contains(&year) {
            Ok(Self(year))
        } else {
            Err(ValidationError::YearOutOfRange {
                min: Self::EARLIEST,
                max: latest,
            })
        }
    }

    pub fn value(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Year {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Only the lower bound: the upper one moves with the clock, and stored events must always load.
impl TryFrom<i32> for Year {
    type Error = ValidationError;

    fn try_from(year: i32) -> Result<Self, Self::Error> {
        if year >= Self::EARLIEST {
            Ok(Self(year))
        } else {
            Err(ValidationError::YearTooEarly {
                min: Self::EARLIEST,
            })
        }
    }
}

/// A username: 3 to 32 ASCII letters, digits, `_`, `-` or `.`, starting with a letter or digit.
/// Surrounding whitespace is trimmed and the name is stored lower-cased, so names that differ
/// only in case are the same name (and the same `UserId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Username(String);

impl Username {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&name.chars().count()) {
            return Err(ValidationError::Length {
                field: "username",
                min: Self::MIN_CHARS,
                max: Self::MAX_CHARS,
            });
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(allowed) {
            return Err(ValidationError::UsernameCharacters);
        }
        Ok(Self(name.to_ascii_lowercase()))
    }
}

string_value!(Username);

/// An email address: trimmed, at most 254 characters, no whitespace, exactly one `@` with a
/// non-empty local part and a dotted domain. The domain is lower-cased (ASCII only: international
/// domains arrive punycoded); the local part keeps its case because mail servers may honour it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

/// What a personal field reads as once its owner's key is destroyed (crypto-shredding). The event
/// store writes the same text in place of a field it can no longer decrypt.
pub const ERASED: &str = "[erased]";

/// What a secret payload field (`secret_fields`: a password hash) reads as in every view of the
/// history given out (GraphQL `events` and `eventAppended`, `marquee events`, the bus). The event
/// store keeps the value, which the aggregates need, and writes this text in its place on the way
/// out; the ledger hashes what is stored.
pub const REDACTED: &str = "[redacted]";

/// Text that must never be printed: a plaintext password, a password hash. `Debug` shows
/// `Secret("[redacted]")`; there is no `Display` and no `Serialize`, so the text is reached only
/// through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret").field(&REDACTED).finish()
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

/// A stored password hash (a PHC string). Unlike `Secret` it is part of `UserRegistered`, so it
/// serializes, as the bare string (the stored form is unchanged); `Debug` prints the marker, so
/// a logged event, state or command never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PasswordHash").field(&REDACTED).finish()
    }
}

impl From<String> for PasswordHash {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for PasswordHash {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl Email {
    pub const MAX_CHARS: usize = 254;

    /// The address of a user whose personal data was erased. `parse` never yields it.
    pub fn erased() -> Self {
        Self(ERASED.to_owned())
    }

    pub fn is_erased(&self) -> bool {
        self.0 == ERASED
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let email = raw.trim();
        if email.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::TooLong {
                field: "email",
                max: Self::MAX_CHARS,
            });
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError::EmailFormat);
        }
        let (local, domain) = email.split_once('@').ok_or(ValidationError::EmailFormat)?;
        let dotted_domain = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || domain.contains('@') || !dotted_domain {
            return Err(ValidationError::EmailFormat);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Stored events may hold the erased marker where an address was; input never can.
impl TryFrom<String> for Email {
    type Error = ValidationError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        if raw == ERASED {
            return Ok(Self::erased());
        }
        Self::parse(&raw)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

/// What a user may do. Every registered user has `User`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts the role name in any case, ignoring surrounding whitespace.
impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            "auditor" => Ok(Self::Auditor),
            _ => Err(ValidationError::UnknownRole),
        }
    }
}

/// The accessors shared by the UUID-backed ids.
macro_rules! uuid_id {
    ($name:ident) => {
        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(raw.trim())
                    .map(Self)
                    .map_err(|_| ValidationError::MalformedId)
            }
        }
    };
}

/// Identifies a movie stream. Serialised as the hyphenated UUID string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MovieId(Uuid);

uuid_id!(MovieId);

/// Identifies a user stream. Serialised as the hyphenated UUID string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

/// Marquee's UUID v5 namespace for user ids. Changing it would orphan every existing user stream.
const USER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d61_7271_7565_4e65_8000_7573_6572_7331);

impl UserId {
    /// The id of the stream for `username`. Deterministic, so "is this username taken?" is "does
    /// this stream exist?", and the store's stream uniqueness enforces unique usernames.
    pub fn for_username(username: &Username) -> Self {
        Self(Uuid::new_v5(
            &USER_ID_NAMESPACE,
            username.as_str().as_bytes(),
        ))
    }
}

uuid_id!(UserId);
