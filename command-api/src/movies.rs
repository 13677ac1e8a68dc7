//! Movies: add, edit with optimistic concurrency, remove (the history stays).

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{Datelike, Utc};
use domain::{
    Description, Director, Genres, Movie, MovieChanges, MovieCommand, MovieId, Role, Title, Year,
};
use event_store::{CommandContext, Executed};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Session, SignedIn};
use crate::extract::{ApiJson, RequestContext};
use crate::{ApiError, AppState};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMovie {
    title: String,
    year: i32,
    director: String,
    #[serde(default)]
    genres: Vec<String>,
    #[serde(default)]
    description: String,
}

/// Adds a movie to the catalogue.
#[utoipa::path(
    post,
    path = "/api/movies",
    tag = "movies",
    params(crate::openapi::IdempotencyKey),
    request_body = NewMovie,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "Added", body = crate::openapi::MovieAdded),
        (status = 400, description = "Malformed JSON (`malformed_json`) or a bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "No `user` role (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "A request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "Invalid title, year, director, genres or description (`validation_failed` with `field`), a body of the wrong shape, or a reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn add(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    context: RequestContext,
    ApiJson(body): ApiJson<NewMovie>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    session.require(Role::User)?;
    let id = MovieId::from(uuid::Uuid::new_v4());
    let command = MovieCommand::Add {
        id,
        title: Title::parse(&body.title)?,
        year: Year::parse(body.year, Utc::now().year())?,
        director: Director::parse(&body.director)?,
        genres: Genres::parse(&body.genres)?,
        description: Description::parse(&body.description)?,
        added_by: session.user_id,
        at: Utc::now(),
    };
    // The id was minted just now, so there is no stream to load.
    let executed = state
        .store
        .execute_new::<Movie>(
            &id.to_string(),
            command,
            &(),
            &command_context(&session, &context),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id.to_string(),
            "version": executed.version,
            "position": executed.position(),
        })),
    ))
}

/// Any of a movie's fields; those left out stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovieEdit {
    title: Option<String>,
    year: Option<i32>,
    director: Option<String>,
    genres: Option<Vec<String>>,
    description: Option<String>,
}

/// Edits a movie's details with optimistic concurrency: `If-Match` names the version edited.
#[utoipa::path(
    patch,
    path = "/api/movies/{id}",
    tag = "movies",
    params(
        ("id" = String, Path, description = "The movie id (a UUID)"),
        ("If-Match" = String, Header, description = "The version edited, as `\"3\"`"),
        crate::openapi::IdempotencyKey,
    ),
    request_body = MovieEdit,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Edited", body = crate::openapi::MovieEdited),
        (status = 400, description = "Malformed JSON, a missing or bad `If-Match` (`if_match_required`, `invalid_if_match`) or a bad `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "No `user` role (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such movie (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The movie changed since that version (`version_conflict`), it was removed (`movie_removed`), or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = crate::openapi::ErrorBody),
        (status = 422, description = "An invalid field (`validation_failed` with `field`), nothing to change (`nothing_to_change`), a body of the wrong shape, or a reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn edit(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    context: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MovieEdit>,
) -> Result<Json<Value>, ApiError> {
    session.require(Role::User)?;
    let id = parse_movie_id(&id)?;
    let expected_version = Some(if_match(&headers)?.ok_or_else(|| {
        ApiError::BadRequest(
            "if_match_required",
            "send If-Match: \"<version>\" with the version you edited".into(),
        )
    })?);
    let current_year = Utc::now().year();
    let changes = MovieChanges {
        title: body.title.as_deref().map(Title::parse).transpose()?,
        year: body
            .year
            .map(|y| Year::parse(y, current_year))
            .transpose()?,
        director: body.director.as_deref().map(Director::parse).transpose()?,
        genres: body.genres.as_ref().map(Genres::parse).transpose()?,
        description: body
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()?,
    };
    let command = MovieCommand::UpdateDetails {
        changes,
        expected_version,
        by: session.user_id,
        at: Utc::now(),
    };
    let executed = execute(&state, &session, id, command, &context).await?;
    Ok(Json(
        json!({ "version": executed.version, "position": executed.position() }),
    ))
}

/// Removes a movie from the catalogue; its history is kept.
#[utoipa::path(
    delete,
    path = "/api/movies/{id}",
    tag = "movies",
    params(("id" = String, Path, description = "The movie id (a UUID)"), ("If-Match" = Option<String>, Header, description = "The version edited, as `\"3\"`"), crate::openapi::IdempotencyKey),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Removed", body = crate::openapi::Stored),
        (status = 400, description = "A bad `If-Match` (`invalid_if_match`) or `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = crate::openapi::ErrorBody),
        (status = 403, description = "No `user` role (`forbidden`) or a cross-site cookie request (`csrf_rejected`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such movie (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The movie changed since that version (`version_conflict`) or was removed already (`movie_removed`), or a request with this `Idempotency-Key` is still running", body = crate::openapi::ErrorBody),
        (status = 422, description = "A reused `Idempotency-Key`", body = crate::openapi::ErrorBody),
        (status = 503, description = "The database is unavailable", body = crate::openapi::ErrorBody),
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    context: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    session.require(Role::User)?;
    let id = parse_movie_id(&id)?;
    let command = MovieCommand::Remove {
        expected_version: if_match(&headers)?,
        by: session.user_id,
        at: Utc::now(),
    };
    let executed = execute(&state, &session, id, command, &context).await?;
    Ok(Json(json!({ "position": executed.position() })))
}

/// An id that is not a UUID names no movie.
pub fn parse_movie_id(id: &str) -> Result<MovieId, ApiError> {
    MovieId::from_str(id).map_err(|_| ApiError::NotFound("movie".into()))
}

/// `If-Match: "3"` (also `W/"3"` or a bare `3`) as a version number.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("if-match") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "invalid_if_match",
                "If-Match must be a version number such as \"3\"".into(),
            )
        })
}

/// Runs a movie command with the request's metadata.
pub async fn execute(
    state: &AppState,
    session: &Session,
    id: MovieId,
    command: MovieCommand,
    context: &RequestContext,
) -> Result<Executed<Movie>, ApiError> {
    Ok(state
        .store
        .execute::<Movie>(
            &id.to_string(),
            command,
            &(),
            &command_context(session, context),
        )
        .await?)
}

/// Movie events carry who and where from; they hold no personal data of their own.
fn command_context(session: &Session, context: &RequestContext) -> CommandContext {
    CommandContext {
        metadata: context.metadata(Some(session.username.clone())),
        data_subject: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_quoted_weak_and_bare_versions() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers).unwrap(), None);
        for value in ["\"3\"", "W/\"3\"", "3"] {
            headers.insert("if-match", value.parse().unwrap());
            assert_eq!(if_match(&headers).unwrap(), Some(3));
        }
        headers.insert("if-match", "\"three\"".parse().unwrap());
        assert!(if_match(&headers).is_err());
    }
}
