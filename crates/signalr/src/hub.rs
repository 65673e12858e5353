//! The hub: connection registry, sending, groups and shutdown.
//!
//! Two maps index connections: by secret token (every connection, including negotiated
//! ones that have not connected yet; used by transport requests) and by public id (only
//! connections whose handshake succeeded; used for sending). Sends snapshot the recipients
//! under a read lock, then encode once per protocol and push onto each recipient's queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::RwLock;

use crate::connection::{ConnInner, Connection, Frame};
use crate::groups::Groups;
use crate::handler::HubHandler;
use crate::message::ServerMessage;
use crate::options::HubOptions;

/// A SignalR hub served over axum. Shared as `Arc<Hub>`.
pub struct Hub {
    pub(crate) name: String,
    pub(crate) options: HubOptions,
    pub(crate) handler: Arc<dyn HubHandler>,
    pub(crate) by_token: RwLock<HashMap<String, Arc<ConnInner>>>,
    pub(crate) by_id: RwLock<HashMap<String, Arc<ConnInner>>>,
    pub(crate) groups: Groups,
    pub(crate) shutting_down: AtomicBool,
    sweeper: OnceLock<()>,
    this: Weak<Hub>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("name", &self.name)
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Creates a hub named `name` (the `hub` label of its metrics).
    pub fn new(name: &str, options: HubOptions, handler: Arc<dyn HubHandler>) -> Arc<Hub> {
        Arc::new_cyclic(|this| Hub {
            name: name.to_owned(),
            options,
            handler,
            by_token: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            groups: Groups::default(),
            shutting_down: AtomicBool::new(false),
            sweeper: OnceLock::new(),
            this: this.clone(),
        })
    }

    /// The hub's options.
    pub fn options(&self) -> &HubOptions {
        &self.options
    }

    /// axum routes for `path` (e.g. "/hubs/tasks"): `path` (GET WebSocket/SSE/long poll,
    /// POST send, DELETE) and `path/negotiate`.
    pub fn router(self: &Arc<Self>, path: &str) -> axum::Router {
        crate::transport::router(self.clone(), path)
    }

    /// Queues `msg` for one connection; false when it is unknown or closing.
    pub fn send_to_connection(&self, connection_id: &str, msg: &ServerMessage) -> bool {
        let conn = self.by_id.read().get(connection_id).cloned();
        match conn {
            Some(conn) => self.deliver(std::iter::once(conn), msg) == 1,
            None => false,
        }
    }

    /// Queues `msg` for every member of `group`; returns how many accepted it.
    pub fn send_to_group(&self, group: &str, msg: &ServerMessage) -> usize {
        self.deliver(self.groups.members(group), msg)
    }

    /// Sends once to each connection that is in at least one of the groups (deduplicated).
    pub fn send_to_groups(&self, groups: &[&str], msg: &ServerMessage) -> usize {
        self.deliver(self.groups.members_of_any(groups), msg)
    }

    /// Queues `msg` for every connected client.
    pub fn send_to_all(&self, msg: &ServerMessage) -> usize {
        let all: Vec<_> = self.by_id.read().values().cloned().collect();
        self.deliver(all, msg)
    }

    /// Adds a connection to a group (no effect for an unknown connection).
    pub fn add_to_group(&self, connection_id: &str, group: &str) {
        let conn = self.by_id.read().get(connection_id).cloned();
        if let Some(conn) = conn {
            self.groups.add(&conn, group);
        }
    }

    /// Removes a connection from a group.
    pub fn remove_from_group(&self, connection_id: &str, group: &str) {
        let conn = self.by_id.read().get(connection_id).cloned();
        if let Some(conn) = conn {
            self.groups.remove(&conn, group);
        }
    }

    /// The groups a connection belongs to.
    pub fn groups_of(&self, connection_id: &str) -> Vec<String> {
        self.by_id
            .read()
            .get(connection_id)
            .map(|c| Groups::groups_of(c))
            .unwrap_or_default()
    }

    /// Number of connected clients (handshake done).
    pub fn connection_count(&self) -> usize {
        self.by_id.read().len()
    }

    /// Handles to every connected client.
    pub fn connections(&self) -> Vec<Connection> {
        self.by_id
            .read()
            .values()
            .map(|c| Connection { inner: c.clone() })
            .collect()
    }

    /// A handle to one connected client.
    pub fn connection(&self, connection_id: &str) -> Option<Connection> {
        self.by_id
            .read()
            .get(connection_id)
            .map(|c| Connection { inner: c.clone() })
    }

    /// Sends Close{error, allowReconnect} to the connection and closes it.
    pub fn close_connection(
        &self,
        connection_id: &str,
        error: Option<&str>,
        allow_reconnect: bool,
    ) {
        let conn = self.by_id.read().get(connection_id).cloned();
        if let Some(conn) = conn {
            conn.close(error, allow_reconnect);
        }
    }

    /// Drops the connection's current transport without a Close message, as a network
    /// failure would. A stateful-reconnect WebSocket client then reconnects and resumes;
    /// any other connection ends. Meant for fault-injection tests.
    pub fn abort_transport(&self, connection_id: &str) {
        let Some(conn) = self.by_id.read().get(connection_id).cloned() else {
            return;
        };
        let resumable = {
            let mut st = conn.state.lock();
            if let Some(w) = st.waker.take() {
                w.wake();
            }
            st.generation += 1;
            if st.attached {
                st.attached = false;
                st.detached_at = std::time::Instant::now();
            }
            st.reconnect.is_some()
        };
        if !resumable {
            self.finalize(&conn);
        }
    }

    /// Sends `Close{allowReconnect:true}` to every connection, waits up to 5 s for them to
    /// go, then drops the rest. New connections are refused afterwards.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let all: Vec<_> = self.by_token.read().values().cloned().collect();
        for conn in &all {
            conn.close(None, true);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.by_token.read().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rest: Vec<_> = self.by_token.read().values().cloned().collect();
        for conn in rest {
            self.finalize(&conn);
        }
    }

    /// Encodes once per protocol and queues for each recipient.
    fn deliver(
        &self,
        conns: impl IntoIterator<Item = Arc<ConnInner>>,
        msg: &ServerMessage,
    ) -> usize {
        let mut sent = 0;
        let mut overflowed = 0;
        for conn in conns {
            let Some(kind) = conn.protocol_kind() else {
                continue;
            };
            let frame = Frame {
                bytes: msg.encoded(kind),
                trackable: msg.is_trackable(),
            };
            match conn.enqueue(frame, self.options.outbound_queue) {
                Ok(()) => sent += 1,
                Err(true) => overflowed += 1,
                Err(false) => {}
            }
        }
        self.count_sent(sent, overflowed);
        sent
    }

    pub(crate) fn count_sent(&self, sent: usize, overflowed: usize) {
        if sent > 0 {
            metrics::counter!("signalr_messages_sent_total", "hub" => self.name.clone())
                .increment(sent as u64);
        }
        if overflowed > 0 {
            tracing::warn!(hub = %self.name, count = overflowed, "outbound queue overflow, closing connections");
            metrics::counter!("signalr_queue_overflow_total", "hub" => self.name.clone())
                .increment(overflowed as u64);
        }
    }

    /// Queues a message produced for one connection (completions, acks, pings).
    pub(crate) fn send_direct(&self, conn: &ConnInner, message: &crate::protocol::HubMessage) {
        match conn.enqueue_message(message, self.options.outbound_queue) {
            Ok(()) => self.count_sent(1, 0),
            Err(true) => self.count_sent(0, 1),
            Err(false) => {}
        }
    }

    /// Starts the shared timer on first use (needs a Tokio runtime).
    pub(crate) fn ensure_sweeper(&self) {
        self.sweeper
            .get_or_init(|| crate::sweeper::spawn(self.this.clone()));
    }

    pub(crate) fn insert(&self, conn: Arc<ConnInner>) {
        self.by_token.write().insert(conn.token.clone(), conn);
    }

    pub(crate) fn lookup(&self, token: &str) -> Option<Arc<ConnInner>> {
        self.by_token.read().get(token).cloned()
    }

    /// Makes a connection visible for sending after its handshake; false if it is gone.
    pub(crate) fn register(&self, conn: &Arc<ConnInner>) -> bool {
        let mut by_id = self.by_id.write();
        if conn.finalized.load(Ordering::SeqCst) {
            return false;
        }
        by_id.insert(conn.id.clone(), conn.clone());
        conn.registered.store(true, Ordering::SeqCst);
        drop(by_id);
        self.count_connection(conn);
        true
    }

    /// Counts a connection in `signalr_connections` once it is registered and its transport
    /// is known (called after either happens; a POST-based handshake may precede the first
    /// poll or stream), and remembers the label so that [`Hub::finalize`] decrements the
    /// same one. Counts each connection at most once, and never after it was finalized.
    pub(crate) fn count_connection(&self, conn: &ConnInner) {
        let transport = {
            let mut st = conn.state.lock();
            if st.counted_as.is_some()
                || !conn.registered.load(Ordering::SeqCst)
                || conn.finalized.load(Ordering::SeqCst)
            {
                return;
            }
            let Some(transport) = st.transport else {
                return;
            };
            st.counted_as = Some(transport);
            transport
        };
        metrics::gauge!("signalr_connections", "hub" => self.name.clone(), "transport" => transport.as_str())
            .increment(1.0);
    }

    /// Removes a connection for good (idempotent) and runs `on_disconnected` if
    /// `on_connected` ran.
    pub(crate) fn finalize(&self, conn: &Arc<ConnInner>) {
        if conn.finalized.swap(true, Ordering::SeqCst) {
            return;
        }
        conn.abort();
        self.by_token.write().remove(&conn.token);
        self.by_id.write().remove(&conn.id);
        self.groups.remove_all(conn);
        // `finalized` is set, so `count_connection` can no longer count it: this takes the
        // label it was counted under, if it was.
        let counted = conn.state.lock().counted_as.take();
        if let Some(transport) = counted {
            metrics::gauge!("signalr_connections", "hub" => self.name.clone(), "transport" => transport.as_str())
                .decrement(1.0);
        }
        tracing::debug!(hub = %self.name, connection_id = %conn.id, "connection removed");
        if conn.connected_called.load(Ordering::SeqCst) {
            let handler = self.handler.clone();
            let handle = Connection {
                inner: conn.clone(),
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move { handler.on_disconnected(&handle).await });
                }
                Err(_) => {
                    tracing::warn!(connection_id = %conn.id, "no runtime: on_disconnected skipped")
                }
            }
        }
    }
}
