//! A hub connection whose key stops being valid is closed and hears nothing more, even
//! when the key changed between the connection's authentication and its handshake.

mod common;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use common::TestServer;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const RS: char = '\u{1e}';

/// A raw SignalR client over a WebSocket (JSON protocol).
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pending: Vec<Value>,
}

impl Client {
    /// Connects (authenticated by `access_token`) without sending the handshake.
    async fn connect(server: &TestServer, hub: &str, key: &str) -> Client {
        let url = format!(
            "{}{hub}?access_token={key}",
            server.base.replacen("http", "ws", 1)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Client {
            ws,
            pending: Vec::new(),
        }
    }

    async fn handshake(&mut self) {
        let text = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next message other than a Ping; `None` when the socket closed or nothing came
    /// within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if !self.pending.is_empty() {
                let message = self.pending.remove(0);
                if message["type"] == 6 {
                    continue;
                }
                return Some(message);
            }
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match frame.ok()? {
                Message::Text(text) => {
                    for part in text.as_str().split(RS).filter(|p| !p.is_empty()) {
                        self.pending.push(serde_json::from_str(part).expect("json"));
                    }
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    async fn expect(&mut self, what: &str) -> Value {
        match self.next(Duration::from_secs(5)).await {
            Some(message) => message,
            None => panic!("expected {what}, got nothing"),
        }
    }

    /// The server closes the socket (after nothing but Pings) within a few seconds.
    async fn expect_socket_closed(&mut self) {
        if let Some(message) = self.next(Duration::from_secs(5)).await {
            panic!("expected the socket to close, got {message}");
        }
    }
}

/// A Close message that does not allow reconnecting, whose error mentions `word`.
fn assert_final_close(message: &Value, word: &str) {
    assert_eq!(message["type"], 7, "expected Close, got {message}");
    assert_ne!(message["allowReconnect"], true, "{message}");
    let error = message["error"].as_str().unwrap_or_default();
    assert!(error.contains(word), "{message}");
}

async fn disable(server: &TestServer, key_id: &str) {
    server.disable_key(key_id).await;
}

#[tokio::test]
async fn a_connection_handshaking_after_its_key_was_disabled_is_closed() {
    let server = TestServer::start_with(|raw| raw.usage_metrics_interval_ms = 100).await;
    let (key, key_id, _) = server.create_key(json!({"name": "revoked"})).await;

    // One connection of the key has handshaken; two others are still in the handshake
    // window (authenticated, nothing sent yet).
    let mut connected = Client::connect(&server, "/hubs/tasks", &key).await;
    connected.handshake().await;
    assert_eq!(connected.expect("handshake response").await, json!({}));
    let mut tasks = Client::connect(&server, "/hubs/tasks", &key).await;
    let mut navigation = Client::connect(&server, "/hubs/navigation-state", &key).await;

    disable(&server, &key_id).await;
    // The connected one is told and closed: the disable sweep has run.
    let told = connected.expect("KeyDisabled").await;
    assert_eq!(told["target"], "KeyDisabled", "{told}");
    assert_final_close(&connected.expect("Close").await, "disabled");
    connected.expect_socket_closed().await;

    // The late handshakes are answered, then the connections are closed at once: no task
    // events, no UsageMetricsUpdated.
    for client in [&mut tasks, &mut navigation] {
        client.handshake().await;
        assert_eq!(client.expect("handshake response").await, json!({}));
        assert_final_close(&client.expect("Close").await, "disabled");
        client.expect_socket_closed().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn usage_metrics_stop_once_a_key_has_expired() {
    let server = TestServer::start_with(|raw| raw.usage_metrics_interval_ms = 100).await;
    let expires: DateTime<Utc> = (Utc::now() + chrono::Duration::seconds(3)).trunc_subsecs(0);
    let body = json!({"name": "short-lived", "expires_at": expires.to_rfc3339()});
    let (key, _, _) = server.create_key(body).await;
    let mut navigation = Client::connect(&server, "/hubs/navigation-state", &key).await;
    navigation.handshake().await;
    assert_eq!(navigation.expect("handshake response").await, json!({}));

    // Figures are sent while the key is valid, never after it expired; then the
    // connection is closed for good.
    let mut updates = 0;
    let close = loop {
        let message = navigation.expect("UsageMetricsUpdated or Close").await;
        if message["type"] == 7 {
            break message;
        }
        assert_eq!(message["target"], "UsageMetricsUpdated", "{message}");
        let sent = message["arguments"][0]["metrics"]["timestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .expect("timestamp");
        assert!(
            sent < expires,
            "UsageMetricsUpdated sent at {sent} to a connection whose key expired at {expires}"
        );
        updates += 1;
    };
    assert!(
        updates > 0,
        "no UsageMetricsUpdated while the key was valid"
    );
    assert_final_close(&close, "");
    navigation.expect_socket_closed().await;
    server.stop().await;
}
