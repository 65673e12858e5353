//! An ASP.NET Core SignalR server for axum.
//!
//! Official clients (`@microsoft/signalr`, the .NET client, pysignalr…) connect unchanged:
//! negotiate (versions 0 and 1), WebSockets, Server-Sent Events and long polling, the JSON
//! and MessagePack hub protocols (versions 1 and 2), keep-alive and timeouts, and stateful
//! reconnect over WebSockets. The crate knows nothing about the application: a
//! [`HubHandler`] authenticates requests and handles invocations, and the [`Hub`] sends
//! [`ServerMessage`]s to connections, groups or everyone.
//!
//! ```no_run
//! use std::sync::Arc;
//! use signalr::{AuthError, Connection, Hub, HubError, HubHandler, HubOptions, Principal, ServerMessage};
//!
//! struct Chat;
//!
//! #[async_trait::async_trait]
//! impl HubHandler for Chat {
//!     async fn authenticate(&self, _parts: &http::request::Parts) -> Result<Principal, AuthError> {
//!         Ok(Arc::new(()))
//!     }
//!     async fn on_invocation(
//!         &self,
//!         _conn: &Connection,
//!         method: &str,
//!         args: Vec<serde_json::Value>,
//!     ) -> Result<serde_json::Value, HubError> {
//!         if method.eq_ignore_ascii_case("echo") {
//!             Ok(args.into_iter().next().unwrap_or_default())
//!         } else {
//!             Err(HubError::unknown_method(method))
//!         }
//!     }
//! }
//!
//! # async fn run() {
//! let hub = Hub::new("chat", HubOptions::default(), Arc::new(Chat));
//! let app = axum::Router::new().merge(hub.router("/hubs/chat"));
//! hub.send_to_all(&ServerMessage::invocation("news", vec!["hello".into()]));
//! # let _ = app;
//! # }
//! ```

#![warn(missing_docs)]

mod connection;
mod dispatch;
mod groups;
mod handler;
mod hub;
mod message;
mod negotiate;
mod options;
pub mod protocol;
mod reconnect;
mod sweeper;
mod transport;

pub use connection::{Connection, TransportKind};
pub use handler::{AuthError, HubError, HubHandler, Principal};
pub use hub::Hub;
pub use message::ServerMessage;
pub use options::{HubOptions, Transports};
pub use protocol::{JsonProtocol, MessagePackProtocol, parse_handshake};
pub use reconnect::ReconnectBuffer;
