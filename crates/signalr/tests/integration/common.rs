//! Test hub, server start-up and raw protocol helpers.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use signalr::{
    AuthError, Connection, Hub, HubError, HubHandler, HubOptions, Principal, ServerMessage,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const RS: char = '\u{1e}';

#[derive(Default)]
pub struct TestHub {
    hub: OnceLock<Weak<Hub>>,
    pub disconnected: parking_lot::Mutex<Vec<String>>,
    /// Methods invoked, in order.
    pub invoked: parking_lot::Mutex<Vec<String>>,
}

#[async_trait]
impl HubHandler for TestHub {
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<Principal, AuthError> {
        if parts
            .uri
            .query()
            .is_some_and(|q| q.contains("access_token=deny"))
        {
            return Err(AuthError::unauthorized("go away"));
        }
        // The user is named by `access_token=NAME` or `Authorization: Bearer NAME`;
        // requests without either are "user".
        let from_query = parts.uri.query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("access_token="))
                .map(str::to_owned)
        });
        let from_header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let name = from_query
            .or(from_header)
            .unwrap_or_else(|| "user".to_owned());
        Ok(Arc::new(name))
    }

    fn principal_id(&self, principal: &Principal) -> Option<String> {
        principal.downcast_ref::<String>().cloned()
    }

    /// The user "refused" passes `authenticate` but is refused once connected.
    async fn on_connected(&self, conn: &Connection) {
        if conn
            .principal()
            .downcast_ref::<String>()
            .map(String::as_str)
            == Some("refused")
        {
            conn.close(Some("You were refused."), false);
        }
    }

    async fn on_invocation(
        &self,
        conn: &Connection,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, HubError> {
        self.invoked.lock().push(method.to_owned());
        let hub = self
            .hub
            .get()
            .and_then(Weak::upgrade)
            .ok_or(HubError::Internal)?;
        let s = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or("").to_owned();
        match method.to_ascii_lowercase().as_str() {
            "echo" => Ok(args.first().cloned().unwrap_or(Value::Null)),
            "throw" => Err(HubError::Client(s(0))),
            "crash" => Err(HubError::Internal),
            "panic" => panic!("handler panic"),
            "joingroup" => {
                hub.add_to_group(conn.id(), &s(0));
                Ok(Value::Null)
            }
            "sendtogroup" => Ok(json!(hub.send_to_group(
                &s(0),
                &ServerMessage::invocation(&s(1), vec![args.get(2).cloned().unwrap_or_default()])
            ))),
            "broadcast" => Ok(json!(hub.send_to_all(&ServerMessage::invocation(
                &s(0),
                vec![args.get(1).cloned().unwrap_or_default()]
            )))),
            "whoami" => {
                let principal = conn.principal().downcast_ref::<String>().cloned();
                Ok(
                    json!({"id": conn.id(), "transport": conn.transport().as_str(),
                          "protocol": conn.protocol(), "principal": principal}),
                )
            }
            "sleep" => {
                tokio::time::sleep(Duration::from_millis(args[0].as_u64().unwrap_or(0))).await;
                Ok(Value::Null)
            }
            _ => Err(HubError::unknown_method(method)),
        }
    }

    async fn on_disconnected(&self, conn: &Connection) {
        self.disconnected.lock().push(conn.id().to_owned());
    }
}

pub struct Server {
    pub hub: Arc<Hub>,
    pub handler: Arc<TestHub>,
    pub port: u16,
}

impl Server {
    pub fn http(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path_and_query)
    }
    pub fn ws(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/hubs/test{}", self.port, query)
    }
}

pub async fn start(options: HubOptions) -> Server {
    start_named("test", options).await
}

/// Like [`start`], for a hub named `name` (the `hub` label of its metrics); still served
/// at `/hubs/test`.
pub async fn start_named(name: &str, options: HubOptions) -> Server {
    let handler = Arc::new(TestHub::default());
    let hub = Hub::new(name, options, handler.clone());
    let _ = handler.hub.set(Arc::downgrade(&hub));
    let app = axum::Router::new().merge(hub.router("/hubs/test"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { hub, handler, port }
}

pub async fn negotiate(server: &Server, query: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(server.http(&format!("/hubs/test/negotiate{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pending: Vec<Value>,
    pub binary_frames: Vec<Vec<u8>>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client::from_ws(ws)
    }

    pub fn from_ws(ws: Ws) -> Client {
        Client {
            ws,
            pending: Vec::new(),
            binary_frames: Vec::new(),
        }
    }

    /// Connects and completes a JSON handshake of `version`.
    pub async fn json(url: &str, version: u32) -> Client {
        let mut c = Client::connect(url).await;
        c.send(&format!(
            "{{\"protocol\":\"json\",\"version\":{version}}}{RS}"
        ))
        .await;
        assert_eq!(c.recv().await, json!({}));
        c
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send(&format!("{v}{RS}")).await;
    }

    pub async fn invoke(&mut self, id: &str, target: &str, args: Value) -> Value {
        self.send_json(json!({"type":1,"invocationId":id,"target":target,"arguments":args}))
            .await;
        let mut skipped = Vec::new();
        loop {
            let m = self.recv().await;
            if m["type"] == 3 && m["invocationId"] == id {
                skipped.retain(|m: &Value| m["type"] != 6);
                self.pending.splice(0..0, skipped);
                return m;
            }
            skipped.push(m);
        }
    }

    /// Next JSON message, skipping nothing; panics after 5 s.
    pub async fn recv(&mut self) -> Value {
        self.try_recv(Duration::from_secs(5))
            .await
            .expect("message expected")
    }

    /// Next non-ping JSON message.
    pub async fn recv_no_ping(&mut self) -> Value {
        loop {
            let m = self.recv().await;
            if m["type"] != 6 {
                return m;
            }
        }
    }

    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        loop {
            if !self.pending.is_empty() {
                return Some(self.pending.remove(0));
            }
            let frame = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match frame.ok()? {
                Message::Text(t) => {
                    for part in t.as_str().split(RS).filter(|p| !p.is_empty()) {
                        self.pending.push(serde_json::from_str(part).unwrap());
                    }
                }
                Message::Binary(b) => self.binary_frames.push(b.to_vec()),
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// True when the server closes the socket within `wait` (messages before are skipped).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..250 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}
