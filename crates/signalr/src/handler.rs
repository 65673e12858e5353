//! The application side of a hub: authentication, lifecycle callbacks and invocations.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;

use crate::connection::Connection;

/// What the application learned about the caller when it authenticated the request.
pub type Principal = Arc<dyn Any + Send + Sync>;

/// Rejection of a request by [`HubHandler::authenticate`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct AuthError {
    /// HTTP status of the response, usually 401 or 403.
    pub status: StatusCode,
    /// Plain-text body of the response.
    pub message: String,
}

impl AuthError {
    /// A 401 Unauthorized rejection with `message` as body.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }
}

/// Failure of a hub method invocation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    /// An error meant for the client (like the official `HubException`): its text is sent verbatim.
    #[error("{0}")]
    Client(String),
    /// An unexpected failure: the client receives the official generic text
    /// "An unexpected error occurred invoking 'X' on the server."
    #[error("internal error")]
    Internal,
}

impl HubError {
    /// The official text for arguments that do not bind to the method's parameters
    /// ("Failed to invoke 'X' due to an error on the server.").
    pub fn invalid_arguments(method: &str) -> Self {
        HubError::Client(format!(
            "Failed to invoke '{method}' due to an error on the server."
        ))
    }

    /// The official text for an unknown method ("Unknown hub method 'X'").
    pub fn unknown_method(method: &str) -> Self {
        HubError::Client(format!("Unknown hub method '{method}'"))
    }
}

/// The application behind a hub.
#[async_trait]
pub trait HubHandler: Send + Sync + 'static {
    /// Called for negotiate and for every request of a transport (WebSocket upgrades including
    /// `skipNegotiation` and reconnects, SSE streams, polls, sends, deletes).
    /// `Err` answers the request with the error's status and message as body.
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<Principal, AuthError>;

    /// A stable identity of an authenticated principal (a user id, an API key id…) that
    /// binds each connection to whoever created it.
    ///
    /// The identity of the request that creates a connection (negotiate, or a WebSocket
    /// with `skipNegotiation`) is kept with the connection. Every later transport request
    /// for that connection (long polls, POST sends, DELETE, SSE streams, WebSocket connects
    /// and stateful reconnects) must authenticate to an *equal* identity; otherwise it is
    /// answered `403 Forbidden` and does not touch the connection. `None` is an identity
    /// too: it only matches `None`.
    ///
    /// The default returns `None` for every principal, which turns the check off: anyone
    /// who passes [`authenticate`](Self::authenticate) and holds a connection token can
    /// then read, send on or close that connection. Implement this whenever
    /// `authenticate` tells callers apart.
    fn principal_id(&self, principal: &Principal) -> Option<String> {
        let _ = principal;
        None
    }

    /// After a successful handshake, before the connection's first invocation is dispatched.
    ///
    /// The connection is already visible to [`crate::Hub`] senders. To refuse it (say its
    /// credentials were revoked after [`authenticate`](Self::authenticate)), call
    /// [`Connection::close`]: the client gets the Close message, none of its messages is
    /// dispatched, and [`on_disconnected`](Self::on_disconnected) follows as usual.
    async fn on_connected(&self, conn: &Connection) {
        let _ = conn;
    }

    /// A client invocation. Method names arrive as the client sent them: compare them
    /// case-insensitively (as the official server) e.g. with `eq_ignore_ascii_case`.
    /// `args` are the invocation arguments (MessagePack arguments are converted).
    /// `Ok(Value::Null)` completes without result, `Ok(v)` with result `v`,
    /// `Err(HubError::Client(msg))` with error `msg`, `Err(HubError::Internal)` with the
    /// official generic text.
    async fn on_invocation(
        &self,
        conn: &Connection,
        method: &str,
        args: Vec<serde_json::Value>,
    ) -> Result<serde_json::Value, HubError>;

    /// After the connection is gone (called once for every connection that saw `on_connected`).
    async fn on_disconnected(&self, conn: &Connection) {
        let _ = conn;
    }
}
