//! The OpenAPI 3.1 description of the command API, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /api/openapi.json`.
//!
//! The response types here only describe the JSON the handlers build; the handlers themselves
//! answer with `serde_json::Value`.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use uuid::Uuid;

use crate::{health, movies, passkeys, posters, subscriptions, users};

/// `Idempotency-Key`, taken by every route under /api/users, /api/movies and
/// /api/admin: a retried command gets the first answer back and appends nothing new.
#[derive(IntoParams)]
#[into_params(names("Idempotency-Key"), parameter_in = Header)]
pub struct IdempotencyKey(
    /// 1 to 128 visible ASCII characters, unique per command.
    #[allow(dead_code)]
    Option<String>,
);

/// Image bytes, sent or answered as they are.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ImageBytes(pub Vec<u8>);

/// Every error: `{"error": {"code", "message", "field"?}}`.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Snake-case error code, such as `validation_failed` or `version_conflict`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// A message for people.
    pub message: String,
    /// The invalid field, for `validation_failed`.
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// `POST /api/users` answered 201.
#[derive(ToSchema)]
pub struct UserRegistered {
    pub id: Uuid,
    pub username: String,
    /// Global position of the stored event.
    pub position: u64,
}

/// A session opened by a password or passkey sign-in; the same token is set as the
/// `marquee_session` cookie.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SessionOpened {
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub position: u64,
}

/// The global position of the command's last stored event.
#[derive(ToSchema)]
pub struct Stored {
    pub position: u64,
}

/// `POST /api/movies` answered 201.
#[derive(ToSchema)]
pub struct MovieAdded {
    pub id: Uuid,
    /// The movie's version, for `If-Match` on the next edit.
    pub version: u64,
    pub position: u64,
}

/// `PATCH /api/movies/{id}` answered 200.
#[derive(ToSchema)]
pub struct MovieEdited {
    pub version: u64,
    pub position: u64,
}

/// `PUT /api/movies/{id}/poster` answered 200.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PosterAttached {
    pub poster_url: String,
    /// 320 pixels wide: JPEG, or PNG when the image has transparency.
    pub thumbnail_url: String,
    pub position: u64,
}

/// WebAuthn options (webauthn-rs's challenge response) with the ceremony id beside them.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PasskeyOptions {
    /// Send it back with the credential.
    pub ceremony_id: Uuid,
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions`.
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
    /// `"conditional"` for discoverable sign-ins.
    #[schema(nullable = false)]
    pub mediation: Option<String>,
}

/// The authenticator's answer to the options of ceremony `ceremonyId`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PasskeyAnswer {
    pub ceremony_id: Uuid,
    /// The credential `navigator.credentials.create` (registration) or
    /// `navigator.credentials.get` (sign-in) returned, as JSON.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// `GET /healthz`.
#[derive(ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`.
#[derive(ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    /// The event store's head.
    pub position: u64,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marquee command API",
        description = "Commands in, events out: every command answers with the global position \
                       of the events it stored. Errors are `{\"error\": {\"code\", \"message\", \
                       \"field\"?}}`. Commands under /api/users, /api/movies and \
                       /api/admin accept an `Idempotency-Key` header."
    ),
    paths(
        users::register,
        users::sign_in,
        users::sign_out,
        users::grant_role,
        users::unlock,
        users::forget,
        passkeys::registration_options,
        passkeys::register,
        passkeys::authentication_options,
        passkeys::sign_in,
        movies::add,
        movies::edit,
        movies::remove,
        posters::upload,
        posters::disk::serve,
        subscriptions::create,
        subscriptions::list,
        subscriptions::delete,
        health::healthz,
        health::readyz,
        health::metrics,
        document,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        UserRegistered,
        SessionOpened,
        Stored,
        MovieAdded,
        MovieEdited,
        PosterAttached,
        PasskeyOptions,
        PasskeyAnswer,
        Health,
        Readiness,
        users::Registration,
        users::PasswordSignIn,
        users::RoleGrant,
        movies::NewMovie,
        movies::MovieEdit,
        passkeys::SignInStart,
        subscriptions::SubscriptionRequest,
        subscriptions::Subscription,
        subscriptions::Topic,
        subscriptions::Protocol,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "users", description = "Accounts, sessions and roles"),
        (name = "passkeys", description = "WebAuthn registration and sign-in"),
        (name = "movies", description = "The catalogue: add, edit, posters, remove"),
        (name = "subscriptions", description = "Notification subscriptions (admin)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// `bearer`: `Authorization: Bearer <token>`; `cookie`: the `marquee_session` cookie.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The token a sign-in answered with"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::SESSION_COOKIE,
                "The HttpOnly session cookie a sign-in sets; state-changing requests must come \
                 from this site's origin",
            ))),
        );
    }
}

/// `GET /api/openapi.json`: this API's OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every route the router serves, as the contract lists them plus the operational ones.
    const ROUTES: &[(&str, &str)] = &[
        ("post", "/api/users"),
        ("post", "/api/sessions"),
        ("delete", "/api/sessions"),
        ("post", "/api/passkeys/registration/options"),
        ("post", "/api/passkeys/registration"),
        ("post", "/api/passkeys/authentication/options"),
        ("post", "/api/passkeys/authentication"),
        ("post", "/api/movies"),
        ("patch", "/api/movies/{id}"),
        ("put", "/api/movies/{id}/poster"),
        ("delete", "/api/movies/{id}"),
        ("post", "/api/admin/subscriptions"),
        ("get", "/api/admin/subscriptions"),
        ("delete", "/api/admin/subscriptions/{id}"),
        ("post", "/api/users/{username}/roles"),
        ("post", "/api/users/{username}/unlock"),
        ("post", "/api/users/{username}/forget"),
        ("get", "/posters/{key}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
    ];

    fn operations() -> BTreeSet<(String, String)> {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut found = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    found.insert((method.clone(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_lists_every_route_and_no_other() {
        let expected: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(operations(), expected);
    }

    #[test]
    fn every_operation_documents_its_errors_with_the_error_body() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["cookie"]["in"], "cookie");
        assert_eq!(schemes["cookie"]["name"], "marquee_session");
        for (method, path) in operations() {
            let operation = &document["paths"][&path][&method];
            assert!(operation["tags"].as_array().is_some_and(|t| !t.is_empty()));
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} has no success response"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
        let edit = &document["paths"]["/api/movies/{id}"]["patch"];
        for status in ["200", "400", "401", "403", "404", "409", "422"] {
            assert!(edit["responses"].get(status).is_some(), "PATCH {status}");
        }
        assert!(edit["security"].as_array().is_some_and(|s| s.len() == 2));
        let poster = &document["paths"]["/api/movies/{id}/poster"]["put"]["requestBody"];
        assert_eq!(poster["content"]["image/png"]["schema"]["format"], "binary");
    }
}
