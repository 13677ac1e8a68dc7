//! A refused request still gets its answer.
//!
//! A handler that refuses a body (too large, not signed in) answers before reading all of it.
//! Were the connection then closed with the rest unread, a client still sending would see a
//! broken pipe instead of the 413 or 401 with its code. So what a handler left unread is read and
//! dropped before the answer goes out, up to a bound past which the connection closes after all.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::EXPECT;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// The most of a refused body read to deliver the refusal: far past the 5 MiB poster default.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// How long a refused body may take to arrive before the connection is closed on it.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Hands the handler a body this layer can still read after the handler is done with it.
pub async fn drain_unread_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // A client that asked to be told before sending sends nothing until the body is first read
    // (hyper answers `100 Continue` then), so a refusal before that needs no draining.
    let waits_to_send = parts
        .headers
        .get(EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let shared = SharedBody(Arc::new(Mutex::new(Unread {
        body,
        polled: false,
    })));
    let response = next
        .run(Request::from_parts(parts, Body::new(shared.clone())))
        .await;
    let Unread { body, polled } = std::mem::take(&mut *shared.lock());
    if !body.is_end_stream() && (polled || !waits_to_send) {
        let _ = tokio::time::timeout(DRAIN_TIME, drain(body)).await;
    }
    response
}

async fn drain(mut body: Body) {
    let mut read = 0;
    while read < DRAIN_BYTES {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
            Some(Err(_)) | None => return,
        }
    }
}

#[derive(Default)]
struct Unread {
    body: Body,
    polled: bool,
}

#[derive(Clone)]
struct SharedBody(Arc<Mutex<Unread>>);

impl SharedBody {
    fn lock(&self) -> MutexGuard<'_, Unread> {
        // A panic while polling the body leaves nothing half-changed in it worth refusing.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut unread = self.lock();
        unread.polled = true;
        Pin::new(&mut unread.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.lock().body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.lock().body.size_hint()
    }
}
