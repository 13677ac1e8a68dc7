//! The care of each GraphQL WebSocket, around the engine. It bounds the subscriptions one
//! socket holds at once: the engine starts a stream for every `subscribe` it reads, so without a
//! bound one socket could hold any number of them. The socket's frames pass through here on
//! their way in and out: a `subscribe` adds its id, a `complete` from either side removes it,
//! and the subscribe past the bound closes the socket with 4429 and a reason. And it pings the
//! client (graphql-transport-ws): the engine closes a socket the client has not spoken on for a
//! while, and a client that only listens answers pings, so only a dead one is closed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::channel::mpsc;
use futures::stream::{SplitStream, Stream};
use futures::{future, Sink, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::warn;

/// Subscriptions one socket may hold: far past what a page needs, short of a flood.
pub const MAX_SUBSCRIPTIONS_PER_SOCKET: usize = 100;

/// The close code graphql-transport-ws uses for "too many".
const TOO_MANY: u16 = 4429;

/// Frames buffered on their way out before the engine waits for the client.
const OUTBOUND_BUFFER: usize = 16;

/// The server's ping in graphql-transport-ws.
const PING: &str = r#"{"type":"ping"}"#;

/// The fields of a protocol message that say what it does to a subscription.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

fn envelope(message: &Message) -> Option<Envelope> {
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        Message::Binary(bytes) => serde_json::from_slice(bytes).ok(),
        _ => None,
    }
}

type Active = Arc<Mutex<HashSet<String>>>;

/// Splits `socket` into the engine's sink and stream, with the bound in between, plus the task
/// that writes the engine's frames, and a ping every `ping_every` if given, to the client (run
/// it beside the engine).
pub fn guarded(
    socket: WebSocket,
    ping_every: Option<Duration>,
) -> (
    impl Sink<Message> + Unpin,
    impl Stream<Item = Result<Message, axum::Error>>,
    impl std::future::Future<Output = ()>,
) {
    let (mut client, from_client) = socket.split();
    let (to_client, mut outbound) = mpsc::channel::<Message>(OUTBOUND_BUFFER);
    let active: Active = Arc::default();
    let sink = {
        let active = active.clone();
        to_client.clone().with(move |message: Message| {
            // The engine ends a subscription with `complete` (its stream finished or failed).
            if let Some(Envelope { kind, id: Some(id) }) = envelope(&message) {
                if kind == "complete" {
                    active.lock().expect("not poisoned").remove(&id);
                }
            }
            future::ready(Ok::<_, mpsc::SendError>(message))
        })
    };
    let stream = inbound(from_client, active, to_client);
    let forward = async move {
        let mut pings =
            ping_every.map(|every| tokio::time::interval_at(Instant::now() + every, every));
        loop {
            let message = match pings.as_mut() {
                Some(pings) => tokio::select! {
                    message = outbound.next() => message,
                    _ = pings.tick() => Some(Message::Text(PING.into())),
                },
                None => outbound.next().await,
            };
            let Some(message) = message else { break };
            if client.send(message).await.is_err() {
                break;
            }
        }
    };
    (sink, stream, forward)
}

/// The client's frames, counted; ends after closing the socket at the subscribe too many.
fn inbound(
    from_client: SplitStream<WebSocket>,
    active: Active,
    mut to_client: mpsc::Sender<Message>,
) -> impl Stream<Item = Result<Message, axum::Error>> {
    from_client.take_while(move |frame| {
        let Ok(message) = frame else {
            return future::ready(true);
        };
        let Some(Envelope { kind, id: Some(id) }) = envelope(message) else {
            return future::ready(true);
        };
        let mut active = active.lock().expect("not poisoned");
        match kind.as_str() {
            "subscribe" | "start" => {
                active.insert(id);
                if active.len() > MAX_SUBSCRIPTIONS_PER_SOCKET {
                    warn!(
                        limit = MAX_SUBSCRIPTIONS_PER_SOCKET,
                        "a WebSocket asked for too many subscriptions; closing it"
                    );
                    let reason =
                        format!("at most {MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions per socket");
                    let _ = to_client.try_send(Message::Close(Some(CloseFrame {
                        code: TOO_MANY,
                        reason: reason.into(),
                    })));
                    return future::ready(false);
                }
            }
            "complete" | "stop" => {
                active.remove(&id);
            }
            _ => {}
        }
        future::ready(true)
    })
}
