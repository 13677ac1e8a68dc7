use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use domain::{
    erases_personal_data, personal_fields, secret_fields, sign_in_outcome, AccountLocked,
    AccountUnlocked, Email, LoginFailed, LoginFailureReason, LoginMethod, PasskeyLoginSucceeded,
    PasskeyRegistered, PasswordLoginSucceeded, PasswordVerifier, PersonalDataErased, Role,
    RoleGranted, SignInOutcome, UnlockReason, User, UserCommand, UserError, UserEvent, UserId,
    UserRegistered, UserServices, Username, ERASED, FAILURE_WINDOW, LOCKOUT, MAX_FAILED_SIGN_INS,
    REDACTED,
};
use serde_json::json;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

/// Accepts a password whose "hash" is `hashed:` followed by the password.
struct FakePasswords;

impl PasswordVerifier for FakePasswords {
    fn verify(&self, password: &str, password_hash: &str) -> bool {
        password_hash.strip_prefix("hashed:") == Some(password)
    }
}

/// For attempts that must be refused before the password is looked at.
struct PasswordsMustNotBeChecked;

impl PasswordVerifier for PasswordsMustNotBeChecked {
    fn verify(&self, _password: &str, _password_hash: &str) -> bool {
        panic!("the password was checked")
    }
}

fn user_test() -> TestFramework<User> {
    TestFramework::with(UserServices {
        passwords: Arc::new(FakePasswords),
    })
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

fn ip() -> Option<String> {
    Some("203.0.113.7".to_owned())
}

fn alice_name() -> Username {
    Username::parse("alice").unwrap()
}

fn alice() -> UserId {
    UserId::for_username(&alice_name())
}

fn admin() -> UserId {
    UserId::from(Uuid::from_u128(0xad))
}

fn registered() -> UserEvent {
    UserRegistered {
        user_id: alice(),
        username: alice_name(),
        email: Email::parse("alice@example.com").unwrap(),
        password_hash: format!("hashed:{PASSWORD}").into(),
        roles: [Role::User].into(),
        at: at(-60),
    }
    .into()
}

fn sign_in(password: &str, minute: i64) -> UserCommand {
    UserCommand::SignInWithPassword {
        password: password.into(),
        ip: ip(),
        at: at(minute),
    }
}

fn bad_password(minute: i64) -> UserEvent {
    login_failed(
        LoginMethod::Password,
        LoginFailureReason::BadPassword,
        minute,
    )
}

fn login_failed(method: LoginMethod, reason: LoginFailureReason, minute: i64) -> UserEvent {
    LoginFailed {
        method,
        reason,
        ip: ip(),
        at: at(minute),
    }
    .into()
}

fn password_ok(minute: i64) -> UserEvent {
    PasswordLoginSucceeded {
        ip: ip(),
        at: at(minute),
    }
    .into()
}

fn locked(minute: i64) -> UserEvent {
    AccountLocked {
        until: at(minute) + LOCKOUT,
        failures: MAX_FAILED_SIGN_INS,
        at: at(minute),
    }
    .into()
}

fn expired_unlock(minute: i64) -> UserEvent {
    AccountUnlocked {
        by: None,
        reason: UnlockReason::Expired,
        at: at(minute),
    }
    .into()
}

/// Registration, then failures at each minute given.
fn failures_at(minutes: &[i64]) -> Vec<UserEvent> {
    let mut events = vec![registered()];
    events.extend(minutes.iter().map(|&minute| bad_password(minute)));
    events
}

/// Registered and locked at minute 0, so locked until minute 15.
fn locked_out() -> Vec<UserEvent> {
    let mut events = failures_at(&[-4, -3, -2, -1, 0]);
    events.push(locked(0));
    events
}

const CREDENTIAL: &str = "credential-1";

fn passkey_registered() -> UserEvent {
    PasskeyRegistered {
        credential_id: CREDENTIAL.to_owned(),
        passkey: json!({"cred": {"cred_id": CREDENTIAL, "counter": 0}}),
        at: at(-30),
    }
    .into()
}

fn passkey_sign_in(counter: u32, minute: i64) -> UserCommand {
    UserCommand::SignInWithPasskey {
        credential_id: CREDENTIAL.to_owned(),
        counter,
        ip: ip(),
        at: at(minute),
    }
}

fn passkey_ok(counter: u32, minute: i64) -> UserEvent {
    PasskeyLoginSucceeded {
        credential_id: CREDENTIAL.to_owned(),
        counter,
        ip: ip(),
        at: at(minute),
    }
    .into()
}

fn replay(events: Vec<UserEvent>) -> User {
    let mut user = User::default();
    for event in events {
        user.apply(event);
    }
    user
}

#[test]
fn aggregate_type_is_user() {
    assert_eq!(User::aggregate_type(), "User");
}

#[test]
fn lockout_rule_constants() {
    assert_eq!(MAX_FAILED_SIGN_INS, 5);
    assert_eq!(LOCKOUT, TimeDelta::minutes(15));
    assert_eq!(FAILURE_WINDOW, TimeDelta::minutes(15));
}

#[test]
fn register_records_the_user_with_the_user_role() {
    user_test()
        .given_no_previous_events()
        .when(UserCommand::Register {
            id: alice(),
            username: alice_name(),
            email: Email::parse("alice@example.com").unwrap(),
            password_hash: format!("hashed:{PASSWORD}").into(),
            at: at(-60),
        })
        .then_expect_events(vec![registered()]);
}

#[test]
fn register_refuses_a_taken_username() {
    user_test()
        .given(vec![registered()])
        .when(UserCommand::Register {
            id: alice(),
            username: alice_name(),
            email: Email::parse("other@example.com").unwrap(),
            password_hash: "hashed:other".into(),
            at: at(0),
        })
        .then_expect_error_message("username is already taken");
}

#[test]
fn register_refuses_an_id_not_derived_from_the_username() {
    user_test()
        .given_no_previous_events()
        .when(UserCommand::Register {
            id: admin(),
            username: alice_name(),
            email: Email::parse("alice@example.com").unwrap(),
            password_hash: "hashed:x".into(),
            at: at(0),
        })
        .then_expect_error(UserError::IdDoesNotMatchUsername);
}

#[test]
fn sign_in_for_an_unknown_user_is_an_error() {
    user_test()
        .given_no_previous_events()
        .when(sign_in(PASSWORD, 0))
        .then_expect_error(UserError::UnknownUser);
    user_test()
        .given_no_previous_events()
        .when(passkey_sign_in(1, 0))
        .then_expect_error_message("invalid credentials");
}

#[test]
fn right_password_succeeds() {
    user_test()
        .given(vec![registered()])
        .when(sign_in(PASSWORD, 0))
        .then_expect_events(vec![password_ok(0)]);
}

#[test]
fn wrong_password_is_recorded_as_a_failure() {
    user_test()
        .given(vec![registered()])
        .when(sign_in("hunter2", 0))
        .then_expect_events(vec![bad_password(0)]);
}

#[test]
fn fifth_failure_within_fifteen_minutes_locks_the_account() {
    user_test()
        .given(failures_at(&[0, 1, 2, 3]))
        .when(sign_in("hunter2", 4))
        .then_expect_events(vec![bad_password(4), locked(4)]);
}

#[test]
fn failures_exactly_fifteen_minutes_apart_still_count_together() {
    user_test()
        .given(failures_at(&[0, 5, 10, 12]))
        .when(sign_in("hunter2", 15))
        .then_expect_events(vec![bad_password(15), locked(15)]);
}

#[test]
fn failures_spread_over_more_than_fifteen_minutes_do_not_lock() {
    user_test()
        .given(failures_at(&[0, 5, 10, 12]))
        .when(sign_in("hunter2", 16))
        .then_expect_events(vec![bad_password(16)]);
    user_test()
        .given(failures_at(&[0, 20, 40, 60, 80, 100]))
        .when(sign_in("hunter2", 120))
        .then_expect_events(vec![bad_password(120)]);
}

#[test]
fn a_successful_sign_in_clears_earlier_failures() {
    let mut history = failures_at(&[0, 1, 2, 3]);
    history.push(password_ok(4));
    user_test()
        .given(history)
        .when(sign_in("hunter2", 5))
        .then_expect_events(vec![bad_password(5)]);
}

#[test]
fn locked_account_refuses_without_checking_the_password() {
    TestFramework::<User>::with(UserServices {
        passwords: Arc::new(PasswordsMustNotBeChecked),
    })
    .given(locked_out())
    .when(sign_in(PASSWORD, 14))
    .then_expect_events(vec![login_failed(
        LoginMethod::Password,
        LoginFailureReason::AccountLocked,
        14,
    )]);
}

#[test]
fn expired_lock_is_lifted_before_the_sign_in_is_evaluated() {
    user_test()
        .given(locked_out())
        .when(sign_in(PASSWORD, 15))
        .then_expect_events(vec![expired_unlock(15), password_ok(15)]);
}

#[test]
fn failures_before_an_expired_lock_do_not_count_afterwards() {
    let mut history = locked_out();
    history.push(login_failed(
        LoginMethod::Password,
        LoginFailureReason::AccountLocked,
        10,
    ));
    user_test()
        .given(history)
        .when(sign_in("hunter2", 15))
        .then_expect_events(vec![expired_unlock(15), bad_password(15)]);
}

#[test]
fn register_passkey_records_it() {
    user_test()
        .given(vec![registered()])
        .when(UserCommand::RegisterPasskey {
            credential_id: CREDENTIAL.to_owned(),
            passkey: json!({"cred": {"cred_id": CREDENTIAL, "counter": 0}}),
            at: at(-30),
        })
        .then_expect_events(vec![passkey_registered()]);
}

#[test]
fn register_passkey_refuses_unknown_users_and_known_credentials() {
    let register = UserCommand::RegisterPasskey {
        credential_id: CREDENTIAL.to_owned(),
        passkey: json!({}),
        at: at(0),
    };
    user_test()
        .given_no_previous_events()
        .when(register.clone())
        .then_expect_error(UserError::NotFound);
    user_test()
        .given(vec![registered(), passkey_registered()])
        .when(register)
        .then_expect_error(UserError::PasskeyAlreadyRegistered);
}

#[test]
fn passkey_sign_in_succeeds_with_an_increasing_counter() {
    user_test()
        .given(vec![registered(), passkey_registered()])
        .when(passkey_sign_in(1, 0))
        .then_expect_events(vec![passkey_ok(1, 0)]);
    user_test()
        .given(vec![registered(), passkey_registered(), passkey_ok(7, 0)])
        .when(passkey_sign_in(8, 1))
        .then_expect_events(vec![passkey_ok(8, 1)]);
}

#[test]
fn passkey_without_a_counter_keeps_signing_in_at_zero() {
    user_test()
        .given(vec![registered(), passkey_registered(), passkey_ok(0, 0)])
        .when(passkey_sign_in(0, 1))
        .then_expect_events(vec![passkey_ok(0, 1)]);
}

#[test]
fn passkey_counter_regression_is_a_failed_sign_in() {
    for regressed in [7, 3, 0] {
        user_test()
            .given(vec![registered(), passkey_registered(), passkey_ok(7, 0)])
            .when(passkey_sign_in(regressed, 1))
            .then_expect_events(vec![login_failed(
                LoginMethod::Passkey,
                LoginFailureReason::CounterRegression,
                1,
            )]);
    }
}

#[test]
fn passkey_sign_in_refuses_an_unknown_credential() {
    user_test()
        .given(vec![registered()])
        .when(passkey_sign_in(1, 0))
        .then_expect_error(UserError::UnknownPasskey);
}

#[test]
fn passkey_sign_in_is_refused_while_locked() {
    let mut history = locked_out();
    history.insert(1, passkey_registered());
    user_test()
        .given(history.clone())
        .when(passkey_sign_in(1, 5))
        .then_expect_events(vec![login_failed(
            LoginMethod::Passkey,
            LoginFailureReason::AccountLocked,
            5,
        )]);
    user_test()
        .given(history)
        .when(passkey_sign_in(1, 20))
        .then_expect_events(vec![expired_unlock(20), passkey_ok(1, 20)]);
}

#[test]
fn grant_role_records_who_granted_it() {
    user_test()
        .given(vec![registered()])
        .when(UserCommand::GrantRole {
            role: Role::Auditor,
            by: Some(admin()),
            at: at(0),
        })
        .then_expect_events(vec![RoleGranted {
            role: Role::Auditor,
            granted_by: Some(admin()),
            at: at(0),
        }
        .into()]);
}

#[test]
fn operator_bootstraps_the_first_admin() {
    user_test()
        .given(vec![registered()])
        .when(UserCommand::GrantRole {
            role: Role::Admin,
            by: None,
            at: at(0),
        })
        .then_expect_events(vec![RoleGranted {
            role: Role::Admin,
            granted_by: None,
            at: at(0),
        }
        .into()]);
}

#[test]
fn grant_role_refuses_a_role_already_held() {
    let admin_granted = RoleGranted {
        role: Role::Admin,
        granted_by: None,
        at: at(0),
    };
    user_test()
        .given(vec![registered(), admin_granted.into()])
        .when(UserCommand::GrantRole {
            role: Role::Admin,
            by: Some(admin()),
            at: at(1),
        })
        .then_expect_error_message("user already has the admin role");
    user_test()
        .given(vec![registered()])
        .when(UserCommand::GrantRole {
            role: Role::User,
            by: None,
            at: at(1),
        })
        .then_expect_error(UserError::RoleAlreadyGranted { role: Role::User });
}

#[test]
fn grant_role_refuses_an_unknown_user() {
    user_test()
        .given_no_previous_events()
        .when(UserCommand::GrantRole {
            role: Role::Admin,
            by: None,
            at: at(0),
        })
        .then_expect_error(UserError::NotFound);
}

#[test]
fn admin_unlocks_a_locked_account() {
    user_test()
        .given(locked_out())
        .when(UserCommand::Unlock {
            by: admin(),
            at: at(3),
        })
        .then_expect_events(vec![AccountUnlocked {
            by: Some(admin()),
            reason: UnlockReason::Admin,
            at: at(3),
        }
        .into()]);
}

#[test]
fn after_an_admin_unlock_the_right_password_works_at_once() {
    let mut history = locked_out();
    history.push(
        AccountUnlocked {
            by: Some(admin()),
            reason: UnlockReason::Admin,
            at: at(3),
        }
        .into(),
    );
    user_test()
        .given(history)
        .when(sign_in(PASSWORD, 4))
        .then_expect_events(vec![password_ok(4)]);
}

#[test]
fn admin_unlock_refuses_an_account_that_is_not_locked() {
    let unlock = UserCommand::Unlock {
        by: admin(),
        at: at(3),
    };
    user_test()
        .given(failures_at(&[0, 1]))
        .when(unlock.clone())
        .then_expect_error_message("account is not locked");
    user_test()
        .given_no_previous_events()
        .when(unlock)
        .then_expect_error(UserError::NotFound);
}

#[test]
fn scheduler_lifts_only_expired_locks() {
    let unlock_if_expired = |minute| UserCommand::UnlockIfExpired { at: at(minute) };
    user_test()
        .given(locked_out())
        .when(unlock_if_expired(15))
        .then_expect_events(vec![expired_unlock(15)]);
    user_test()
        .given(locked_out())
        .when(unlock_if_expired(14))
        .then_expect_events(vec![]);
    user_test()
        .given(vec![registered()])
        .when(unlock_if_expired(14))
        .then_expect_events(vec![]);
    user_test()
        .given_no_previous_events()
        .when(unlock_if_expired(14))
        .then_expect_events(vec![]);
}

#[test]
fn sign_in_outcome_reads_the_result_from_the_events() {
    assert_eq!(sign_in_outcome(&[password_ok(0)]), SignInOutcome::Succeeded);
    assert_eq!(
        sign_in_outcome(&[expired_unlock(0), passkey_ok(1, 0)]),
        SignInOutcome::Succeeded
    );
    assert_eq!(sign_in_outcome(&[bad_password(0)]), SignInOutcome::Failed);
    assert_eq!(
        sign_in_outcome(&[login_failed(
            LoginMethod::Passkey,
            LoginFailureReason::CounterRegression,
            0
        )]),
        SignInOutcome::Failed
    );
    assert_eq!(
        sign_in_outcome(&[bad_password(0), locked(0)]),
        SignInOutcome::Locked
    );
    assert_eq!(
        sign_in_outcome(&[login_failed(
            LoginMethod::Password,
            LoginFailureReason::AccountLocked,
            0
        )]),
        SignInOutcome::Locked
    );
    assert_eq!(sign_in_outcome(&[]), SignInOutcome::Failed);
}

#[test]
fn applying_events_builds_the_state() {
    let admin_granted = RoleGranted {
        role: Role::Admin,
        granted_by: None,
        at: at(1),
    };
    let user = replay(vec![
        registered(),
        passkey_registered(),
        passkey_ok(9, 0),
        admin_granted.into(),
        bad_password(2),
    ]);
    let state = user.state().unwrap();
    assert!(user.is_registered());
    assert_eq!(user.version(), 5);
    assert_eq!(state.id, alice());
    assert_eq!(state.username, alice_name());
    assert_eq!(state.roles, [Role::User, Role::Admin].into());
    assert_eq!(state.passkeys[CREDENTIAL].counter, 9);
    assert_eq!(state.recent_failed_sign_ins, vec![at(2)]);
    assert_eq!(state.locked_until, None);
    assert_eq!(state.registered_at, at(-60));

    let user = replay(locked_out());
    let state = user.state().unwrap();
    assert_eq!(state.locked_until, Some(at(15)));
    assert!(state.recent_failed_sign_ins.is_empty());
}

#[test]
fn an_unregistered_user_has_no_state() {
    let user = User::default();
    assert!(!user.is_registered());
    assert_eq!(user.state(), None);
    assert_eq!(user.version(), 0);
}

#[test]
fn event_types_are_the_contract_names_at_version_one() {
    let cases = [
        (registered(), "UserRegistered"),
        (password_ok(0), "PasswordLoginSucceeded"),
        (bad_password(0), "LoginFailed"),
        (passkey_registered(), "PasskeyRegistered"),
        (passkey_ok(1, 0), "PasskeyLoginSucceeded"),
        (locked(0), "AccountLocked"),
        (expired_unlock(0), "AccountUnlocked"),
        (
            RoleGranted {
                role: Role::Admin,
                granted_by: None,
                at: at(0),
            }
            .into(),
            "RoleGranted",
        ),
    ];
    for (event, event_type) in cases {
        assert_eq!(event.event_type(), event_type);
        assert_eq!(event.event_version(), "1");
        assert_eq!(UserEvent::current_version(event_type), Some(1));
        assert_eq!(
            UserEvent::from_payload(event_type, event.payload()).unwrap(),
            event
        );
    }
}

#[test]
fn payloads_are_bare_structs_with_lower_case_enums() {
    assert_eq!(
        bad_password(0).payload(),
        json!({
            "method": "password",
            "reason": "bad_password",
            "ip": "203.0.113.7",
            "at": "2026-03-01T12:00:00Z",
        })
    );
    assert_eq!(
        expired_unlock(0).payload(),
        json!({"by": null, "reason": "expired", "at": "2026-03-01T12:00:00Z"})
    );
    let registered = registered().payload();
    assert_eq!(registered["roles"], json!(["user"]));
    assert_eq!(registered["username"], json!("alice"));
    assert_eq!(LoginMethod::Passkey.as_str(), "passkey");
}

#[test]
fn a_passkey_assertion_that_did_not_verify_is_recorded_and_counts_toward_no_lock() {
    let failed = LoginFailed {
        method: LoginMethod::Passkey,
        reason: LoginFailureReason::InvalidAssertion,
        ip: ip(),
        at: at(1),
    };
    user_test()
        .given(vec![registered()])
        .when(UserCommand::RecordFailedPasskeySignIn {
            ip: ip(),
            at: at(1),
        })
        .then_expect_events(vec![failed.clone().into()]);
    let mut user = User::default();
    user.apply(registered());
    for _ in 0..MAX_FAILED_SIGN_INS {
        user.apply(failed.clone().into());
    }
    assert!(user.state().unwrap().recent_failed_sign_ins.is_empty());
    user_test()
        .given_no_previous_events()
        .when(UserCommand::RecordFailedPasskeySignIn {
            ip: ip(),
            at: at(1),
        })
        .then_expect_error(UserError::UnknownUser);
}

fn erased(minute: i64) -> UserEvent {
    PersonalDataErased {
        erased_by: Some(admin()),
        at: at(minute),
    }
    .into()
}

fn erase(minute: i64) -> UserCommand {
    UserCommand::ErasePersonalData {
        by: Some(admin()),
        at: at(minute),
    }
}

#[test]
fn erasing_personal_data_is_recorded() {
    user_test()
        .given(vec![registered(), password_ok(1)])
        .when(erase(2))
        .then_expect_events(vec![erased(2)]);
    user_test()
        .given(vec![registered()])
        .when(UserCommand::ErasePersonalData {
            by: None,
            at: at(2),
        })
        .then_expect_events(vec![PersonalDataErased {
            erased_by: None,
            at: at(2),
        }
        .into()]);
}

#[test]
fn erasing_twice_or_an_unknown_user_is_an_error() {
    user_test()
        .given(vec![registered(), erased(1)])
        .when(erase(2))
        .then_expect_error(UserError::AlreadyErased);
    user_test()
        .given_no_previous_events()
        .when(erase(2))
        .then_expect_error(UserError::NotFound);
}

#[test]
fn an_erased_user_cannot_sign_in_and_is_answered_like_an_unknown_one() {
    let test = || {
        TestFramework::<User>::with(UserServices {
            passwords: Arc::new(PasswordsMustNotBeChecked),
        })
    };
    test()
        .given(vec![registered(), erased(1)])
        .when(sign_in(PASSWORD, 2))
        .then_expect_error(UserError::UnknownUser);
    test()
        .given(vec![registered(), passkey_registered(), erased(1)])
        .when(passkey_sign_in(7, 2))
        .then_expect_error(UserError::UnknownUser);
    test()
        .given(vec![registered(), erased(1)])
        .when(UserCommand::RecordFailedPasskeySignIn {
            ip: ip(),
            at: at(2),
        })
        .then_expect_error(UserError::UnknownUser);
}

#[test]
fn an_erased_user_takes_no_other_command() {
    for command in [
        UserCommand::GrantRole {
            role: Role::Admin,
            by: Some(admin()),
            at: at(2),
        },
        UserCommand::RegisterPasskey {
            credential_id: "cred".into(),
            passkey: json!({}),
            at: at(2),
        },
    ] {
        user_test()
            .given(vec![registered(), erased(1)])
            .when(command)
            .then_expect_error(UserError::NotFound);
    }
    let mut events = locked_out();
    events.push(erased(30));
    user_test()
        .given(events)
        .when(UserCommand::UnlockIfExpired { at: at(90) })
        .then_expect_events(vec![]);
}

#[test]
fn erasure_replaces_the_email_in_the_state() {
    let user = replay(vec![registered(), erased(1)]);
    let state = user.state().unwrap();
    assert!(state.erased);
    assert!(state.email.is_erased());
    assert_eq!(state.email.as_str(), ERASED);
}

#[test]
fn the_erased_marker_is_never_a_valid_address_but_reads_back_from_events() {
    assert!(Email::parse(ERASED).is_err());
    let stored = json!({
        "user_id": alice().to_string(),
        "username": "alice",
        "email": ERASED,
        "password_hash": "x",
        "roles": ["user"],
        "at": at(0),
    });
    let event = UserEvent::from_payload("UserRegistered", stored).unwrap();
    let UserEvent::UserRegistered(registered) = event else {
        panic!("not a registration")
    };
    assert!(registered.email.is_erased());
}

#[test]
fn personal_fields_name_real_payload_fields() {
    let events = [
        registered(),
        password_ok(1),
        login_failed(LoginMethod::Password, LoginFailureReason::BadPassword, 2),
        passkey_ok(3, 4),
    ];
    for event in events {
        let fields = personal_fields(&event.event_type());
        assert!(!fields.is_empty(), "{}", event.event_type());
        let payload = event.payload();
        for field in fields {
            assert!(
                payload.get(field).is_some(),
                "{} has no {field}",
                event.event_type()
            );
        }
    }
    assert!(personal_fields("RoleGranted").is_empty());
    assert!(erases_personal_data(&erased(1).event_type()));
    assert!(!erases_personal_data("UserRegistered"));
}

#[test]
fn secret_fields_name_real_payload_fields_and_no_personal_one() {
    let payload = registered().payload();
    assert_eq!(secret_fields("UserRegistered"), ["password_hash"]);
    for field in secret_fields("UserRegistered") {
        assert!(
            payload.get(field).is_some(),
            "UserRegistered has no {field}"
        );
        assert!(!personal_fields("UserRegistered").contains(field));
    }
    for event in [
        password_ok(1),
        login_failed(LoginMethod::Password, LoginFailureReason::BadPassword, 2),
        passkey_ok(3, 4),
        erased(5),
    ] {
        assert!(secret_fields(&event.event_type()).is_empty());
    }
    assert!(secret_fields("MovieAdded").is_empty());
    assert_ne!(REDACTED, ERASED);
}

#[test]
fn a_logged_command_shows_neither_the_password_nor_its_hash() {
    let register = UserCommand::Register {
        id: alice(),
        username: alice_name(),
        email: Email::parse("alice@example.com").unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        at: at(0),
    };
    let printed = format!("{register:?} {register:#?}");
    assert!(!printed.contains("$argon2"), "{printed}");
    assert!(printed.contains(REDACTED), "{printed}");
    let sign_in = sign_in(PASSWORD, 0);
    let printed = format!("{sign_in:?} {sign_in:#?}");
    assert!(!printed.contains(PASSWORD), "{printed}");
    assert!(printed.contains(REDACTED), "{printed}");
    // The command still carries the text to the aggregate.
    let UserCommand::SignInWithPassword { password, .. } = sign_in else {
        panic!("not a sign-in")
    };
    assert_eq!(password.expose(), PASSWORD);
}

#[test]
fn a_logged_registration_or_user_state_does_not_show_the_hash() {
    let event = registered();
    let mut user = User::default();
    user.apply(event.clone());
    let printed = format!("{event:?} {event:#?} {user:?} {user:#?}");
    assert!(!printed.contains("hashed:"), "{printed}");
    assert!(printed.contains(REDACTED), "{printed}");
    // The stored form is the bare string, as before.
    let UserEvent::UserRegistered(registered) = event else {
        panic!("not a registration")
    };
    let stored = serde_json::to_value(&registered).unwrap();
    assert_eq!(stored["password_hash"], format!("hashed:{PASSWORD}"));
}
