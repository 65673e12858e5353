//! The WebSocket transport: one task per socket.
//!
//! The task selects over three things: writing queued frames (a hand-driven sink so that a
//! slow socket never loses a frame when another branch wins), reading frames (paused while
//! the previous batch of messages is being handled, which gives TCP backpressure to a client
//! that floods), and the in-flight message handling. Timers live in the hub's shared sweeper.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};

use super::{Attach, attach, check_owner, text_response};
use crate::connection::{ConnInner, Next, Phase, TransportKind};
use crate::dispatch::{Flow, process};
use crate::handler::Principal;
use crate::hub::Hub;
use crate::negotiate::new_id;
use crate::protocol::ProtocolKind;

/// Socket buffer sizes: small, so that idle connections cost little memory.
const READ_BUFFER: usize = 2 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;

pub(super) async fn upgrade(
    hub: Arc<Hub>,
    parts: &mut http::request::Parts,
    params: &HashMap<String, String>,
    principal: Principal,
    caller: Option<String>,
) -> Response {
    let ws = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let conn = match params.get("id").filter(|t| !t.is_empty()) {
        Some(token) => match hub.lookup(token) {
            Some(conn) => {
                if let Err(reject) = check_owner(&conn, caller.as_deref()) {
                    return reject.into_response();
                }
                conn
            }
            None => {
                return text_response(http::StatusCode::NOT_FOUND, "No Connection with that ID");
            }
        },
        None => {
            // skipNegotiation: the upgrade itself creates the connection (negotiate version 0).
            if hub.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
                return text_response(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "Server is shutting down.",
                );
            }
            let id = new_id();
            let conn = Arc::new(ConnInner::new(id.clone(), id, principal, caller, false));
            hub.insert(conn.clone());
            conn
        }
    };
    let attached = match attach(&hub, &conn, TransportKind::WebSockets) {
        Ok(a) => a,
        Err(resp) => return resp.into_response(),
    };
    let generation = attached.generation;
    let failed_conn = conn.clone();
    let failed_hub = hub.clone();
    let max_frame = hub
        .options
        .max_message_size
        .saturating_mul(4)
        .max(64 * 1024);
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_failed_upgrade(move |e| {
            tracing::debug!(error = %e, "websocket upgrade failed");
            if attached_first(&failed_conn) {
                failed_hub.finalize(&failed_conn);
            } else {
                failed_conn.detach(generation);
            }
        })
        .on_upgrade(move |socket| run(hub, conn, socket, attached))
}

fn attached_first(conn: &ConnInner) -> bool {
    !conn.state.lock().handshake_done
}

/// How the socket loop ended.
enum End {
    /// The connection is done on the server side (closed, aborted): close the socket.
    Finished,
    /// A newer request owns the connection.
    Superseded,
    /// The socket failed or the peer vanished without a close frame.
    Dropped,
    /// The client sent a close frame.
    ClientClosed,
}

type Work = Pin<Box<dyn Future<Output = (BytesMut, Flow)> + Send>>;

async fn run(hub: Arc<Hub>, conn: Arc<ConnInner>, socket: WebSocket, attached: Attach) {
    let generation = attached.generation;
    let (mut sink, mut stream) = socket.split();
    let mut writer = Writer {
        preface: attached.resend.into(),
        pending: None,
        flushing: false,
    };
    let mut inbuf = BytesMut::new();
    let mut work: Option<Work> = None;
    let end = loop {
        tokio::select! {
            end = poll_fn(|cx| writer.drive(cx, &mut sink, &conn, generation)) => break end,
            (buf, flow) = async { work.as_mut().expect("guarded").await }, if work.is_some() => {
                work = None;
                inbuf = buf;
                if flow == Flow::Stop {
                    // The connection is closing: the writer ends after the Close message.
                    continue;
                }
            }
            msg = stream.next(), if work.is_none() && conn.is_open() => match msg {
                Some(Ok(Message::Text(text))) => {
                    inbuf.extend_from_slice(text.as_bytes());
                    conn.touch_recv();
                    work = Some(Box::pin(process(hub.clone(), conn.clone(), std::mem::take(&mut inbuf))));
                }
                Some(Ok(Message::Binary(data))) => {
                    inbuf.extend_from_slice(&data);
                    conn.touch_recv();
                    work = Some(Box::pin(process(hub.clone(), conn.clone(), std::mem::take(&mut inbuf))));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => conn.touch_recv(),
                Some(Ok(Message::Close(_))) => break End::ClientClosed,
                Some(Err(e)) => {
                    tracing::debug!(connection_id = %conn.id, error = %e, "websocket read failed");
                    break End::Dropped;
                }
                None => break End::Dropped,
            },
        }
    };
    // Let an in-flight invocation finish so that its completion is not lost (it is replayed
    // after a stateful reconnect).
    if let Some(w) = work.take() {
        let _ = w.await;
    }
    match end {
        End::Finished => {
            let close = Message::Close(Some(CloseFrame {
                code: 1000,
                reason: Utf8Bytes::from_static(""),
            }));
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
            hub.finalize(&conn);
        }
        End::Superseded => {}
        End::ClientClosed => {
            // Flushes the close reply queued by the WebSocket layer.
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            hub.finalize(&conn);
        }
        End::Dropped => {
            let resumable = {
                let st = conn.state.lock();
                st.reconnect.is_some() && st.phase == Phase::Open
            };
            if resumable {
                tracing::debug!(connection_id = %conn.id, "websocket dropped, waiting for reconnect");
                conn.detach(generation);
            } else {
                hub.finalize(&conn);
            }
        }
    }
}

struct Writer {
    preface: VecDeque<Bytes>,
    pending: Option<Message>,
    flushing: bool,
}

fn to_message(bytes: Bytes, protocol: Option<ProtocolKind>) -> Message {
    if protocol == Some(ProtocolKind::MessagePack) {
        return Message::Binary(bytes);
    }
    match Utf8Bytes::try_from(bytes.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(bytes),
    }
}

/// Registers for wake-ups while the socket is busy; `Some` when the writer must stop.
fn stopped(conn: &ConnInner, generation: u64, cx: &Context<'_>) -> Option<End> {
    match conn.register(generation, cx.waker())? {
        Next::Superseded => Some(End::Superseded),
        _ => Some(End::Finished),
    }
}

impl Writer {
    /// Writes queued frames until the queue is empty (Pending) or the connection ends.
    fn drive(
        &mut self,
        cx: &mut Context<'_>,
        sink: &mut SplitSink<WebSocket, Message>,
        conn: &ConnInner,
        generation: u64,
    ) -> Poll<End> {
        loop {
            if let Some(msg) = self.pending.take() {
                match sink.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        if sink.start_send_unpin(msg).is_err() {
                            return Poll::Ready(End::Dropped);
                        }
                        self.flushing = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(End::Dropped),
                    Poll::Pending => {
                        self.pending = Some(msg);
                        return stopped(conn, generation, cx).map_or(Poll::Pending, Poll::Ready);
                    }
                }
            }
            let next = match self.preface.pop_front() {
                Some(bytes) => Next::Frame(bytes),
                None => conn.next_frame(generation, Some(cx.waker())),
            };
            match next {
                Next::Frame(bytes) => self.pending = Some(to_message(bytes, conn.protocol_kind())),
                Next::Superseded => return Poll::Ready(End::Superseded),
                Next::Idle | Next::Ended => {
                    if self.flushing {
                        match sink.poll_flush_unpin(cx) {
                            Poll::Ready(Ok(())) => self.flushing = false,
                            Poll::Ready(Err(_)) => return Poll::Ready(End::Dropped),
                            Poll::Pending => {
                                return stopped(conn, generation, cx)
                                    .map_or(Poll::Pending, Poll::Ready);
                            }
                        }
                    }
                    return match next {
                        Next::Ended => Poll::Ready(End::Finished),
                        _ => Poll::Pending,
                    };
                }
            }
        }
    }
}
