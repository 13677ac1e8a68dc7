//! `Idempotency-Key`: a retried command gets the first answer back and appends nothing new.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use event_store::format_timestamp;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{ApiError, AppState};

const HEADER: &str = "idempotency-key";
/// Answers are small JSON documents; anything larger is not stored.
const MAX_STORED_RESPONSE: usize = 64 * 1024;

pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match run(state, request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn run(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(key) = request.headers().get(HEADER) else {
        return Ok(next.run(request).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 128 visible ASCII characters".into(),
            )
        })?
        .to_string();
    // The caller is whoever holds the credential; anonymous callers share one space.
    let caller = request
        .headers()
        .get(AUTHORIZATION)
        .or_else(|| request.headers().get(COOKIE))
        .map_or_else(
            || "anonymous".to_string(),
            |c| hex::encode(Sha256::digest(c.as_bytes())),
        );
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, state.config.max_upload_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(state.config.max_upload_bytes))?;
    let mut fingerprint = Sha256::new();
    fingerprint.update(parts.method.as_str());
    fingerprint.update(parts.uri.path());
    fingerprint.update(&body);
    let request_hash = hex::encode(fingerprint.finalize());

    let pool = state.store.database().pool();
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (caller, idem_key, request_hash, status, created_at) \
         VALUES (?, ?, ?, 0, ?)",
    )
    .bind(&caller)
    .bind(&key)
    .bind(&request_hash)
    .bind(format_timestamp(Utc::now()))
    .execute(pool)
    .await;
    match claimed {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return replay(&state, &caller, &key, &request_hash).await;
        }
        Err(e) => return Err(e.into()),
    }

    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, MAX_STORED_RESPONSE)
        .await
        .unwrap_or_default();
    if parts.status.is_success() {
        sqlx::query(
            "UPDATE idempotency_keys SET status = ?, response_body = ? WHERE caller = ? AND idem_key = ?",
        )
        .bind(i64::from(parts.status.as_u16()))
        .bind(String::from_utf8_lossy(&body).to_string())
        .bind(&caller)
        .bind(&key)
        .execute(pool)
        .await?;
    } else {
        // A failed command changed nothing, so a retry may try again.
        sqlx::query("DELETE FROM idempotency_keys WHERE caller = ? AND idem_key = ?")
            .bind(&caller)
            .bind(&key)
            .execute(pool)
            .await?;
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

async fn replay(
    state: &AppState,
    caller: &str,
    key: &str,
    request_hash: &str,
) -> Result<Response, ApiError> {
    let row = sqlx::query(
        "SELECT request_hash, status, response_body FROM idempotency_keys WHERE caller = ? AND idem_key = ?",
    )
    .bind(caller)
    .bind(key)
    .fetch_one(state.store.database().pool())
    .await?;
    let stored_hash: String = row.try_get(0)?;
    let status: i64 = row.try_get(1)?;
    if stored_hash != request_hash {
        return Err(ApiError::Unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request".into(),
        ));
    }
    if status == 0 {
        return Err(ApiError::Conflict(
            "idempotency_in_progress",
            "the first request with this Idempotency-Key is still running".into(),
        ));
    }
    let body = event_store::text_column(&row, 2)?;
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ApiError::internal("stored idempotent status is not an HTTP status"))?;
    let mut response = (status, body.unwrap_or_default()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}
