//! A graphql-transport-ws client for tests: the protocol `/graphql/ws` speaks.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::TestApp;

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for the server's next message.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

pub struct Socket(Stream);

impl Socket {
    /// Opens `/graphql/ws` without `connection_init`.
    pub async fn open(app: &TestApp) -> Self {
        Self::open_with_headers(app, &[]).await.unwrap()
    }

    /// Opens `/graphql/ws` with `headers` added to the handshake (a cookie, an Origin); the
    /// error holds the server's answer when it refuses the upgrade.
    pub async fn open_with_headers(
        app: &TestApp,
        headers: &[(&'static str, String)],
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let url = app.url("/graphql/ws").replace("http://", "ws://");
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("a header value"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Socket(stream))
    }

    /// Opens `/graphql/ws` and completes `connection_init` with `init` as its payload.
    pub async fn connect(app: &TestApp, init: Value) -> Self {
        let mut socket = Self::open(app).await;
        socket
            .send(json!({ "type": "connection_init", "payload": init }))
            .await;
        let ack = socket.next().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        socket
    }

    pub async fn send(&mut self, message: Value) {
        self.send_raw(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// Sends any frame; the server may already have closed the socket.
    pub async fn send_raw(
        &mut self,
        message: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.0.send(message).await
    }

    pub async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } }))
            .await;
    }

    /// The next protocol message (pings answered).
    pub async fn next(&mut self) -> Value {
        loop {
            let value = self.next_within(ANSWER_WITHIN).await;
            if value["type"] == "ping" {
                self.send(json!({ "type": "pong" })).await;
                continue;
            }
            return value;
        }
    }

    /// The next protocol message, pings included, within `bound`.
    pub async fn next_within(&mut self, bound: Duration) -> Value {
        loop {
            let message = tokio::time::timeout(bound, self.0.next())
                .await
                .unwrap_or_else(|_| panic!("a message within {bound:?}"))
                .expect("the socket is open")
                .unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    /// Reads until the server closes the socket; its close frame, if it sent one. Protocol
    /// messages before the close are returned too, so a test can say none leaked data.
    pub async fn closed(&mut self) -> (Option<CloseFrame>, Vec<Value>) {
        let mut messages = Vec::new();
        loop {
            let next = tokio::time::timeout(ANSWER_WITHIN, self.0.next())
                .await
                .expect("the server closes the socket within 15 s");
            match next {
                Some(Ok(Message::Close(frame))) => return (frame, messages),
                Some(Ok(Message::Text(text))) => {
                    messages.push(serde_json::from_str(text.as_str()).unwrap_or(Value::Null))
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return (None, messages),
            }
        }
    }
}
