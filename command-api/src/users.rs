//! Accounts: register, sign in with a password, sign out, grant roles.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use domain::{
    sign_in_outcome, Email, Role, Secret, SignInOutcome, User, UserCommand, UserError, UserId,
    UserServices, Username,
};
use event_store::{CommandContext, ExecuteError, Executed};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{session_cookie, SignedIn};
use crate::extract::{ApiJson, RequestContext};
use crate::passwords::Argon2Passwords;
use crate::{ApiError, AppState};

/// NIST SP 800-63B: at least 8; the upper bound keeps argon2 from hashing megabytes.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 10..=128;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    username: String,
    email: String,
    /// 10 to 128 characters.
    password: String,
}

/// Registers an account.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    params(crate::openapi::IdempotencyKey),
    request_body = Registration,
    responses(
        (status = 201, description = "Registered", body = crate::openapi::UserRegistered),
        (status = 400, description = "Malformed JSON (`malformed_json`) or a bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 409, description = "The username is taken (`username_taken`), or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "Invalid username, e-mail or password (`validation_failed` with `field`), a body of the wrong shape, or a reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    ApiJson(body): ApiJson<Registration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let username = Username::parse(&body.username)?;
    let email = Email::parse(&body.email)?;
    if !PASSWORD_CHARS.contains(&body.password.chars().count()) {
        return Err(ApiError::InvalidField {
            field: "password",
            message: format!(
                "password must be {} to {} characters",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            ),
        });
    }
    let password_hash = tokio::task::spawn_blocking(move || Argon2Passwords.hash(&body.password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let id = UserId::for_username(&username);
    let command = UserCommand::Register {
        id,
        username: username.clone(),
        email,
        password_hash: password_hash.into(),
        at: Utc::now(),
    };
    let executed = execute(&state, id, command, &context, Some(username.to_string())).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": id.to_string(), "username": username.as_str(), "position": executed.position() }),
        ),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSignIn {
    username: String,
    password: String,
}

/// Signs in with a password: the token in the body and the HttpOnly session cookie.
#[utoipa::path(
    post,
    path = "/api/sessions",
    tag = "users",
    request_body = PasswordSignIn,
    responses(
        (status = 200, description = "Signed in", body = crate::openapi::SessionOpened,
            headers(("Set-Cookie" = String, description = "The `marquee_session` cookie"))),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = crate::openapi::ErrorBody),
        (status = 401, description = "Wrong username or password (`invalid_credentials`) or a locked account (`account_locked`)", body = crate::openapi::ErrorBody),
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
    ApiJson(body): ApiJson<PasswordSignIn>,
) -> Result<Response, ApiError> {
    state.sign_in_limiter.check(context.client_ip)?;
    let Ok(username) = Username::parse(&body.username) else {
        return Err(state.refuse_unknown_user(body.password).await);
    };
    let id = UserId::for_username(&username);
    let command = UserCommand::SignInWithPassword {
        password: Secret::new(body.password.as_str()),
        ip: context.client_ip.map(|ip| ip.to_string()),
        at: Utc::now(),
    };
    let executed = match execute(&state, id, command, &context, Some(username.to_string())).await {
        Err(ApiError::InvalidCredentials) => {
            return Err(state.refuse_unknown_user(body.password).await)
        }
        other => other?,
    };
    match sign_in_outcome(&executed.events) {
        SignInOutcome::Succeeded => open_session(&state, &executed).await,
        SignInOutcome::Failed => Err(ApiError::InvalidCredentials),
        SignInOutcome::Locked => Err(ApiError::AccountLocked),
    }
}

/// Issues a session for a user whose sign-in just succeeded: token in the body and the cookie.
pub async fn open_session(
    state: &AppState,
    executed: &Executed<User>,
) -> Result<Response, ApiError> {
    let user = executed
        .aggregate
        .state()
        .ok_or_else(|| ApiError::internal("signed in a user that does not exist"))?;
    let issued = state
        .sessions
        .issue(user.id, user.username.as_str(), &user.roles)
        .await?;
    let body = json!({
        "token": issued.token,
        "expiresAt": issued.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "position": executed.position(),
    });
    Ok((
        [(
            SET_COOKIE,
            session_cookie(Some(&issued.token), state.config.secure_cookies()),
        )],
        Json(body),
    )
        .into_response())
}

/// Signs out: revokes the session and clears the cookie.
#[utoipa::path(
    delete,
    path = "/api/sessions",
    tag = "users",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared",
            headers(("Set-Cookie" = String, description = "Clears `marquee_session`"))),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "A cookie-authenticated request from another origin (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn sign_out(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
) -> Result<Response, ApiError> {
    state.sessions.revoke(&session).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            SET_COOKIE,
            session_cookie(None, state.config.secure_cookies()),
        )],
    )
        .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    /// `user`, `admin` or `auditor`.
    #[schema(example = "auditor")]
    role: String,
}

/// Grants a role (admin only); the user's open sessions get it at once.
#[utoipa::path(
    post,
    path = "/api/users/{username}/roles",
    tag = "users",
    params(("username" = String, Path, description = "The user's username"), crate::openapi::IdempotencyKey),
    request_body = RoleGrant,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Granted", body = crate::openapi::Stored),
        (status = 400, description = "Malformed JSON (`malformed_json`) or a bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such user (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The user already has the role (`role_already_granted`), or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown role (`validation_failed`), a body of the wrong shape, or a reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn grant_role(
    State(state): State<AppState>,
    SignedIn(admin): SignedIn,
    context: RequestContext,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<RoleGrant>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Admin)?;
    let role: Role = body.role.parse()?;
    let username = Username::parse(&username).map_err(|_| ApiError::NotFound("user".into()))?;
    let id = UserId::for_username(&username);
    let command = UserCommand::GrantRole {
        role,
        by: Some(admin.user_id),
        at: Utc::now(),
    };
    let executed = execute(&state, id, command, &context, Some(admin.username.clone())).await?;
    if let Some(user) = executed.aggregate.state() {
        state.sessions.update_roles(id, &user.roles).await?;
    }
    Ok(Json(json!({ "position": executed.position() })))
}

/// An admin lifts a lockout before its 15 minutes are up.
#[utoipa::path(
    post,
    path = "/api/users/{username}/unlock",
    tag = "users",
    params(("username" = String, Path, description = "The user's username"), crate::openapi::IdempotencyKey),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Unlocked", body = crate::openapi::Stored),
        (status = 400, description = "A bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such user (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The account is not locked (`not_locked`), or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 422, description = "A reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn unlock(
    State(state): State<AppState>,
    SignedIn(admin): SignedIn,
    context: RequestContext,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Admin)?;
    let username = Username::parse(&username).map_err(|_| ApiError::NotFound("user".into()))?;
    let id = UserId::for_username(&username);
    let command = UserCommand::Unlock {
        by: admin.user_id,
        at: Utc::now(),
    };
    let executed = execute(&state, id, command, &context, Some(admin.username.clone())).await?;
    Ok(Json(json!({ "position": executed.position() })))
}

/// An admin erases a user's personal data (crypto-shredding): the store destroys the user's key
/// as it records `PersonalDataErased`, and the user's sessions end. The account cannot be used
/// again, and its username stays taken.
#[utoipa::path(
    post,
    path = "/api/users/{username}/forget",
    tag = "users",
    params(("username" = String, Path, description = "The user's username"), crate::openapi::IdempotencyKey),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Forgotten: email, sign-in addresses and request metadata now read as erased", body = crate::openapi::Stored),
        (status = 400, description = "A bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such user (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "Already forgotten (`already_forgotten`), or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 422, description = "A reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn forget(
    State(state): State<AppState>,
    SignedIn(admin): SignedIn,
    context: RequestContext,
    Path(username): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Admin)?;
    let username = Username::parse(&username).map_err(|_| ApiError::NotFound("user".into()))?;
    let id = UserId::for_username(&username);
    let command = UserCommand::ErasePersonalData {
        by: Some(admin.user_id),
        at: Utc::now(),
    };
    let executed = execute(&state, id, command, &context, Some(admin.username.clone())).await?;
    state.sessions.revoke_all(id).await?;
    Ok(Json(json!({ "position": executed.position() })))
}

/// Runs a user command with the request's metadata; the user is the data subject of its events.
pub async fn execute(
    state: &AppState,
    id: UserId,
    command: UserCommand,
    context: &RequestContext,
    actor: Option<String>,
) -> Result<Executed<User>, ApiError> {
    let command_context = CommandContext {
        metadata: context.metadata(actor),
        data_subject: Some(id.to_string()),
    };
    state
        .store
        .execute::<User>(
            &id.to_string(),
            command,
            &state.user_services,
            &command_context,
        )
        .await
        .map_err(|error| match error {
            ExecuteError::Domain(UserError::UnknownUser) => ApiError::InvalidCredentials,
            other => other.into(),
        })
}

/// The services the `User` aggregate needs.
pub fn user_services() -> UserServices {
    UserServices {
        passwords: Arc::new(Argon2Passwords),
    }
}
