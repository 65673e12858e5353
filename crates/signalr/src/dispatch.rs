//! Turns received bytes into handshake and hub-message handling, for every transport.
//!
//! Messages of one connection are handled one at a time, in order (as the official server
//! does by default): an invocation's handler is awaited before the next message is parsed.
//! Replies (completions, Close) go through the connection's queue like any other message.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures::FutureExt;
use serde_json::Value;

use crate::connection::{ConnInner, Connection, TransportKind};
use crate::handler::HubError;
use crate::hub::Hub;
use crate::protocol::{CompletionResult, HubMessage, parse_handshake, write_handshake_response};
use crate::reconnect::ReconnectBuffer;

/// Whether the transport should keep reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Handles every complete message in `buf`, leaving a partial one in place.
pub(crate) async fn process(
    hub: Arc<Hub>,
    conn: Arc<ConnInner>,
    mut buf: BytesMut,
) -> (BytesMut, Flow) {
    let flow = process_inner(&hub, &conn, &mut buf).await;
    (buf, flow)
}

async fn process_inner(hub: &Arc<Hub>, conn: &Arc<ConnInner>, buf: &mut BytesMut) -> Flow {
    let max = hub.options.max_message_size;
    let handshake_done = conn.state.lock().handshake_done;
    if !handshake_done {
        match handshake(hub, conn, buf).await {
            Flow::Continue if conn.state.lock().handshake_done => {}
            other => return other,
        }
    }
    let Some(kind) = conn.protocol_kind() else {
        return Flow::Stop;
    };
    loop {
        match kind.protocol().parse_message(buf, max) {
            Ok(None) => return Flow::Continue,
            Ok(Some((message, used))) => {
                buf.advance(used);
                if handle_message(hub, conn, message).await == Flow::Stop {
                    return Flow::Stop;
                }
            }
            Err(e) => {
                tracing::debug!(connection_id = %conn.id, error = %e, "invalid hub message, closing");
                let text = close_error_text(hub, &e.to_string());
                conn.close(Some(&text), false);
                return Flow::Stop;
            }
        }
    }
}

fn close_error_text(hub: &Hub, detail: &str) -> String {
    if hub.options.detailed_errors {
        format!("Connection closed with an error. InvalidDataException: {detail}")
    } else {
        "Connection closed with an error.".to_owned()
    }
}

async fn handshake(hub: &Arc<Hub>, conn: &Arc<ConnInner>, buf: &mut BytesMut) -> Flow {
    let transport = conn.transport();
    let binary_ok = transport != Some(TransportKind::ServerSentEvents);
    let parsed = parse_handshake(buf, hub.options.max_message_size).and_then(|r| match r {
        None => Ok(None),
        Some((req, used)) => req.resolve(binary_ok).map(|k| Some((req, k, used))),
    });
    let (request, kind, used) = match parsed {
        Ok(None) => return Flow::Continue,
        Ok(Some(v)) => v,
        Err(e) => {
            tracing::debug!(connection_id = %conn.id, error = %e, "handshake failed");
            let text = e.client_message(hub.options.detailed_errors);
            conn.close_with(Some(Bytes::from(write_handshake_response(Some(&text)))));
            return Flow::Stop;
        }
    };
    buf.advance(used);
    let _ = conn.protocol.set((kind, request.version));
    let stateful = conn.stateful_requested
        && hub.options.stateful_reconnect
        && request.version >= 2
        && transport == Some(TransportKind::WebSockets);
    {
        let mut st = conn.state.lock();
        st.handshake_done = true;
        st.last_recv = Instant::now();
        if stateful {
            st.reconnect = Some(Box::new(ReconnectBuffer::new(
                hub.options.stateful_reconnect_buffer,
            )));
        }
        st.queue.push_back(crate::connection::Frame {
            bytes: Bytes::from(write_handshake_response(None)),
            trackable: false,
        });
    }
    conn.wake();
    if !hub.register(conn) {
        return Flow::Stop;
    }
    tracing::debug!(hub = %hub.name, connection_id = %conn.id, protocol = kind.name(), version = request.version, transport = transport.map_or("pending", TransportKind::as_str), stateful, "connected");
    conn.connected_called.store(true, Ordering::SeqCst);
    let handle = Connection {
        inner: conn.clone(),
    };
    if AssertUnwindSafe(hub.handler.on_connected(&handle))
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!(connection_id = %conn.id, "on_connected panicked, closing");
        conn.close(Some("Connection closed with an error."), false);
        return Flow::Stop;
    }
    if !conn.is_open() {
        // The handler refused the connection (`Connection::close`): dispatch nothing more.
        return Flow::Stop;
    }
    Flow::Continue
}

async fn handle_message(hub: &Arc<Hub>, conn: &Arc<ConnInner>, message: HubMessage) -> Flow {
    {
        let mut st = conn.state.lock();
        if let Some(rb) = st.reconnect.as_mut()
            && !rb.should_process(&message)
        {
            return Flow::Continue;
        }
    }
    match message {
        HubMessage::Invocation {
            invocation_id,
            target,
            arguments,
            ..
        } => {
            invoke(hub, conn, invocation_id, target, arguments).await;
        }
        HubMessage::StreamInvocation {
            invocation_id,
            target,
            ..
        } => {
            // LIMITATION: server-to-client streaming methods are not supported; a handler
            // API producing a stream would lift this.
            let error = format!(
                "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
            );
            hub.send_direct(
                conn,
                &HubMessage::completion(&invocation_id, CompletionResult::Error(error)),
            );
        }
        HubMessage::StreamItem { .. } | HubMessage::Completion { .. } => {
            // LIMITATION: client-to-server (upload) streams are not supported; their items
            // are ignored, as the official server ignores items for unknown streams.
            tracing::debug!(connection_id = %conn.id, "ignoring stream message for an unknown stream");
        }
        HubMessage::CancelInvocation { .. } | HubMessage::Ping => {}
        HubMessage::Close { .. } => {
            conn.close_with(None);
            return Flow::Stop;
        }
        HubMessage::Ack { sequence_id } => {
            if let Some(rb) = conn.state.lock().reconnect.as_mut() {
                rb.ack(sequence_id);
            }
            conn.wake();
        }
        HubMessage::Sequence { sequence_id } => {
            let result = match conn.state.lock().reconnect.as_mut() {
                Some(rb) => rb.reset_sequence(sequence_id),
                None => Ok(()),
            };
            if let Err(e) = result {
                let text = close_error_text(hub, e);
                conn.close(Some(&text), false);
                return Flow::Stop;
            }
        }
    }
    Flow::Continue
}

// LIMITATION: the server cannot invoke client methods that return results (the official
// `Clients.Client(id).InvokeAsync`); completions received from clients are ignored. Tracking
// server-issued invocation ids and resolving them from `Completion` messages would lift this.
async fn invoke(
    hub: &Arc<Hub>,
    conn: &Arc<ConnInner>,
    invocation_id: Option<String>,
    target: String,
    arguments: Vec<Value>,
) {
    let handle = Connection {
        inner: conn.clone(),
    };
    conn.state.lock().invoking = true;
    let outcome = AssertUnwindSafe(hub.handler.on_invocation(&handle, &target, arguments))
        .catch_unwind()
        .await;
    {
        let mut st = conn.state.lock();
        st.invoking = false;
        st.last_recv = Instant::now();
    }
    let result = match outcome {
        Ok(Ok(Value::Null)) => CompletionResult::Void,
        Ok(Ok(value)) => CompletionResult::Value(value),
        Ok(Err(HubError::Client(message))) => CompletionResult::Error(message),
        Ok(Err(HubError::Internal)) | Err(_) => {
            if outcome.is_err() {
                tracing::error!(connection_id = %conn.id, method = %target, "hub method panicked");
            }
            CompletionResult::Error(format!(
                "An unexpected error occurred invoking '{target}' on the server."
            ))
        }
    };
    if let Some(id) = invocation_id {
        hub.send_direct(conn, &HubMessage::completion(&id, result));
    }
}
