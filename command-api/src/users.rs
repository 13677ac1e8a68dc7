//! Accounts: register, sign in with a password, sign out, grant roles.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use domain::{
    sign_in_outcome, Email, Role, SignInOutcome, User, UserCommand, UserError, UserId,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    username: String,
    email: String,
    password: String,
}

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
        password_hash,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSignIn {
    username: String,
    password: String,
}

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
        password: body.password.clone(),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    role: String,
}

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
