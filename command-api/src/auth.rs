//! Sessions: random 256-bit tokens handed to the client once, stored only as their SHA-256, with a
//! fixed lifetime; usable as a bearer token or an HttpOnly, SameSite=Strict cookie.

use std::collections::BTreeSet;
use std::str::FromStr;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use domain::{Role, UserId};
use event_store::{format_timestamp, parse_timestamp};
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use crate::{ApiError, AppState};

pub const SESSION_COOKIE: &str = "marquee_session";
pub const SESSION_LIFETIME: Duration = Duration::hours(12);

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: UserId,
    pub username: String,
    pub roles: BTreeSet<Role>,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// 403 unless the caller holds `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this needs the {role} role")))
        }
    }
}

/// A new session's secret, shown to the client once.
pub struct IssuedSession {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The sessions table.
#[derive(Clone)]
pub struct Sessions {
    pool: AnyPool,
}

impl Sessions {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    pub async fn issue(
        &self,
        user_id: UserId,
        username: &str,
        roles: &BTreeSet<Role>,
    ) -> Result<IssuedSession, ApiError> {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let token = URL_SAFE_NO_PAD.encode(secret);
        let now = Utc::now();
        let expires_at = now + SESSION_LIFETIME;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, username, roles, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash(&token))
        .bind(user_id.to_string())
        .bind(username)
        .bind(join_roles(roles))
        .bind(format_timestamp(now))
        .bind(format_timestamp(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(IssuedSession { token, expires_at })
    }

    /// The live session behind `token`, if any.
    pub async fn find(&self, token: &str) -> Result<Option<Session>, ApiError> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, username, roles, expires_at FROM sessions \
             WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(token_hash(token))
        .bind(format_timestamp(Utc::now()))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = row.try_get(1)?;
        let roles: String = row.try_get(3)?;
        let expires_at: String = row.try_get(4)?;
        Ok(Some(Session {
            token_hash: row.try_get(0)?,
            user_id: UserId::from_str(&user_id).map_err(ApiError::internal)?,
            username: row.try_get(2)?,
            roles: roles
                .split(',')
                .filter_map(|r| Role::from_str(r).ok())
                .collect(),
            expires_at: parse_timestamp(&expires_at)
                .ok_or_else(|| ApiError::internal("unreadable session expiry"))?,
        }))
    }

    pub async fn revoke(&self, session: &Session) -> Result<(), ApiError> {
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE token_hash = ?")
            .bind(format_timestamp(Utc::now()))
            .bind(&session.token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every open session of a user (their personal data was erased).
    pub async fn revoke_all(&self, user_id: UserId) -> Result<(), ApiError> {
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(format_timestamp(Utc::now()))
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A role granted takes effect in the user's open sessions at once.
    pub async fn update_roles(
        &self,
        user_id: UserId,
        roles: &BTreeSet<Role>,
    ) -> Result<(), ApiError> {
        sqlx::query("UPDATE sessions SET roles = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(join_roles(roles))
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn join_roles(roles: &BTreeSet<Role>) -> String {
    roles
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Where the caller's token came from: cookies ride along on cross-site requests, so only
/// they need the CSRF check.
enum Credential {
    Bearer(String),
    Cookie(String),
}

fn credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(bearer) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(Credential::Bearer(bearer.trim().to_string()));
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| Credential::Cookie(value.to_string()))
}

/// The session token a request carries, as bearer or cookie: for readers (GraphQL) that change
/// nothing and so need no CSRF check.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    credential(headers).map(|credential| match credential {
        Credential::Bearer(token) | Credential::Cookie(token) => token,
    })
}

/// Whether a request rides on the session cookie from a page of another site. For WebSocket
/// handshakes, which browsers send with the cookie and their page's Origin whatever the target:
/// a page elsewhere must not subscribe as the signed-in user (SameSite alone is not relied on).
/// Without an Origin the caller is no browser, and a cookie it sends is its own.
pub fn cross_site_cookie(headers: &HeaderMap, public_origin: &str) -> bool {
    matches!(credential(headers), Some(Credential::Cookie(_)))
        && headers
            .get(ORIGIN)
            .is_some_and(|sent| sent.as_bytes() != public_origin.as_bytes())
}

/// A state-changing request that carries the cookie must come from our own pages.
fn same_origin(parts: &Parts, origin: &str) -> bool {
    match parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(sent) => sent == origin,
        None => parts
            .headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site == "same-origin"),
    }
}

/// The caller's session, or `None` for an anonymous caller. A presented token that is unknown,
/// expired or revoked is refused rather than treated as anonymous.
pub struct MaybeSignedIn(pub Option<Session>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(credential) = credential(&parts.headers) else {
            return Ok(MaybeSignedIn(None));
        };
        let token = match credential {
            Credential::Bearer(token) => token,
            Credential::Cookie(token) => {
                let unsafe_method =
                    !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
                if unsafe_method && !same_origin(parts, &state.config.public_origin) {
                    return Err(ApiError::CsrfRejected);
                }
                token
            }
        };
        match state.sessions.find(&token).await? {
            Some(session) => Ok(MaybeSignedIn(Some(session))),
            None => Err(ApiError::Unauthenticated),
        }
    }
}

/// A signed-in caller; anonymous callers get 401.
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match MaybeSignedIn::from_request_parts(parts, state).await? {
            MaybeSignedIn(Some(session)) => Ok(SignedIn(session)),
            MaybeSignedIn(None) => Err(ApiError::Unauthenticated),
        }
    }
}

/// The Set-Cookie value for a new session, or for ending one (`token` None).
pub fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(token) => format!(
            "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            SESSION_LIFETIME.num_seconds()
        ),
        None => format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_wins_over_cookie_and_cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            "theme=dark; marquee_session=abc; x=1".parse().unwrap(),
        );
        assert!(matches!(credential(&headers), Some(Credential::Cookie(t)) if t == "abc"));
        headers.insert(AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert!(matches!(credential(&headers), Some(Credential::Bearer(t)) if t == "xyz"));
    }

    #[test]
    fn tokens_are_stored_as_hashes() {
        assert_eq!(token_hash("abc").len(), 64);
        assert_ne!(token_hash("abc"), "abc");
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let cookie = session_cookie(Some("t"), true);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.ends_with("; Secure"));
        assert!(session_cookie(None, false).contains("Max-Age=0"));
    }
}
