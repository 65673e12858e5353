//! A small hub for trying clients against, and the server of the JavaScript compatibility
//! tests. Prints `PORT=<port>` once listening.
//!
//! Usage: `echo_server [--port N]` (0 or absent: any free port). SIGTERM or Ctrl-C shut the
//! hub down gracefully (clients get `Close{allowReconnect:true}`).
//!
//! Hub methods (names are case-insensitive):
//! - `Echo(x)` → `x`
//! - `Add(a, b)` → `a + b`
//! - `Throw(msg)` → error `msg` (like a `HubException`); `Crash()` → the generic error
//! - `JoinGroup(g)`, `LeaveGroup(g)`, `SendToGroup(g, target, payload)` → recipients count
//! - `Broadcast(target, payload)` → every connection receives `target(payload)`
//! - `SendToMe(target, payload)` → the caller receives `target(payload)`
//! - `StartSequence(count, intervalMs)` → the caller receives `seq(0..count)` over time
//! - `WhoAmI()` → `{connectionId, transport, protocol}`
//! - `AbortTransport()` → drops the caller's socket as a network failure would

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use signalr::{
    AuthError, Connection, Hub, HubError, HubHandler, HubOptions, Principal, ServerMessage,
};

#[derive(Default)]
struct Echo {
    hub: OnceLock<Weak<Hub>>,
}

impl Echo {
    fn hub(&self) -> Result<Arc<Hub>, HubError> {
        self.hub
            .get()
            .and_then(Weak::upgrade)
            .ok_or(HubError::Internal)
    }
}

fn arg_str(args: &[Value], i: usize) -> String {
    match args.get(i) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

#[async_trait]
impl HubHandler for Echo {
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<Principal, AuthError> {
        // Browsers send the token as `access_token` in the query for WebSockets and SSE,
        // other requests (and Node's WebSocket) send an `Authorization: Bearer` header.
        let in_query = parts
            .uri
            .query()
            .is_some_and(|q| q.contains("access_token=deny"));
        let in_header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == b"Bearer deny");
        let denied = in_query || in_header;
        if denied {
            return Err(AuthError::unauthorized("denied"));
        }
        Ok(Arc::new(()))
    }

    async fn on_invocation(
        &self,
        conn: &Connection,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, HubError> {
        let hub = self.hub()?;
        match method.to_ascii_lowercase().as_str() {
            "echo" => Ok(args.into_iter().next().unwrap_or(Value::Null)),
            "add" => {
                let a = args.first().and_then(Value::as_f64);
                let b = args.get(1).and_then(Value::as_f64);
                match (a, b) {
                    (Some(a), Some(b)) => Ok(json!(a + b)),
                    _ => Err(HubError::invalid_arguments(method)),
                }
            }
            "throw" => Err(HubError::Client(arg_str(&args, 0))),
            "crash" => Err(HubError::Internal),
            "joingroup" => {
                hub.add_to_group(conn.id(), &arg_str(&args, 0));
                Ok(Value::Null)
            }
            "leavegroup" => {
                hub.remove_from_group(conn.id(), &arg_str(&args, 0));
                Ok(Value::Null)
            }
            "sendtogroup" => {
                let msg = ServerMessage::invocation(
                    &arg_str(&args, 1),
                    vec![args.get(2).cloned().unwrap_or(Value::Null)],
                );
                Ok(json!(hub.send_to_group(&arg_str(&args, 0), &msg)))
            }
            "broadcast" => {
                let msg = ServerMessage::invocation(
                    &arg_str(&args, 0),
                    vec![args.get(1).cloned().unwrap_or(Value::Null)],
                );
                Ok(json!(hub.send_to_all(&msg)))
            }
            "sendtome" => {
                let msg = ServerMessage::invocation(
                    &arg_str(&args, 0),
                    vec![args.get(1).cloned().unwrap_or(Value::Null)],
                );
                Ok(json!(hub.send_to_connection(conn.id(), &msg)))
            }
            "startsequence" => {
                let count = args.first().and_then(Value::as_u64).unwrap_or(10);
                let interval = args.get(1).and_then(Value::as_u64).unwrap_or(10);
                let id = conn.id().to_owned();
                let weak = Arc::downgrade(&hub);
                tokio::spawn(async move {
                    for i in 0..count {
                        let Some(hub) = weak.upgrade() else { return };
                        hub.send_to_connection(
                            &id,
                            &ServerMessage::invocation("seq", vec![json!(i)]),
                        );
                        drop(hub);
                        tokio::time::sleep(Duration::from_millis(interval)).await;
                    }
                });
                Ok(Value::Null)
            }
            "whoami" => Ok(json!({
                "connectionId": conn.id(),
                "transport": conn.transport().as_str(),
                "protocol": conn.protocol(),
            })),
            "aborttransport" => {
                let id = conn.id().to_owned();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    hub.abort_transport(&id);
                });
                Ok(Value::Null)
            }
            _ => Err(HubError::unknown_method(method)),
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--port" {
            port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        }
    }
    let handler = Arc::new(Echo::default());
    let hub = Hub::new("echo", HubOptions::default(), handler.clone());
    let _ = handler.hub.set(Arc::downgrade(&hub));
    let app = axum::Router::new().merge(hub.router("/hubs/echo"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    println!("PORT={port}");
    let shutdown_hub = hub.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            shutdown_hub.shutdown().await;
        })
        .await
        .expect("serve");
}
