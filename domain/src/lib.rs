//! Marquee's domain: value types, the `Movie` and `User` aggregates with their commands and
//! events, and the upcasting of old event payloads. Pure: no I/O, no clock, no randomness.
//! Time and ids arrive inside commands.

/// Declares an event enum whose variants each wrap the payload struct of the same name, with the
/// current schema version of each. The variant name is the contract event type, and the bare
/// payload struct (not the tagged enum) is what the event store keeps, so one list drives the
/// type names, the versions and the payload conversions.
macro_rules! event_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($variant:ident => $version:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($variant($variant)),+
        }

        impl $name {
            /// The current schema version of `event_type`, or `None` if it is not one of ours.
            pub fn current_version(event_type: &str) -> Option<u32> {
                match event_type {
                    $(stringify!($variant) => Some($version),)+
                    _ => None,
                }
            }

            /// The payload as stored: the bare event struct, without the enum's tag.
            pub fn payload(&self) -> serde_json::Value {
                let payload = match self {
                    $(Self::$variant(event) => serde_json::to_value(event),)+
                };
                payload.expect("event payloads are plain structs with string keys")
            }

            /// Rebuilds an event from its stored type name and (already upcast) payload.
            pub fn from_payload(
                event_type: &str,
                payload: serde_json::Value,
            ) -> Result<Self, serde_json::Error> {
                match event_type {
                    $(stringify!($variant) => serde_json::from_value(payload).map(Self::$variant),)+
                    other => Err(<serde_json::Error as serde::de::Error>::custom(format!(
                        "unknown {} type {other:?}",
                        stringify!($name)
                    ))),
                }
            }

            fn name_and_version(&self) -> (&'static str, u32) {
                match self {
                    $(Self::$variant(_) => (stringify!($variant), $version),)+
                }
            }
        }

        impl cqrs_es::DomainEvent for $name {
            fn event_type(&self) -> String {
                self.name_and_version().0.to_owned()
            }

            fn event_version(&self) -> String {
                self.name_and_version().1.to_string()
            }
        }

        $(
            impl From<$variant> for $name {
                fn from(event: $variant) -> Self {
                    Self::$variant(event)
                }
            }
        )+
    };
}

mod movie;
mod upcast;
mod user;
mod values;

pub use movie::{
    Movie, MovieAdded, MovieChanges, MovieCommand, MovieDetailsUpdated, MovieError, MovieEvent,
    MovieRemoved, MovieState, Poster, PosterAttached,
};
pub use upcast::{current_version, upcast, UpcastError};
pub use user::{
    erases_personal_data, personal_fields, secret_fields, sign_in_outcome, AccountLocked,
    AccountUnlocked, LoginFailed, LoginFailureReason, LoginMethod, PasskeyLoginSucceeded,
    PasskeyRegistered, PasswordLoginSucceeded, PasswordVerifier, PersonalDataErased, RoleGranted,
    SignInOutcome, StoredPasskey, UnlockReason, User, UserCommand, UserError, UserEvent,
    UserRegistered, UserServices, UserState, FAILURE_WINDOW, LOCKOUT, MAX_FAILED_SIGN_INS,
};
pub use values::{
    Description, Director, Email, Genre, Genres, MovieId, PasswordHash, Role, Secret, Title,
    UserId, Username, ValidationError, Year, ERASED, REDACTED,
};
