//! Passkeys end to end against the real app, on SQLite and on MariaDB: a software authenticator
//! (webauthn-authenticator-rs's SoftToken, which performs user verification) creates and uses
//! real credentials, just as a browser would hand them to the site.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use event_store::{RecordedEvent, StreamId};
use marquee_tests::{on_both_backends, TestApp, TestDatabase};
use reqwest::header::SET_COOKIE;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use url::Url;
use webauthn_authenticator_rs::error::WebauthnCError;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::{AuthenticatorBackendHashedClientData, WebauthnAuthenticator};
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential,
    PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions,
    RegisterPublicKeyCredential, RequestChallengeResponse, UserVerificationPolicy,
};

on_both_backends!(
    register_then_sign_in_by_username,
    sign_in_with_a_discoverable_credential,
    a_user_registers_a_second_passkey,
    a_cloned_authenticator_is_refused_and_recorded,
    the_user_must_be_verified,
    registration_needs_a_session,
    malformed_credentials_store_nothing,
    expired_reused_and_foreign_ceremonies_are_refused,
    a_ceremony_started_on_one_server_finishes_on_another,
);

/// A software authenticator used through the client side of WebAuthn, at the app's origin.
struct Authenticator {
    token: SoftToken,
    origin: Url,
}

impl Authenticator {
    fn new(app: &TestApp) -> Self {
        let (token, _attestation_ca) = SoftToken::new(true).expect("a soft token");
        Self {
            token,
            origin: Url::parse(&app.base_url).unwrap(),
        }
    }

    /// A copy with the same keys and counter: what an attacker who cloned it would hold.
    fn clone_keys(&self) -> Self {
        Self {
            token: SoftToken::from_cbor(&self.token.to_cbor().unwrap()).unwrap(),
            origin: self.origin.clone(),
        }
    }

    fn create(&mut self, options: CreationChallengeResponse) -> RegisterPublicKeyCredential {
        WebauthnAuthenticator::new(Borrowed(&mut self.token))
            .do_registration(self.origin.clone(), options)
            .expect("the authenticator creates a credential")
    }

    fn sign(&mut self, options: RequestChallengeResponse) -> PublicKeyCredential {
        WebauthnAuthenticator::new(Borrowed(&mut self.token))
            .do_authentication(self.origin.clone(), options)
            .expect("the authenticator signs")
    }
}

/// Lends the token to one ceremony, so the test keeps it (to clone it) between ceremonies.
struct Borrowed<'a>(&'a mut SoftToken);

impl AuthenticatorBackendHashedClientData for Borrowed<'_> {
    fn perform_register(
        &mut self,
        client_data_hash: Vec<u8>,
        options: PublicKeyCredentialCreationOptions,
        timeout_ms: u32,
    ) -> Result<RegisterPublicKeyCredential, WebauthnCError> {
        self.0
            .perform_register(client_data_hash, options, timeout_ms)
    }

    fn perform_auth(
        &mut self,
        client_data_hash: Vec<u8>,
        options: PublicKeyCredentialRequestOptions,
        timeout_ms: u32,
    ) -> Result<PublicKeyCredential, WebauthnCError> {
        self.0.perform_auth(client_data_hash, options, timeout_ms)
    }
}

/// The app at http://localhost:PORT, where the authenticator's origin must match it exactly.
async fn spawn(db: &TestDatabase) -> TestApp {
    let app = db.spawn_app_on_localhost().await;
    assert!(app.base_url.starts_with("http://localhost:"));
    app
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
    let mut request = Client::new().post(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn ok_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The contract's error code of a response, asserting its status.
async fn error_code(response: Response, status: StatusCode) -> String {
    let body = ok_json(response, status).await;
    body["error"]["code"].as_str().unwrap().to_string()
}

fn ceremony_id(options: &Value) -> String {
    options["ceremonyId"]
        .as_str()
        .expect("a ceremonyId")
        .to_string()
}

async fn registration_options(app: &TestApp, token: &str) -> (String, CreationChallengeResponse) {
    let options = ok_json(
        post(app, "/api/passkeys/registration/options", Some(token), None).await,
        StatusCode::OK,
    )
    .await;
    (
        ceremony_id(&options),
        serde_json::from_value(options).unwrap(),
    )
}

async fn finish_registration(
    app: &TestApp,
    token: &str,
    ceremony_id: &str,
    credential: &RegisterPublicKeyCredential,
) -> Response {
    let answer = json!({ "ceremonyId": ceremony_id, "credential": credential });
    post(app, "/api/passkeys/registration", Some(token), Some(answer)).await
}

/// Registers a new passkey for `token`'s user; returns its credential id.
async fn register_passkey(app: &TestApp, token: &str, authenticator: &mut Authenticator) -> String {
    let (ceremony, options) = registration_options(app, token).await;
    let credential = authenticator.create(options);
    let created = ok_json(
        finish_registration(app, token, &ceremony, &credential).await,
        StatusCode::CREATED,
    )
    .await;
    assert!(created["position"].as_i64().is_some());
    credential.id
}

async fn authentication_options(app: &TestApp, body: Option<Value>) -> (String, Value) {
    let options = ok_json(
        post(app, "/api/passkeys/authentication/options", None, body).await,
        StatusCode::OK,
    )
    .await;
    (ceremony_id(&options), options)
}

async fn finish_sign_in(
    app: &TestApp,
    ceremony_id: &str,
    credential: &PublicKeyCredential,
) -> Response {
    let answer = json!({ "ceremonyId": ceremony_id, "credential": credential });
    post(app, "/api/passkeys/authentication", None, Some(answer)).await
}

/// Signs in as `username` with the authenticator; returns the response.
async fn passkey_sign_in(
    app: &TestApp,
    username: &str,
    authenticator: &mut Authenticator,
) -> Response {
    let (ceremony, options) =
        authentication_options(app, Some(json!({ "username": username }))).await;
    let credential = authenticator.sign(serde_json::from_value(options).unwrap());
    finish_sign_in(app, &ceremony, &credential).await
}

/// A session token works: signing out with it answers 204.
async fn assert_token_works(app: &TestApp, token: &str) {
    let signed_out = Client::new()
        .delete(app.url("/api/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
}

async fn user_events(app: &TestApp, username: &str) -> Vec<RecordedEvent> {
    let id = domain::UserId::for_username(&domain::Username::parse(username).unwrap());
    app.app
        .store
        .read_stream(&StreamId::new("User", id.to_string()), 0)
        .await
        .unwrap()
}

fn last_event(events: &[RecordedEvent]) -> &RecordedEvent {
    events.last().expect("the user has events")
}

async fn register_then_sign_in_by_username(db: TestDatabase) {
    let app = spawn(&db).await;
    let mut authenticator = Authenticator::new(&app);
    let password_token = app.signed_in("ada").await;
    let credential_id = register_passkey(&app, &password_token, &mut authenticator).await;
    let events = user_events(&app, "ada").await;
    let registered = last_event(&events);
    assert_eq!(registered.event_type, "PasskeyRegistered");
    assert_eq!(registered.payload["credential_id"], credential_id);
    assert!(registered.payload["passkey"].is_object());
    assert_token_works(&app, &password_token).await;

    let (ceremony, options) =
        authentication_options(&app, Some(json!({ "username": "ADA" }))).await;
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(
        options["publicKey"]["allowCredentials"][0]["id"],
        credential_id
    );
    let credential = authenticator.sign(serde_json::from_value(options).unwrap());
    let signed_in = finish_sign_in(&app, &ceremony, &credential).await;
    let cookie = signed_in.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let body = ok_json(signed_in, StatusCode::OK).await;
    let token = body["token"].as_str().unwrap();
    assert!(cookie.starts_with(&format!("marquee_session={token};")));
    assert!(body["expiresAt"].as_str().is_some());
    let events = user_events(&app, "ada").await;
    let succeeded = last_event(&events);
    assert_eq!(succeeded.event_type, "PasskeyLoginSucceeded");
    assert_eq!(body["position"], succeeded.position);
    assert_eq!(succeeded.payload["credential_id"], credential_id);
    assert_eq!(succeeded.payload["counter"], 1);
    assert_eq!(succeeded.payload["ip"], "127.0.0.1");
    assert_token_works(&app, token).await;

    let again = ok_json(
        passkey_sign_in(&app, "ada", &mut authenticator).await,
        StatusCode::OK,
    )
    .await;
    assert_token_works(&app, again["token"].as_str().unwrap()).await;
    assert_eq!(
        last_event(&user_events(&app, "ada").await).payload["counter"],
        2
    );
}

async fn sign_in_with_a_discoverable_credential(db: TestDatabase) {
    let app = spawn(&db).await;
    let mut authenticator = Authenticator::new(&app);
    let token = app.signed_in("grace").await;
    let credential_id = register_passkey(&app, &token, &mut authenticator).await;

    // No body, `{}` and an unknown username all start the same discoverable ceremony, so the
    // answer does not tell whether an account exists.
    let (_, empty) = authentication_options(&app, None).await;
    let (_, braces) = authentication_options(&app, Some(json!({}))).await;
    let (_, stranger) =
        authentication_options(&app, Some(json!({ "username": "nobody-here" }))).await;
    for options in [&empty, &braces, &stranger] {
        assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
        assert_eq!(options["mediation"], "conditional");
    }

    let (ceremony, options) = authentication_options(&app, None).await;
    let mut options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    // The soft token keeps no resident keys, so the test plays its lookup: it names the
    // credential it holds for this site, and returns the user handle stored with it.
    options.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: URL_SAFE_NO_PAD.decode(&credential_id).unwrap().into(),
        transports: None,
    }];
    let mut credential = authenticator.sign(options);
    let user_id = domain::UserId::for_username(&domain::Username::parse("grace").unwrap());
    credential.response.user_handle = Some(user_id.as_uuid().as_bytes().to_vec().into());
    let body = ok_json(
        finish_sign_in(&app, &ceremony, &credential).await,
        StatusCode::OK,
    )
    .await;
    assert_token_works(&app, body["token"].as_str().unwrap()).await;
    assert_eq!(
        last_event(&user_events(&app, "grace").await).event_type,
        "PasskeyLoginSucceeded"
    );

    // A user handle naming someone else does not match the credential.
    app.signed_in("mallory").await;
    let (ceremony, options) = authentication_options(&app, None).await;
    let mut options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    options.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: URL_SAFE_NO_PAD.decode(&credential_id).unwrap().into(),
        transports: None,
    }];
    let mut credential = authenticator.sign(options);
    let mallory = domain::UserId::for_username(&domain::Username::parse("mallory").unwrap());
    credential.response.user_handle = Some(mallory.as_uuid().as_bytes().to_vec().into());
    let mallory_events = user_events(&app, "mallory").await.len();
    assert_eq!(
        error_code(
            finish_sign_in(&app, &ceremony, &credential).await,
            StatusCode::UNAUTHORIZED
        )
        .await,
        "invalid_credentials"
    );
    // No session for anyone; the attempt on Mallory's account is on her record.
    let events = user_events(&app, "mallory").await;
    assert_eq!(events.len(), mallory_events + 1);
    assert_eq!(last_event(&events).payload["reason"], "invalid_assertion");
}

async fn a_user_registers_a_second_passkey(db: TestDatabase) {
    let app = spawn(&db).await;
    let mut laptop = Authenticator::new(&app);
    let mut phone = Authenticator::new(&app);
    let token = app.signed_in("linus").await;
    let first = register_passkey(&app, &token, &mut laptop).await;

    let (ceremony, options) = registration_options(&app, &token).await;
    let excluded: Vec<String> = options
        .public_key
        .exclude_credentials
        .iter()
        .flatten()
        .map(|descriptor| URL_SAFE_NO_PAD.encode(descriptor.id.as_ref()))
        .collect();
    assert_eq!(excluded, vec![first.clone()]);
    let credential = phone.create(options);
    ok_json(
        finish_registration(&app, &token, &ceremony, &credential).await,
        StatusCode::CREATED,
    )
    .await;
    let second = credential.id;
    assert_ne!(first, second);

    let (_, options) = authentication_options(&app, Some(json!({ "username": "linus" }))).await;
    let mut allowed: Vec<String> = options["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    allowed.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(allowed, expected);

    for (authenticator, credential_id) in [(&mut laptop, &first), (&mut phone, &second)] {
        ok_json(
            passkey_sign_in(&app, "linus", authenticator).await,
            StatusCode::OK,
        )
        .await;
        let events = user_events(&app, "linus").await;
        assert_eq!(last_event(&events).payload["credential_id"], *credential_id);
    }
}

async fn a_cloned_authenticator_is_refused_and_recorded(db: TestDatabase) {
    let app = spawn(&db).await;
    let mut original = Authenticator::new(&app);
    let token = app.signed_in("eve").await;
    register_passkey(&app, &token, &mut original).await;
    let mut clone = original.clone_keys();

    ok_json(
        passkey_sign_in(&app, "eve", &mut original).await,
        StatusCode::OK,
    )
    .await;
    // The clone signs validly, but with the counter the original already used.
    let refused = passkey_sign_in(&app, "eve", &mut clone).await;
    assert!(refused.headers().get(SET_COOKIE).is_none());
    assert_eq!(
        error_code(refused, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );
    let events = user_events(&app, "eve").await;
    let failed = last_event(&events);
    assert_eq!(failed.event_type, "LoginFailed");
    assert_eq!(failed.payload["method"], "passkey");
    assert_eq!(failed.payload["reason"], "counter_regression");

    // The original, counting on, still signs in.
    ok_json(
        passkey_sign_in(&app, "eve", &mut original).await,
        StatusCode::OK,
    )
    .await;
}

async fn the_user_must_be_verified(db: TestDatabase) {
    let app = spawn(&db).await;
    let mut authenticator = Authenticator::new(&app);
    let token = app.signed_in("ken").await;
    let before = user_events(&app, "ken").await.len();

    // A client that waters the options down gets a credential without the verified flag.
    let (ceremony, mut options) = registration_options(&app, &token).await;
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.user_verification = UserVerificationPolicy::Preferred;
    }
    let credential = authenticator.create(options);
    assert_eq!(
        error_code(
            finish_registration(&app, &token, &ceremony, &credential).await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "user_not_verified"
    );
    assert_eq!(user_events(&app, "ken").await.len(), before);

    register_passkey(&app, &token, &mut authenticator).await;
    let registered = user_events(&app, "ken").await.len();
    let (ceremony, options) =
        authentication_options(&app, Some(json!({ "username": "ken" }))).await;
    let mut options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    options.public_key.user_verification = UserVerificationPolicy::Preferred;
    let credential = authenticator.sign(options);
    assert_eq!(
        error_code(
            finish_sign_in(&app, &ceremony, &credential).await,
            StatusCode::UNAUTHORIZED
        )
        .await,
        "invalid_credentials"
    );
    // The refused attempt is on the record, as every sign-in attempt is.
    let events = user_events(&app, "ken").await;
    assert_eq!(events.len(), registered + 1);
    let failed = events.last().unwrap();
    assert_eq!(failed.event_type, "LoginFailed");
    assert_eq!(failed.payload["reason"], "invalid_assertion");
    assert_eq!(failed.payload["method"], "passkey");
}

async fn registration_needs_a_session(db: TestDatabase) {
    let app = spawn(&db).await;
    let anonymous = post(&app, "/api/passkeys/registration/options", None, None).await;
    assert_eq!(
        error_code(anonymous, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    let token = app.signed_in("ida").await;
    let (ceremony, options) = registration_options(&app, &token).await;
    let credential = Authenticator::new(&app).create(options);
    let answer = json!({ "ceremonyId": ceremony, "credential": credential });
    let anonymous = post(&app, "/api/passkeys/registration", None, Some(answer)).await;
    assert_eq!(
        error_code(anonymous, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    assert_eq!(
        last_event(&user_events(&app, "ida").await).event_type,
        "PasswordLoginSucceeded"
    );
}

async fn malformed_credentials_store_nothing(db: TestDatabase) {
    let app = spawn(&db).await;
    let token = app.signed_in("joan").await;
    let head = app.app.store.head().await.unwrap();
    let (ceremony, _) = registration_options(&app, &token).await;
    for path in ["/api/passkeys/registration", "/api/passkeys/authentication"] {
        let malformed = Client::new()
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{\"ceremonyId\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(malformed, StatusCode::BAD_REQUEST).await,
            "malformed_json"
        );
        for body in [
            json!({ "ceremonyId": ceremony, "credential": { "id": "x" } }),
            json!({ "ceremonyId": "not-a-uuid", "credential": {} }),
            json!({ "credential": {} }),
        ] {
            let wrong_shape = post(&app, path, Some(&token), Some(body)).await;
            assert_eq!(
                error_code(wrong_shape, StatusCode::UNPROCESSABLE_ENTITY).await,
                "invalid_body"
            );
        }
    }
    let malformed_start = Client::new()
        .post(app.url("/api/passkeys/authentication/options"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(malformed_start, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );
    let wrong_start = post(
        &app,
        "/api/passkeys/authentication/options",
        None,
        Some(json!({ "username": 7 })),
    )
    .await;
    assert_eq!(
        error_code(wrong_start, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_body"
    );
    assert_eq!(app.app.store.head().await.unwrap(), head);
}

async fn expired_reused_and_foreign_ceremonies_are_refused(db: TestDatabase) {
    let app = spawn(&db).await;
    let mut authenticator = Authenticator::new(&app);
    let token = app.signed_in("alan").await;

    let (ceremony, options) = registration_options(&app, &token).await;
    let credential = authenticator.create(options);
    db.execute(&format!(
        "UPDATE webauthn_ceremonies SET expires_at = '2000-01-01T00:00:00.000000Z' \
         WHERE id = '{ceremony}'"
    ))
    .await;
    let head = app.app.store.head().await.unwrap();
    assert_eq!(
        error_code(
            finish_registration(&app, &token, &ceremony, &credential).await,
            StatusCode::NOT_FOUND
        )
        .await,
        "not_found"
    );
    assert_eq!(app.app.store.head().await.unwrap(), head);

    // A registration ceremony belongs to the user who started it.
    let (ceremony, options) = registration_options(&app, &token).await;
    let credential = authenticator.create(options);
    let other = app.signed_in("bob").await;
    assert_eq!(
        error_code(
            finish_registration(&app, &other, &ceremony, &credential).await,
            StatusCode::NOT_FOUND
        )
        .await,
        "not_found"
    );
    ok_json(
        finish_registration(&app, &token, &ceremony, &credential).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        error_code(
            finish_registration(&app, &token, &ceremony, &credential).await,
            StatusCode::NOT_FOUND
        )
        .await,
        "not_found"
    );

    let (ceremony, options) =
        authentication_options(&app, Some(json!({ "username": "alan" }))).await;
    let assertion = authenticator.sign(serde_json::from_value(options).unwrap());
    ok_json(
        finish_sign_in(&app, &ceremony, &assertion).await,
        StatusCode::OK,
    )
    .await;
    let signed_in = user_events(&app, "alan").await.len();
    assert_eq!(
        error_code(
            finish_sign_in(&app, &ceremony, &assertion).await,
            StatusCode::NOT_FOUND
        )
        .await,
        "not_found"
    );
    assert_eq!(user_events(&app, "alan").await.len(), signed_in);
}

async fn a_ceremony_started_on_one_server_finishes_on_another(db: TestDatabase) {
    let first = spawn(&db).await;
    // A second server behind the same public URL, as behind a load balancer.
    let second = db
        .spawn_app_with(|settings| settings.public_url = Some(first.base_url.clone()))
        .await;
    let mut authenticator = Authenticator::new(&first);
    let token = first.signed_in("barbara").await;

    let (ceremony, options) = registration_options(&first, &token).await;
    let credential = authenticator.create(options);
    ok_json(
        finish_registration(&second, &token, &ceremony, &credential).await,
        StatusCode::CREATED,
    )
    .await;

    let (ceremony, options) =
        authentication_options(&second, Some(json!({ "username": "barbara" }))).await;
    let assertion = authenticator.sign(serde_json::from_value(options).unwrap());
    let body = ok_json(
        finish_sign_in(&first, &ceremony, &assertion).await,
        StatusCode::OK,
    )
    .await;
    assert_token_works(&second, body["token"].as_str().unwrap()).await;
}
