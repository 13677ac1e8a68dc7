//! The `User` aggregate: registration, sign-ins with lockout, passkeys and roles. Every sign-in
//! attempt, good or bad, is recorded as an event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::values::{Email, PasswordHash, Role, Secret, UserId, Username};

/// How many failed password sign-ins within `FAILURE_WINDOW` lock the account.
pub const MAX_FAILED_SIGN_INS: u32 = 5;
/// How long a lockout lasts.
pub const LOCKOUT: TimeDelta = TimeDelta::minutes(15);
/// How far back failed password sign-ins count towards a lockout.
pub const FAILURE_WINDOW: TimeDelta = TimeDelta::minutes(15);

/// Checks a plaintext password against a stored hash. The hashing scheme lives outside the domain.
pub trait PasswordVerifier: Send + Sync {
    fn verify(&self, password: &str, password_hash: &str) -> bool;
}

#[derive(Clone)]
pub struct UserServices {
    pub passwords: Arc<dyn PasswordVerifier>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// `id` must be `UserId::for_username(&username)`.
    Register {
        id: UserId,
        username: Username,
        email: Email,
        /// Like `password` below, it prints as the marker, so logging a command shows neither.
        password_hash: PasswordHash,
        at: DateTime<Utc>,
    },
    /// `password` is plaintext: it is only verified, never stored.
    SignInWithPassword {
        password: Secret,
        ip: Option<String>,
        at: DateTime<Utc>,
    },
    /// `passkey` is the verified credential as the WebAuthn library stores it.
    RegisterPasskey {
        credential_id: String,
        passkey: Value,
        at: DateTime<Utc>,
    },
    /// Sent after the WebAuthn assertion has been verified; `counter` is its signature counter.
    SignInWithPasskey {
        credential_id: String,
        counter: u32,
        ip: Option<String>,
        at: DateTime<Utc>,
    },
    /// A passkey sign-in for this account whose assertion did not verify.
    RecordFailedPasskeySignIn {
        ip: Option<String>,
        at: DateTime<Utc>,
    },
    /// `by: None` is the operator bootstrapping the first admin from the CLI.
    GrantRole {
        role: Role,
        by: Option<UserId>,
        at: DateTime<Utc>,
    },
    /// An admin lifts a lockout early.
    Unlock { by: UserId, at: DateTime<Utc> },
    /// The scheduler lifts a lockout that has run out; does nothing otherwise.
    UnlockIfExpired { at: DateTime<Utc> },
    /// Crypto-shredding: the store destroys the user's key when it appends the event. `by: None`
    /// is the operator's CLI.
    ErasePersonalData {
        by: Option<UserId>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMethod {
    Password,
    Passkey,
}

impl LoginMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Passkey => "passkey",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailureReason {
    BadPassword,
    /// Refused without checking the credentials.
    AccountLocked,
    /// The passkey's signature counter did not increase: the authenticator may have been cloned.
    CounterRegression,
    /// The passkey assertion did not verify: a bad signature, no user verification, or a
    /// credential this account does not have.
    InvalidAssertion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockReason {
    Expired,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub roles: BTreeSet<Role>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordLoginSucceeded {
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginFailed {
    pub method: LoginMethod,
    pub reason: LoginFailureReason,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyRegistered {
    pub credential_id: String,
    pub passkey: Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyLoginSucceeded {
    pub credential_id: String,
    pub counter: u32,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountLocked {
    pub until: DateTime<Utc>,
    pub failures: u32,
    pub at: DateTime<Utc>,
}

/// `by` is the admin who unlocked, or `None` when the lockout ran out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUnlocked {
    pub by: Option<UserId>,
    pub reason: UnlockReason,
    pub at: DateTime<Utc>,
}

/// `granted_by: None` is the operator's CLI bootstrap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleGranted {
    pub role: Role,
    pub granted_by: Option<UserId>,
    pub at: DateTime<Utc>,
}

/// The user's key was destroyed: their email, sign-in addresses and request metadata now read as
/// erased everywhere, and the account can no longer be used. `erased_by: None` is the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonalDataErased {
    pub erased_by: Option<UserId>,
    pub at: DateTime<Utc>,
}

event_enum! {
    /// Everything that can happen to a user.
    pub enum UserEvent {
        UserRegistered => 1,
        PasswordLoginSucceeded => 1,
        LoginFailed => 1,
        PasskeyRegistered => 1,
        PasskeyLoginSucceeded => 1,
        AccountLocked => 1,
        AccountUnlocked => 1,
        RoleGranted => 1,
        PersonalDataErased => 1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("username is already taken")]
    AlreadyRegistered,
    #[error("user id must be derived from the username")]
    IdDoesNotMatchUsername,
    #[error("user not found")]
    NotFound,
    /// A sign-in for a user that does not exist; callers answer it like a wrong password.
    #[error("invalid credentials")]
    UnknownUser,
    #[error("this passkey is not registered")]
    UnknownPasskey,
    #[error("this passkey is already registered")]
    PasskeyAlreadyRegistered,
    #[error("user already has the {role} role")]
    RoleAlreadyGranted { role: Role },
    #[error("account is not locked")]
    NotLocked,
    #[error("the user's personal data is already erased")]
    AlreadyErased,
}

/// How a sign-in command went, read from the events it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInOutcome {
    Succeeded,
    Failed,
    /// Refused because the account is locked, or this failure locked it.
    Locked,
}

pub fn sign_in_outcome(events: &[UserEvent]) -> SignInOutcome {
    let succeeded = events.iter().any(|event| {
        matches!(
            event,
            UserEvent::PasswordLoginSucceeded(_) | UserEvent::PasskeyLoginSucceeded(_)
        )
    });
    let locked = events.iter().any(|event| match event {
        UserEvent::AccountLocked(_) => true,
        UserEvent::LoginFailed(failed) => failed.reason == LoginFailureReason::AccountLocked,
        _ => false,
    });
    if succeeded {
        SignInOutcome::Succeeded
    } else if locked {
        SignInOutcome::Locked
    } else {
        SignInOutcome::Failed
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPasskey {
    pub passkey: Value,
    /// The highest signature counter seen; 0 for authenticators that do not count.
    pub counter: u32,
}

/// A registered user's current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub roles: BTreeSet<Role>,
    /// Keyed by credential id.
    pub passkeys: BTreeMap<String, StoredPasskey>,
    /// Failed password sign-ins since the last success or lock change, within `FAILURE_WINDOW`.
    pub recent_failed_sign_ins: Vec<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    pub registered_at: DateTime<Utc>,
    /// Personal data erased: the account stays in the history but can no longer be used.
    #[serde(default)]
    pub erased: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockStatus {
    Unlocked,
    Locked,
    /// Still recorded as locked, but the lockout has run out.
    Expired,
}

impl UserState {
    fn registered(event: UserRegistered) -> Self {
        Self {
            id: event.user_id,
            username: event.username,
            email: event.email,
            password_hash: event.password_hash,
            roles: event.roles,
            passkeys: BTreeMap::new(),
            recent_failed_sign_ins: Vec::new(),
            locked_until: None,
            registered_at: event.at,
            erased: false,
        }
    }

    fn lock_status(&self, at: DateTime<Utc>) -> LockStatus {
        match self.locked_until {
            None => LockStatus::Unlocked,
            Some(until) if at < until => LockStatus::Locked,
            Some(_) => LockStatus::Expired,
        }
    }

    fn sign_in_with_password(
        &self,
        password: &str,
        ip: Option<String>,
        at: DateTime<Utc>,
        passwords: &dyn PasswordVerifier,
    ) -> Vec<UserEvent> {
        let mut events = Vec::new();
        let mut earlier_failures = self.recent_failed_sign_ins.as_slice();
        match self.lock_status(at) {
            LockStatus::Locked => {
                return vec![refused_while_locked(LoginMethod::Password, ip, at)];
            }
            LockStatus::Expired => {
                events.push(expired_lock_lifted(at));
                // The unlock clears the failures that caused the lock.
                earlier_failures = &[];
            }
            LockStatus::Unlocked => {}
        }
        if passwords.verify(password, self.password_hash.as_str()) {
            events.push(PasswordLoginSucceeded { ip, at }.into());
            return events;
        }
        let in_window = earlier_failures
            .iter()
            .filter(|&&failed_at| within_failure_window(failed_at, at))
            .count();
        let failures = u32::try_from(in_window + 1).unwrap_or(u32::MAX);
        events.push(
            LoginFailed {
                method: LoginMethod::Password,
                reason: LoginFailureReason::BadPassword,
                ip,
                at,
            }
            .into(),
        );
        if failures >= MAX_FAILED_SIGN_INS {
            events.push(
                AccountLocked {
                    until: at + LOCKOUT,
                    failures,
                    at,
                }
                .into(),
            );
        }
        events
    }

    fn sign_in_with_passkey(
        &self,
        credential_id: String,
        counter: u32,
        ip: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        let mut events = Vec::new();
        match self.lock_status(at) {
            LockStatus::Locked => {
                return Ok(vec![refused_while_locked(LoginMethod::Passkey, ip, at)]);
            }
            LockStatus::Expired => events.push(expired_lock_lifted(at)),
            LockStatus::Unlocked => {}
        }
        let stored = self
            .passkeys
            .get(&credential_id)
            .ok_or(UserError::UnknownPasskey)?;
        if stored.counter > 0 && counter <= stored.counter {
            events.push(
                LoginFailed {
                    method: LoginMethod::Passkey,
                    reason: LoginFailureReason::CounterRegression,
                    ip,
                    at,
                }
                .into(),
            );
        } else {
            events.push(
                PasskeyLoginSucceeded {
                    credential_id,
                    counter,
                    ip,
                    at,
                }
                .into(),
            );
        }
        Ok(events)
    }
}

/// Inclusive: failures exactly `FAILURE_WINDOW` apart still count together.
fn within_failure_window(failed_at: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    at - failed_at <= FAILURE_WINDOW
}

fn refused_while_locked(method: LoginMethod, ip: Option<String>, at: DateTime<Utc>) -> UserEvent {
    LoginFailed {
        method,
        reason: LoginFailureReason::AccountLocked,
        ip,
        at,
    }
    .into()
}

fn expired_lock_lifted(at: DateTime<Utc>) -> UserEvent {
    AccountUnlocked {
        by: None,
        reason: UnlockReason::Expired,
        at,
    }
    .into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    state: Option<UserState>,
    version: u64,
}

impl User {
    /// `None` until the user has registered.
    pub fn state(&self) -> Option<&UserState> {
        self.state.as_ref()
    }

    pub fn is_registered(&self) -> bool {
        self.state.is_some()
    }

    /// The number of events applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A user whose personal data was erased is gone for every command but the erasure itself.
    fn registered(&self) -> Result<&UserState, UserError> {
        self.state
            .as_ref()
            .filter(|user| !user.erased)
            .ok_or(UserError::NotFound)
    }

    /// Sign-ins answer an erased user as they answer an unknown one.
    fn signing_in(&self) -> Result<&UserState, UserError> {
        self.registered().map_err(|_| UserError::UnknownUser)
    }
}

#[async_trait]
impl Aggregate for User {
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = UserServices;

    fn aggregate_type() -> String {
        "User".to_owned()
    }

    async fn handle(
        &self,
        command: UserCommand,
        services: &UserServices,
    ) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register {
                id,
                username,
                email,
                password_hash,
                at,
            } => {
                if self.is_registered() {
                    return Err(UserError::AlreadyRegistered);
                }
                if id != UserId::for_username(&username) {
                    return Err(UserError::IdDoesNotMatchUsername);
                }
                Ok(vec![UserRegistered {
                    user_id: id,
                    username,
                    email,
                    password_hash,
                    roles: BTreeSet::from([Role::User]),
                    at,
                }
                .into()])
            }
            UserCommand::SignInWithPassword { password, ip, at } => {
                let user = self.signing_in()?;
                Ok(user.sign_in_with_password(
                    password.expose(),
                    ip,
                    at,
                    services.passwords.as_ref(),
                ))
            }
            UserCommand::RegisterPasskey {
                credential_id,
                passkey,
                at,
            } => {
                if self.registered()?.passkeys.contains_key(&credential_id) {
                    return Err(UserError::PasskeyAlreadyRegistered);
                }
                Ok(vec![PasskeyRegistered {
                    credential_id,
                    passkey,
                    at,
                }
                .into()])
            }
            UserCommand::SignInWithPasskey {
                credential_id,
                counter,
                ip,
                at,
            } => {
                let user = self.signing_in()?;
                user.sign_in_with_passkey(credential_id, counter, ip, at)
            }
            UserCommand::RecordFailedPasskeySignIn { ip, at } => {
                self.signing_in()?;
                Ok(vec![LoginFailed {
                    method: LoginMethod::Passkey,
                    reason: LoginFailureReason::InvalidAssertion,
                    ip,
                    at,
                }
                .into()])
            }
            UserCommand::GrantRole { role, by, at } => {
                if self.registered()?.roles.contains(&role) {
                    return Err(UserError::RoleAlreadyGranted { role });
                }
                Ok(vec![RoleGranted {
                    role,
                    granted_by: by,
                    at,
                }
                .into()])
            }
            UserCommand::Unlock { by, at } => {
                // An expired lockout that nobody has lifted yet still counts as locked here.
                if self.registered()?.locked_until.is_none() {
                    return Err(UserError::NotLocked);
                }
                Ok(vec![AccountUnlocked {
                    by: Some(by),
                    reason: UnlockReason::Admin,
                    at,
                }
                .into()])
            }
            UserCommand::UnlockIfExpired { at } => match self.registered() {
                Ok(user) if user.lock_status(at) == LockStatus::Expired => {
                    Ok(vec![expired_lock_lifted(at)])
                }
                _ => Ok(vec![]),
            },
            UserCommand::ErasePersonalData { by, at } => {
                if self.state.as_ref().ok_or(UserError::NotFound)?.erased {
                    return Err(UserError::AlreadyErased);
                }
                Ok(vec![PersonalDataErased { erased_by: by, at }.into()])
            }
        }
    }

    fn apply(&mut self, event: UserEvent) {
        self.version += 1;
        match (event, &mut self.state) {
            (UserEvent::UserRegistered(registered), state) => {
                *state = Some(UserState::registered(registered));
            }
            // Any successful sign-in proves the user holds their credentials, so earlier
            // password failures stop counting.
            (UserEvent::PasswordLoginSucceeded(_), Some(user)) => {
                user.recent_failed_sign_ins.clear();
            }
            (UserEvent::PasskeyLoginSucceeded(succeeded), Some(user)) => {
                user.recent_failed_sign_ins.clear();
                if let Some(stored) = user.passkeys.get_mut(&succeeded.credential_id) {
                    stored.counter = succeeded.counter;
                }
            }
            (UserEvent::LoginFailed(failed), Some(user)) => {
                // Only wrong passwords count towards a lockout: refusals while locked and passkey
                // counter regressions are not guesses.
                if failed.reason == LoginFailureReason::BadPassword {
                    user.recent_failed_sign_ins
                        .retain(|&failed_at| within_failure_window(failed_at, failed.at));
                    user.recent_failed_sign_ins.push(failed.at);
                }
            }
            (UserEvent::PasskeyRegistered(registered), Some(user)) => {
                user.passkeys.insert(
                    registered.credential_id,
                    StoredPasskey {
                        passkey: registered.passkey,
                        counter: 0,
                    },
                );
            }
            // Locking consumes the failures and unlocking starts afresh, so a lifted lockout is
            // not re-triggered by the failures that caused it.
            (UserEvent::AccountLocked(locked), Some(user)) => {
                user.locked_until = Some(locked.until);
                user.recent_failed_sign_ins.clear();
            }
            (UserEvent::AccountUnlocked(_), Some(user)) => {
                user.locked_until = None;
                user.recent_failed_sign_ins.clear();
            }
            (UserEvent::RoleGranted(granted), Some(user)) => {
                user.roles.insert(granted.role);
            }
            (UserEvent::PersonalDataErased(_), Some(user)) => {
                user.erased = true;
                user.email = Email::erased();
            }
            // A stream that lacks `UserRegistered` has nothing to update; the event still counts.
            (_, None) => {}
        }
    }
}

/// The payload fields of `event_type` that hold personal data: the event store seals them with
/// the key of the event's data subject (the user whose stream it is).
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "UserRegistered" => &["email"],
        "PasswordLoginSucceeded" | "LoginFailed" | "PasskeyLoginSucceeded" => &["ip"],
        _ => &[],
    }
}

/// The payload fields of `event_type` that hold secrets (a password hash): stored, because the
/// aggregate needs them, but shown as `REDACTED` in every view of the history the event store
/// gives out. Names every schema version's field, since the relay publishes payloads as stored.
pub fn secret_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "UserRegistered" => &["password_hash"],
        _ => &[],
    }
}

/// Whether appending an event of `event_type` destroys its data subject's key.
pub fn erases_personal_data(event_type: &str) -> bool {
    event_type == "PersonalDataErased"
}
