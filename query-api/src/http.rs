//! The HTTP and WebSocket face: `POST /graphql`, `GET /graphql` (a query string, or a small
//! query page for browsers), `/graphql/ws` (graphql-transport-ws). Authentication, the
//! read-your-writes wait and error codes the engine itself does not set are handled here.

use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, ParseRequestError, Pos, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::Viewer;
use crate::error::{FieldError, QueryError, DATABASE_UNAVAILABLE};
use crate::live::wait_for_read_models;
use crate::websocket;
use crate::{schema_builder, MarqueeSchema, QueryApi};

/// Read-your-writes: answer only once the read models have applied this position.
pub const MIN_POSITION_HEADER: &str = "x-min-position";

/// The largest `POST /graphql` body read: far past any real document, short of a flood.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a WebSocket may stay open without a word from the client; the server pings it at
/// half that, so a live client always has something to answer.
pub const KEEPALIVE: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Service {
    schema: MarqueeSchema,
    api: QueryApi,
}

/// The GraphQL routes.
pub fn router(api: QueryApi) -> Router {
    let schema = schema_builder().data(api.clone()).finish();
    Router::new()
        .route(
            "/graphql",
            get(get_graphql)
                .post(post_graphql)
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/graphql/ws", get(websocket))
        .with_state(Service { schema, api })
}

async fn post_graphql(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return unreadable(ParseRequestError::PayloadTooLarge)
        }
        Err(rejection) => {
            return unreadable(ParseRequestError::InvalidRequest(Box::new(rejection)))
        }
    };
    if body.trim_ascii_start().starts_with(b"[") {
        return unreadable(ParseRequestError::UnsupportedBatch);
    }
    match serde_json::from_slice::<async_graphql::Request>(&body) {
        Ok(request) => execute(&service, &headers, request).await,
        Err(error) => unreadable(ParseRequestError::InvalidRequest(Box::new(error))),
    }
}

/// A body that is no GraphQL request (not JSON, invalid UTF-8, a batch, too large): a GraphQL
/// error with a code, never the extractor's plain-text debug output.
fn unreadable(error: ParseRequestError) -> Response {
    let status = match error {
        ParseRequestError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = match error {
        ParseRequestError::InvalidRequest(cause) => {
            format!("the body is not a GraphQL request: {cause}")
        }
        ParseRequestError::UnsupportedBatch => {
            "batches are not accepted: send one operation per request".to_string()
        }
        other => format!("the body is not a GraphQL request: {other}"),
    };
    let mut response = answer(failed(QueryError::BadInput("bad_request", message)));
    *response.status_mut() = status;
    response
}

async fn get_graphql(
    State(service): State<Service>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match query {
        Some(query) if !query.is_empty() => match async_graphql::http::parse_query_string(&query) {
            Ok(request) => execute(&service, &headers, request).await,
            Err(error) => answer(failed(QueryError::BadInput(
                "bad_request",
                error.to_string(),
            ))),
        },
        _ => Html(QUERY_PAGE).into_response(),
    }
}

async fn execute(
    service: &Service,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let viewer = match service
        .api
        .viewer(command_api::session_token(headers))
        .await
    {
        Ok(viewer) => viewer,
        Err(error) => return answer(failed(error)),
    };
    if let Err(error) = service.api.read_your_writes(headers).await {
        return answer(failed(error));
    }
    answer(service.schema.execute(request.data(viewer)).await)
}

/// A request refused before it ran, as a GraphQL answer with the error.
fn failed(error: QueryError) -> async_graphql::Response {
    let error: ServerError =
        async_graphql::Error::from(FieldError(error)).into_server_error(Pos::default());
    async_graphql::Response::from_errors(vec![error])
}

/// HTTP 200, as GraphQL clients expect, except 503 when the database did not answer: load
/// balancers and clients then see the outage as on the command API (the body keeps the codes).
fn answer(response: async_graphql::Response) -> Response {
    let unavailable = response.errors.iter().any(|error| {
        error.extensions.as_ref().is_some_and(|extensions| {
            extensions.get("code") == Some(&async_graphql::Value::from(DATABASE_UNAVAILABLE))
        })
    });
    let mut response = GraphQLResponse::from(response).into_response();
    if unavailable {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

async fn websocket(
    State(service): State<Service>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if command_api::cross_site_cookie(&headers, &service.api.public_origin) {
        return command_api::ApiError::CsrfRejected.into_response();
    }
    let header_token = command_api::session_token(&headers);
    // Clients of the older graphql-ws protocol have no pong, so only graphql-transport-ws gets
    // pings and the quiet-socket timeout.
    let keepalive = speaks_graphql_transport_ws(&headers).then_some(KEEPALIVE);
    // The same bound as a POST body: axum's default (64 MiB) would let one frame fill memory.
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| async move {
            let api = service.api.clone();
            let (sink, stream, forward) = websocket::guarded(socket, keepalive.map(|k| k / 2));
            let graphql =
                GraphQLWebSocket::new_with_pair(sink, stream, service.schema.clone(), protocol)
                    .keepalive_timeout(keepalive)
                    .on_connection_init(move |payload| async move {
                        let token = payload_token(&payload).or(header_token);
                        let viewer = api
                            .viewer(token)
                            .await
                            .map_err(|e| async_graphql::Error::from(FieldError(e)))?;
                        let mut data = Data::default();
                        data.insert(viewer);
                        Ok(data)
                    })
                    .serve();
            futures::join!(graphql, forward);
        })
}

/// Whether the upgrade settles on graphql-transport-ws: the first protocol the client lists
/// that the server speaks, as the engine picks it.
fn speaks_graphql_transport_ws(headers: &HeaderMap) -> bool {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find(|protocol| {
            protocol.eq_ignore_ascii_case("graphql-transport-ws")
                || protocol.eq_ignore_ascii_case("graphql-ws")
        })
        .is_some_and(|protocol| protocol.eq_ignore_ascii_case("graphql-transport-ws"))
}

/// The token in a connection_init payload: `{"authorization": "Bearer …"}` or `{"token": "…"}`.
fn payload_token(payload: &serde_json::Value) -> Option<String> {
    let field = |name: &str| payload.get(name).and_then(serde_json::Value::as_str);
    field("authorization")
        .or_else(|| field("Authorization"))
        .map(|value| {
            value
                .strip_prefix("Bearer ")
                .unwrap_or(value)
                .trim()
                .to_string()
        })
        .or_else(|| field("token").map(str::to_string))
        .filter(|token| !token.is_empty())
}

impl QueryApi {
    /// The caller behind `token`; a token that is unknown, expired or revoked is refused rather
    /// than treated as anonymous.
    async fn viewer(&self, token: Option<String>) -> Result<Viewer, QueryError> {
        let Some(token) = token else {
            return Ok(Viewer(None));
        };
        match self.sessions.find(&token).await? {
            Some(session) => Ok(Viewer(Some(session))),
            None => Err(QueryError::Unauthenticated),
        }
    }

    /// Waits, bounded, for the position in `X-Min-Position`.
    async fn read_your_writes(&self, headers: &HeaderMap) -> Result<(), QueryError> {
        let Some(raw) = headers.get(MIN_POSITION_HEADER) else {
            return Ok(());
        };
        let position = raw
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .filter(|position| *position >= 0)
            .ok_or_else(|| {
                QueryError::BadInput(
                    "bad_min_position",
                    "X-Min-Position must be a non-negative integer: a position a command answered with"
                        .into(),
                )
            })?;
        let waited = self.config.min_position_wait;
        if wait_for_read_models(&self.store, position, waited).await? {
            Ok(())
        } else {
            Err(QueryError::MinPositionTimeout { position, waited })
        }
    }
}

/// A query page with no assets from elsewhere: a query, its variables, the answer.
const QUERY_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Marquee GraphQL</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; }
textarea { width: 100%; font-family: ui-monospace, monospace; }
pre { background: #f4f4f4; padding: 1rem; overflow: auto; }
</style>
</head>
<body>
<h1>Marquee GraphQL</h1>
<p>POST <code>/graphql</code>; subscriptions over <code>/graphql/ws</code> (graphql-transport-ws).
Signed-in requests use the session cookie of this site.</p>
<label for="query">Query</label>
<textarea id="query" rows="14">{
  movies(first: 5) {
    totalCount
    edges { node { id title year director genres } }
    pageInfo { hasNextPage endCursor }
  }
}</textarea>
<label for="variables">Variables (JSON)</label>
<textarea id="variables" rows="3">{}</textarea>
<p><button id="run">Run</button></p>
<pre id="result"></pre>
<script>
document.getElementById("run").addEventListener("click", async () => {
  const out = document.getElementById("result");
  try {
    const response = await fetch("/graphql", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: document.getElementById("query").value,
        variables: JSON.parse(document.getElementById("variables").value || "{}"),
      }),
    });
    out.textContent = JSON.stringify(await response.json(), null, 2);
  } catch (error) {
    out.textContent = String(error);
  }
});
</script>
</body>
</html>
"#;
