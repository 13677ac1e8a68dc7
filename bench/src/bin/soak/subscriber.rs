//! A live `movieChanged` subscription over /graphql/ws (graphql-transport-ws) that counts what
//! it receives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub struct Subscriber {
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects, subscribes, and counts `next` messages in the background until dropped.
    pub async fn start(base_url: &str) -> Result<Self> {
        let url = format!("{}/graphql/ws", base_url.replace("http://", "ws://"));
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("connecting to /graphql/ws")?;
        let send = |message: Value| Message::Text(message.to_string().into());
        socket
            .send(send(json!({ "type": "connection_init", "payload": {} })))
            .await?;
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.as_str().contains("connection_ack") => {}
            other => bail!("no connection_ack: {other:?}"),
        }
        socket
            .send(send(json!({
                "id": "soak",
                "type": "subscribe",
                "payload": { "query": "subscription { movieChanged { kind position movie { id version } } }" },
            })))
            .await?;
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                match value["type"].as_str() {
                    Some("next") if value["payload"].get("errors").is_none() => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    // A pong that cannot be sent means the connection is gone.
                    Some("ping") if socket.send(send(json!({ "type": "pong" }))).await.is_err() => {
                        return;
                    }
                    _ => {}
                }
            }
        });
        Ok(Self { received, task })
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
