//! Passkeys (WebAuthn): a signed-in user registers authenticators, and anyone signs in with one,
//! by username or as a discoverable credential. User verification (the biometric or PIN step) is
//! required in both ceremonies; webauthn-rs refuses an answer without it.
//!
//! Each ceremony takes two requests. The options answer is webauthn-rs's challenge response
//! (`{"publicKey": …}`, plus `"mediation"` for discoverable sign-ins) with a `ceremonyId` beside
//! it; the client hands the authenticator's credential back as `{"ceremonyId", "credential"}`.
//! The server's half of the ceremony waits in the database, so any server can finish it; it
//! lives five minutes and can be finished once. Both sign-in requests count against the
//! per-address sign-in limit.
//!
//! Credentials live in the user's events: the serialised `Passkey` in `PasskeyRegistered`, the
//! signature counter after each sign-in in `PasskeyLoginSucceeded`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use domain::{sign_in_outcome, SignInOutcome, User, UserCommand, UserId, UserState, Username};
use event_store::{format_timestamp, text_column};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::auth::SignedIn;
use crate::extract::{ApiJson, RequestContext};
use crate::users::{execute, open_session};
use crate::{ApiError, AppState};

/// How long a ceremony may take; also the timeout the options give the authenticator.
const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The relying party: its id is the public origin's host. Browsers offer passkeys only to a
/// domain, never to an IP address, so an origin without one (the default `http://127.0.0.1:8080`)
/// serves them at `localhost` on the same port.
pub fn relying_party(public_origin: &str) -> Result<Webauthn, ApiError> {
    let mut origin = Url::parse(public_origin).map_err(ApiError::internal)?;
    if origin.domain().is_none() {
        origin
            .set_host(Some("localhost"))
            .map_err(ApiError::internal)?;
        tracing::info!(%origin, "the public URL has no domain name: passkeys work only here");
    }
    let rp_id = origin
        .domain()
        .ok_or_else(|| ApiError::internal("the passkey origin has no domain"))?
        .to_string();
    WebauthnBuilder::new(&rp_id, &origin)
        .map_err(ApiError::internal)?
        .rp_name("Marquee")
        .timeout(CEREMONY_LIFETIME)
        .build()
        .map_err(ApiError::internal)
}

/// The authenticator's answer to the options of ceremony `ceremony_id`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Answer<C> {
    ceremony_id: Uuid,
    credential: C,
}

/// `POST /api/passkeys/registration/options` (signed in): creation options for a new passkey,
/// excluding the ones the user already has, as `{"ceremonyId", "publicKey"}`.
#[utoipa::path(
    post,
    path = "/api/passkeys/registration/options",
    tag = "passkeys",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "WebAuthn creation options with the ceremony id", body = crate::openapi::PasskeyOptions),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "A cookie-authenticated request from another origin (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "The signed-in user does not exist (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn registration_options(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Json<Value>, ApiError> {
    let user = load_user(&state, session.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("user".into()))?;
    let registered: Vec<_> = passkeys(&user)?
        .iter()
        .map(|passkey| passkey.cred_id().clone())
        .collect();
    let (options, registration) = state
        .webauthn
        .start_passkey_registration(
            user.id.as_uuid(),
            user.username.as_str(),
            user.username.as_str(),
            Some(registered),
        )
        .map_err(ApiError::internal)?;
    let ceremony_id = begin_ceremony(
        pool(&state),
        Purpose::Registration,
        Some(user.id),
        &registration,
    )
    .await?;
    options_body(ceremony_id, &options)
}

/// `POST /api/passkeys/registration` (signed in) with `{"ceremonyId", "credential"}`, the
/// credential being the attestation `navigator.credentials.create` returned: 201 `{position}`.
/// The ceremony must be one this user started.
#[utoipa::path(
    post,
    path = "/api/passkeys/registration",
    tag = "passkeys",
    request_body(content = crate::openapi::PasskeyAnswer, description = "The attestation credential"),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Registered", body = crate::openapi::Stored),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "A cookie-authenticated request from another origin (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "The ceremony expired, was used already or is another user's (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The passkey is registered already (`passkey_exists`)", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "The credential did not verify (`invalid_credential`, `user_not_verified`) or a body of the wrong shape (`invalid_body`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    context: RequestContext,
    ApiJson(answer): ApiJson<Answer<RegisterPublicKeyCredential>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let registration: PasskeyRegistration = take_ceremony(
        pool(&state),
        answer.ceremony_id,
        Purpose::Registration,
        Some(session.user_id),
    )
    .await?
    .ok_or_else(ceremony_gone)?;
    let passkey = state
        .webauthn
        .finish_passkey_registration(&answer.credential, &registration)
        .map_err(|error| match error {
            WebauthnError::UserNotVerified => ApiError::Unprocessable(
                "user_not_verified",
                "the authenticator did not verify the user (biometric or PIN)".into(),
            ),
            other => ApiError::Unprocessable(
                "invalid_credential",
                format!("the passkey could not be verified: {other}"),
            ),
        })?;
    // Credential ids are only looked up within their own user's passkeys (the user handle or
    // the username says whose), so one registered to two accounts confuses nothing.
    let command = UserCommand::RegisterPasskey {
        credential_id: encode_credential_id(passkey.cred_id()),
        passkey: serde_json::to_value(&passkey).map_err(ApiError::internal)?,
        at: Utc::now(),
    };
    let executed = execute(
        &state,
        session.user_id,
        command,
        &context,
        Some(session.username),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "position": executed.position() })),
    ))
}

/// What a sign-in starts from: `{"username"}`, or `{}` or no body at all for a discoverable
/// credential (the authenticator picks the account).
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInStart {
    username: Option<String>,
}

/// The server's half of a sign-in.
#[derive(Serialize, Deserialize)]
enum SignInCeremony {
    ByUsername {
        username: Username,
        state: PasskeyAuthentication,
    },
    Discoverable(DiscoverableAuthentication),
}

/// `POST /api/passkeys/authentication/options` with `{"username"}`, `{}` or no body: request
/// options as `{"ceremonyId", "publicKey", "mediation"?}`.
///
/// A username that is unknown, malformed or has no passkeys gets the options of a discoverable
/// ceremony, exactly as if no username had been sent, so the answer never says whether an
/// account exists.
#[utoipa::path(
    post,
    path = "/api/passkeys/authentication/options",
    tag = "passkeys",
    request_body(
        content = Option<SignInStart>,
        description = "`{\"username\"}`, or `{}` or no body for a discoverable credential",
    ),
    responses(
        (status = 200, description = "WebAuthn request options with the ceremony id", body = crate::openapi::PasskeyOptions),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 422, description = "A body of the wrong shape (`invalid_body`)", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many sign-in attempts from this address (`rate_limited`, with `Retry-After`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn authentication_options(
    State(state): State<AppState>,
    context: RequestContext,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state.sign_in_limiter.check(context.client_ip)?;
    let start: SignInStart = optional_json(&body)?;
    let username = start.username.and_then(|u| Username::parse(&u).ok());
    let keys = match &username {
        Some(username) => match load_user(&state, UserId::for_username(username)).await? {
            Some(user) => passkeys(&user)?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let (options, ceremony) = match username {
        Some(username) if !keys.is_empty() => {
            let (options, authentication) = state
                .webauthn
                .start_passkey_authentication(&keys)
                .map_err(ApiError::internal)?;
            let ceremony = SignInCeremony::ByUsername {
                username,
                state: authentication,
            };
            (options, ceremony)
        }
        _ => {
            let (options, authentication) = state
                .webauthn
                .start_discoverable_authentication()
                .map_err(ApiError::internal)?;
            (options, SignInCeremony::Discoverable(authentication))
        }
    };
    let ceremony_id = begin_ceremony(pool(&state), Purpose::SignIn, None, &ceremony).await?;
    options_body(ceremony_id, &options)
}

/// `POST /api/passkeys/authentication` with `{"ceremonyId", "credential"}`, the credential
/// being the assertion `navigator.credentials.get` returned: 200 `{token, expiresAt, position}`
/// and the session cookie, as a password sign-in answers.
///
/// Every verified assertion is recorded on the account: a success with its signature counter,
/// or a failure when the counter went backwards (a cloned authenticator) or the account is
/// locked. An assertion that does not verify is refused like a wrong password.
#[utoipa::path(
    post,
    path = "/api/passkeys/authentication",
    tag = "passkeys",
    request_body(content = crate::openapi::PasskeyAnswer, description = "The assertion credential"),
    responses(
        (status = 200, description = "Signed in", body = crate::openapi::SessionOpened,
            headers(("Set-Cookie" = String, description = "The `marquee_session` cookie"))),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = crate::openapi::ErrorBody),
        (status = 401, description = "The assertion did not verify (`invalid_credentials`) or the account is locked (`account_locked`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "The ceremony expired or was used already (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "A body of the wrong shape (`invalid_body`)", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many sign-in attempts from this address (`rate_limited`, with `Retry-After`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    context: RequestContext,
    ApiJson(answer): ApiJson<Answer<PublicKeyCredential>>,
) -> Result<Response, ApiError> {
    state.sign_in_limiter.check(context.client_ip)?;
    let ceremony: SignInCeremony =
        take_ceremony(pool(&state), answer.ceremony_id, Purpose::SignIn, None)
            .await?
            .ok_or_else(ceremony_gone)?;
    let credential = &answer.credential;
    let (username, verified) = match ceremony {
        SignInCeremony::ByUsername {
            username,
            state: authentication,
        } => {
            let verified = state
                .webauthn
                .finish_passkey_authentication(credential, &authentication);
            (username, verified)
        }
        SignInCeremony::Discoverable(authentication) => {
            let (user_handle, _) = state
                .webauthn
                .identify_discoverable_authentication(credential)
                .map_err(refused)?;
            let user = load_user(&state, UserId::from(user_handle))
                .await?
                .ok_or(ApiError::InvalidCredentials)?;
            let keys: Vec<DiscoverableKey> =
                passkeys(&user)?.iter().map(DiscoverableKey::from).collect();
            let verified = state.webauthn.finish_discoverable_authentication(
                credential,
                authentication,
                &keys,
            );
            (user.username, verified)
        }
    };
    let counter = match verified {
        Ok(result) => result.counter(),
        // The signature is good but the counter did not grow: the domain records the refusal.
        Err(WebauthnError::CredentialPossibleCompromise) => assertion_counter(credential),
        Err(error) => {
            // Every sign-in attempt on an account is an event, the failed ones included.
            let failed = UserCommand::RecordFailedPasskeySignIn {
                ip: context.client_ip.map(|ip| ip.to_string()),
                at: Utc::now(),
            };
            let id = UserId::for_username(&username);
            execute(&state, id, failed, &context, Some(username.to_string())).await?;
            return Err(refused(error));
        }
    };
    let id = UserId::for_username(&username);
    let credential_id = encode_credential_id(credential.get_credential_id());
    let command = UserCommand::SignInWithPasskey {
        credential_id: credential_id.clone(),
        counter,
        ip: context.client_ip.map(|ip| ip.to_string()),
        at: Utc::now(),
    };
    let executed = execute(&state, id, command, &context, Some(username.to_string())).await?;
    match sign_in_outcome(&executed.events) {
        SignInOutcome::Succeeded => open_session(&state, &executed).await,
        SignInOutcome::Locked => Err(ApiError::AccountLocked),
        // The only way a verified passkey fails: the domain saw its counter go backwards.
        SignInOutcome::Failed => {
            tracing::warn!(
                user = %id,
                credential_id,
                counter,
                "passkey signature counter went backwards: the authenticator may be cloned"
            );
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// A failed assertion answers like a wrong password; why goes to the log only.
fn refused(error: WebauthnError) -> ApiError {
    tracing::info!(%error, "passkey sign-in refused");
    ApiError::InvalidCredentials
}

fn ceremony_gone() -> ApiError {
    ApiError::NotFound(
        "passkey ceremony (it expired or was used already: ask for new options)".into(),
    )
}

/// The user's current state; `None` when nobody registered under `id`.
async fn load_user(state: &AppState, id: UserId) -> Result<Option<UserState>, ApiError> {
    let (user, _) = state.store.load::<User>(&id.to_string()).await?;
    Ok(user.state().cloned())
}

/// The user's passkeys as webauthn-rs needs them, each with the highest signature counter seen
/// so far, so that an authenticator replaying an older count is caught.
fn passkeys(user: &UserState) -> Result<Vec<Passkey>, ApiError> {
    user.passkeys
        .values()
        .map(|stored| {
            let passkey: Passkey =
                serde_json::from_value(stored.passkey.clone()).map_err(ApiError::internal)?;
            let mut credential = Credential::from(passkey);
            credential.counter = credential.counter.max(stored.counter);
            Ok(Passkey::from(credential))
        })
        .collect()
}

/// A credential id as WebAuthn writes it in `PublicKeyCredential.id`: unpadded base64url.
fn encode_credential_id(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// The signature counter in an assertion's authenticator data, which is laid out as a 32-byte
/// RP id hash, a flags byte, then the counter (big-endian). Read only once the signature over
/// it has been verified.
fn assertion_counter(credential: &PublicKeyCredential) -> u32 {
    let data: &[u8] = credential.response.authenticator_data.as_ref();
    data.get(33..37)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or_default()
}

/// A body that may be empty: empty means `T::default()`; otherwise malformed JSON is 400 and
/// the wrong shape 422, as `ApiJson` answers.
fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| {
        if error.is_data() {
            ApiError::Unprocessable("invalid_body", error.to_string())
        } else {
            ApiError::MalformedJson(format!("the body is not valid JSON: {error}"))
        }
    })
}

/// webauthn-rs's challenge response with the ceremony id beside `publicKey`.
fn options_body(ceremony_id: Uuid, options: &impl Serialize) -> Result<Json<Value>, ApiError> {
    let mut body = serde_json::to_value(options).map_err(ApiError::internal)?;
    body["ceremonyId"] = json!(ceremony_id);
    Ok(Json(body))
}

fn pool(state: &AppState) -> &AnyPool {
    state.store.database().pool()
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Registration,
    SignIn,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Registration => "registration",
            Purpose::SignIn => "sign_in",
        }
    }
}

/// Stores the server's half of a new ceremony (for `owner` only, when given) and clears out
/// the expired ones.
async fn begin_ceremony(
    pool: &AnyPool,
    purpose: Purpose,
    owner: Option<UserId>,
    state: &impl Serialize,
) -> Result<Uuid, ApiError> {
    let id = Uuid::new_v4();
    let now = Utc::now();
    sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= ?")
        .bind(format_timestamp(now))
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO webauthn_ceremonies (id, purpose, user_id, state, expires_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(purpose.as_str())
    .bind(owner.map(|user| user.to_string()))
    .bind(serde_json::to_string(state).map_err(ApiError::internal)?)
    .bind(format_timestamp(now + CEREMONY_LIFETIME))
    .execute(pool)
    .await?;
    Ok(id)
}

/// Takes a ceremony out of the table so that it is finished at most once: `None` when it is
/// unknown, expired, already taken, for another purpose or another user's.
async fn take_ceremony<T: DeserializeOwned>(
    pool: &AnyPool,
    id: Uuid,
    purpose: Purpose,
    owner: Option<UserId>,
) -> Result<Option<T>, ApiError> {
    let row = sqlx::query(
        "SELECT user_id, state FROM webauthn_ceremonies \
         WHERE id = ? AND purpose = ? AND expires_at > ?",
    )
    .bind(id.to_string())
    .bind(purpose.as_str())
    .bind(format_timestamp(Utc::now()))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let user_id: Option<String> = row.try_get(0)?;
    if user_id != owner.map(|user| user.to_string()) {
        return Ok(None);
    }
    // Of two requests racing with the same ceremony, only the one whose delete counts wins.
    let deleted = sqlx::query("DELETE FROM webauthn_ceremonies WHERE id = ?")
        .bind(id.to_string())
        .execute(pool)
        .await?;
    if deleted.rows_affected() != 1 {
        return Ok(None);
    }
    let state =
        text_column(&row, 1)?.ok_or_else(|| ApiError::internal("ceremony without state"))?;
    serde_json::from_str(&state)
        .map(Some)
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_origins_host_or_localhost_for_an_ip() {
        assert!(relying_party("https://marquee.example.com").is_ok());
        assert!(relying_party("http://127.0.0.1:8080").is_ok());
        assert!(relying_party("not a url").is_err());
    }

    #[test]
    fn the_counter_is_read_after_the_rp_id_hash_and_flags() {
        let mut data = vec![0u8; 33];
        data.extend_from_slice(&7u32.to_be_bytes());
        let credential: PublicKeyCredential = serde_json::from_value(json!({
            "id": "AA",
            "rawId": "AA",
            "response": {
                "authenticatorData": URL_SAFE_NO_PAD.encode(&data),
                "clientDataJSON": "",
                "signature": "",
            },
            "type": "public-key",
            "extensions": {},
        }))
        .unwrap();
        assert_eq!(assertion_counter(&credential), 7);
    }

    #[test]
    fn an_empty_body_starts_a_discoverable_sign_in() {
        let empty: SignInStart = optional_json(b"").unwrap();
        assert!(empty.username.is_none());
        let named: SignInStart = optional_json(br#"{"username":"ada"}"#).unwrap();
        assert_eq!(named.username.as_deref(), Some("ada"));
        assert!(matches!(
            optional_json::<SignInStart>(b"{"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            optional_json::<SignInStart>(br#"{"user":1}"#),
            Err(ApiError::Unprocessable("invalid_body", _))
        ));
    }
}
