//! An emulator of the AWS Lambda Runtime API, so a test can run a real Lambda binary (built on
//! the `lambda_runtime` crate) as Lambda does: the binary long-polls `invocation/next` and posts
//! its answer back; the test queues events with [`RuntimeApi::invoke`] and gets the answers.
//!
//! The protocol is the documented one
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>), version `2018-06-01`:
//!
//! - `GET  /2018-06-01/runtime/invocation/next` waits for an event; `200` with the event as the
//!   body and the `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and
//!   `-Trace-Id` headers;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `…/{id}/error` answer `202` and end
//!   that invocation (`400` for an unknown or already answered id, `413` over 6 MiB);
//! - `POST /2018-06-01/runtime/init/error` answers `202` and records the function's failure to
//!   start: every pending and later [`RuntimeApi::invoke`] then fails with it.
//!
//! It also records when the first request of any kind arrived, which against the instant
//! [`spawn_function`] started the process measures a cold start.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch, Notify};

/// The largest request or response payload Lambda accepts (synchronous invocations).
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// The function name the emulator reports, in the ARN and in [`spawn_function`]'s environment.
pub const FUNCTION_NAME: &str = "marquee-test-function";

/// How one invocation ended, as the function reported it.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// `POST …/response`: the body, as JSON (a body that is not JSON, such as a streamed
    /// response, is given as a JSON string).
    Response(Value),
    /// `POST …/error`: the `Lambda-Runtime-Function-Error-Type` header, if any, and the body
    /// (for `lambda_runtime`, `{"errorType": …, "errorMessage": …}`).
    Error {
        error_type: Option<String>,
        body: Value,
    },
}

/// A running Runtime API on `127.0.0.1`, stopped when dropped.
pub struct RuntimeApi {
    address: String,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

struct Shared {
    region: String,
    /// Events waiting for a `next` call, oldest first.
    queue: Mutex<VecDeque<Queued>>,
    queued: Notify,
    /// Invocations handed out or queued and not yet answered, by request id.
    pending: Mutex<HashMap<String, oneshot::Sender<Invocation>>>,
    first_request_at: OnceLock<Instant>,
    /// The `init/error` report: its error type header and body.
    init_error: watch::Sender<Option<(Option<String>, Value)>>,
    shutdown: watch::Receiver<bool>,
}

struct Queued {
    request_id: String,
    event: Vec<u8>,
    deadline_ms: u128,
}

impl RuntimeApi {
    /// Starts the emulator on a free port of `127.0.0.1`.
    pub async fn start() -> anyhow::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Lambda Runtime API emulator")?;
        let address = listener.local_addr()?.to_string();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            region: region(),
            queue: Mutex::default(),
            queued: Notify::new(),
            pending: Mutex::default(),
            first_request_at: OnceLock::new(),
            init_error: watch::Sender::new(None),
            shutdown: shutdown_rx.clone(),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(unknown_route)
            .layer(DefaultBodyLimit::max(MAX_PAYLOAD))
            .layer(middleware::from_fn_with_state(
                shared.clone(),
                record_first_request,
            ))
            .with_state(shared.clone());
        let mut stop = shutdown_rx;
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await;
        });
        Ok(RuntimeApi {
            address,
            shared,
            shutdown,
        })
    }

    /// `127.0.0.1:PORT`: the value of `AWS_LAMBDA_RUNTIME_API` (no scheme, as Lambda sets it).
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// The ARN sent as `Lambda-Runtime-Invoked-Function-Arn`.
    pub fn function_arn(&self) -> String {
        function_arn(&self.shared.region)
    }

    /// Queues `event` for the function and waits for its answer. `timeout` is also the
    /// invocation's deadline (`Lambda-Runtime-Deadline-Ms`), as a function's timeout is on Lambda.
    /// Fails when the function reported an init error (before or while waiting) or did not
    /// answer in time; an error the function reported for this event is `Ok(Invocation::Error)`.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> anyhow::Result<Invocation> {
        let mut init_error = self.shared.init_error.subscribe();
        if let Some(reported) = init_error.borrow_and_update().clone() {
            return Err(init_failed(reported));
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let (answer, answered) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap()
            .insert(request_id.clone(), answer);
        let deadline = SystemTime::now() + timeout;
        self.shared.queue.lock().unwrap().push_back(Queued {
            request_id: request_id.clone(),
            event: serde_json::to_vec(&event)?,
            deadline_ms: deadline.duration_since(UNIX_EPOCH)?.as_millis(),
        });
        self.shared.queued.notify_one();

        let outcome = tokio::time::timeout(timeout, async {
            tokio::select! {
                answer = answered => answer.map_err(|_| anyhow!("the emulator stopped")),
                reported = init_error.wait_for(Option::is_some) => match reported {
                    Ok(reported) => Err(init_failed(reported.clone().expect("an init error"))),
                    Err(_) => Err(anyhow!("the emulator stopped")),
                },
            }
        })
        .await;
        // Whatever happened, this event must not be handed out or answered any more.
        self.shared
            .queue
            .lock()
            .unwrap()
            .retain(|queued| queued.request_id != request_id);
        self.shared.pending.lock().unwrap().remove(&request_id);
        match outcome {
            Ok(result) => result,
            Err(_) => bail!(
                "the function did not answer invocation {request_id} within {timeout:?} \
                 (did it start, with AWS_LAMBDA_RUNTIME_API={}?)",
                self.address
            ),
        }
    }

    /// When the first request of any kind reached the emulator, if one has.
    pub fn first_request_at(&self) -> Option<Instant> {
        self.shared.first_request_at.get().copied()
    }

    /// The body of the function's `init/error` report, if it made one.
    pub fn init_error(&self) -> Option<Value> {
        self.shared
            .init_error
            .borrow()
            .as_ref()
            .map(|(_, body)| body.clone())
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Ends the long polls (so their connections close) and then the server.
        let _ = self.shutdown.send(true);
    }
}

/// Spawns a Lambda binary with the environment Lambda gives a function: `AWS_LAMBDA_RUNTIME_API`
/// pointing at `runtime`, `AWS_LAMBDA_FUNCTION_NAME` ([`FUNCTION_NAME`]),
/// `AWS_LAMBDA_FUNCTION_VERSION` (`$LATEST`), `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (`128`),
/// `AWS_LAMBDA_LOG_GROUP_NAME`, `AWS_LAMBDA_LOG_STREAM_NAME`, `AWS_LAMBDA_INITIALIZATION_TYPE`
/// (`on-demand`), `AWS_REGION` and `AWS_DEFAULT_REGION` (this process's `AWS_REGION`, else
/// `us-east-1`), `AWS_EXECUTION_ENV` and `_HANDLER=bootstrap`; then `extra_env`, which may
/// override any of them. The rest of this process's environment (such as `AWS_ENDPOINT_URL` and
/// credentials for moto) is inherited, and so are stdout and stderr. The child is killed when
/// dropped. Returns it with the instant it was spawned.
pub async fn spawn_function(
    binary: &Path,
    runtime: &RuntimeApi,
    extra_env: &[(String, String)],
) -> anyhow::Result<(tokio::process::Child, Instant)> {
    let region = &runtime.shared.region;
    let mut command = tokio::process::Command::new(binary);
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{FUNCTION_NAME}"),
        )
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("2025/01/01/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
        )
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", region)
        .env("AWS_DEFAULT_REGION", region)
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env("_HANDLER", "bootstrap")
        .envs(extra_env.iter().map(|(name, value)| (name, value)))
        .kill_on_drop(true);
    let spawned_at = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("spawning the function {}", binary.display()))?;
    Ok((child, spawned_at))
}

fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

fn function_arn(region: &str) -> String {
    format!("arn:aws:lambda:{region}:123456789012:function:{FUNCTION_NAME}")
}

fn init_failed((error_type, body): (Option<String>, Value)) -> anyhow::Error {
    anyhow!(
        "the function reported an init error ({}): {body}",
        error_type.as_deref().unwrap_or("no error type")
    )
}

async fn record_first_request(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    shared.first_request_at.get_or_init(Instant::now);
    next.run(request).await
}

async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    let mut shutdown = shared.shutdown.clone();
    loop {
        // Registered before looking, so an event queued in between still wakes this poll.
        let queued = shared.queued.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let next = shared.queue.lock().unwrap().pop_front();
        if let Some(next) = next {
            // Another poll may be waiting for the next event.
            if !shared.queue.lock().unwrap().is_empty() {
                shared.queued.notify_one();
            }
            return invocation_event(&shared, next);
        }
        tokio::select! {
            _ = queued => {}
            _ = shutdown.wait_for(|stopped| *stopped) => {
                return runtime_error(StatusCode::SERVICE_UNAVAILABLE, "Runtime.Shutdown", "the emulator stopped");
            }
        }
    }
}

fn invocation_event(shared: &Shared, next: Queued) -> Response {
    let trace_id = {
        let root = uuid::Uuid::new_v4().simple().to_string();
        let parent = uuid::Uuid::new_v4().simple().to_string();
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!(
            "Root=1-{epoch:08x}-{};Parent={};Sampled=0",
            &root[..24],
            &parent[..16]
        )
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("content-type", "application/json".into());
    set("lambda-runtime-aws-request-id", next.request_id);
    set("lambda-runtime-deadline-ms", next.deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        function_arn(&shared.region),
    );
    set("lambda-runtime-trace-id", trace_id);
    (StatusCode::OK, headers, next.event).into_response()
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    answer(
        &shared,
        &request_id,
        Invocation::Response(json_or_string(&body)),
    )
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let invocation = Invocation::Error {
        error_type: error_type(&headers),
        body: json_or_string(&body),
    };
    answer(&shared, &request_id, invocation)
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared
        .init_error
        .send_replace(Some((error_type(&headers), json_or_string(&body))));
    accepted()
}

async fn unknown_route() -> Response {
    runtime_error(
        StatusCode::NOT_FOUND,
        "InvalidRequest",
        "not a Runtime API route",
    )
}

fn answer(shared: &Shared, request_id: &str, invocation: Invocation) -> Response {
    let waiting = shared.pending.lock().unwrap().remove(request_id);
    match waiting {
        Some(waiting) => {
            // The invoker may have stopped waiting (timed out); the answer is then dropped.
            let _ = waiting.send(invocation);
            accepted()
        }
        None => runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "no invocation is waiting for an answer under this request id",
        ),
    }
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

fn json_or_string(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}
