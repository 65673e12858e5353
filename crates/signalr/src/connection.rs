//! One logical SignalR connection and its outbound queue.
//!
//! A connection outlives the HTTP requests that carry it (long polls come and go, a stateful
//! WebSocket may be replaced). Its state sits behind one short-held mutex: the bounded
//! outbound queue of already-encoded frames, the lifecycle phase, timestamps for the hub's
//! shared timer, and which transport request currently owns it (`generation`). Senders only
//! push onto the queue and wake the owner through an `AtomicWaker`; they never wait for a
//! socket. The owning transport (a WebSocket task, an SSE body or a long poll) takes frames
//! with [`ConnInner::next_frame`] and stops when the generation moves on or the phase ends.
//! The owner's waker is stored under the same lock and only while its generation is current,
//! so a superseded owner can never overwrite its successor's waker.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use crate::handler::Principal;
use crate::protocol::{HubMessage, ProtocolKind};
use crate::reconnect::ReconnectBuffer;

/// The transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// WebSockets.
    WebSockets,
    /// Server-Sent Events (plus HTTP POST).
    ServerSentEvents,
    /// Long polling (plus HTTP POST).
    LongPolling,
}

impl TransportKind {
    /// The name used in negotiate responses and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebSockets => "WebSockets",
            TransportKind::ServerSentEvents => "ServerSentEvents",
            TransportKind::LongPolling => "LongPolling",
        }
    }
}

/// Lifecycle of a connection's outbound side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting messages.
    Open,
    /// No more messages accepted; the transport ends once the queue is written.
    Closing(Instant),
    /// Ends now, unwritten frames are dropped.
    Aborted,
}

/// One encoded frame waiting to be written.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub bytes: Bytes,
    pub trackable: bool,
}

/// What a transport gets when it asks for the next frame.
#[derive(Debug)]
pub(crate) enum Next {
    Frame(Bytes),
    Idle,
    Ended,
    Superseded,
}

/// Mutable connection state.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub queue: VecDeque<Frame>,
    pub phase: Phase,
    pub transport: Option<TransportKind>,
    /// The `transport` label under which the connection is counted in the
    /// `signalr_connections` gauge (set once it is registered and its transport is known),
    /// so that it is decremented under that same label.
    pub counted_as: Option<TransportKind>,
    /// Bumped by every transport request that takes the connection over.
    pub generation: u64,
    /// A transport request currently owns the connection.
    pub attached: bool,
    /// When the connection last lost its transport (or was negotiated).
    pub detached_at: Instant,
    /// When the first transport request started (handshake timeout base).
    pub started_at: Option<Instant>,
    pub handshake_done: bool,
    pub last_recv: Instant,
    pub last_send: Instant,
    /// An invocation is running (the client timeout is paused meanwhile).
    pub invoking: bool,
    pub reconnect: Option<Box<ReconnectBuffer>>,
    /// Waker of the current owner, woken when there is something for it to do.
    pub waker: Option<Waker>,
}

/// Shared state of one connection.
pub(crate) struct ConnInner {
    pub id: String,
    pub token: String,
    pub principal: Principal,
    /// [`crate::HubHandler::principal_id`] of `principal`: later transport requests for
    /// this connection must present the same identity.
    pub owner: Option<String>,
    pub stateful_requested: bool,
    pub protocol: OnceLock<(ProtocolKind, i64)>,
    pub state: Mutex<ConnState>,
    /// Serializes dispatch for POST-based transports and holds their partial input.
    pub dispatch: tokio::sync::Mutex<BytesMut>,
    pub groups: Mutex<Vec<String>>,
    pub registered: AtomicBool,
    pub connected_called: AtomicBool,
    pub finalized: AtomicBool,
}

impl ConnInner {
    pub fn new(
        id: String,
        token: String,
        principal: Principal,
        owner: Option<String>,
        stateful_requested: bool,
    ) -> Self {
        let now = Instant::now();
        Self {
            id,
            token,
            principal,
            owner,
            stateful_requested,
            protocol: OnceLock::new(),
            state: Mutex::new(ConnState {
                queue: VecDeque::new(),
                phase: Phase::Open,
                transport: None,
                counted_as: None,
                generation: 0,
                attached: false,
                detached_at: now,
                started_at: None,
                handshake_done: false,
                last_recv: now,
                last_send: now,
                invoking: false,
                reconnect: None,
                waker: None,
            }),
            dispatch: tokio::sync::Mutex::new(BytesMut::new()),
            groups: Mutex::new(Vec::new()),
            registered: AtomicBool::new(false),
            connected_called: AtomicBool::new(false),
            finalized: AtomicBool::new(false),
        }
    }

    pub fn protocol_kind(&self) -> Option<ProtocolKind> {
        self.protocol.get().map(|(k, _)| *k)
    }

    pub fn transport(&self) -> Option<TransportKind> {
        self.state.lock().transport
    }

    /// Queues a frame. Returns `Err(true)` when the queue overflowed (the connection is then
    /// closing) and `Err(false)` when the connection no longer accepts messages.
    pub fn enqueue(&self, frame: Frame, limit: usize) -> Result<(), bool> {
        let mut st = self.state.lock();
        if st.phase != Phase::Open {
            return Err(false);
        }
        if st.queue.len() >= limit {
            st.queue.clear();
            if let Some(kind) = self.protocol_kind() {
                st.queue.push_back(close_frame(
                    kind,
                    Some("Connection closed because the client did not read its messages fast enough."),
                    true,
                ));
            }
            st.phase = Phase::Closing(Instant::now());
            wake(st);
            return Err(true);
        }
        st.queue.push_back(frame);
        wake(st);
        Ok(())
    }

    /// Queues a message encoded for this connection's protocol.
    pub fn enqueue_message(&self, message: &HubMessage, limit: usize) -> Result<(), bool> {
        let Some(kind) = self.protocol_kind() else {
            return Err(false);
        };
        self.enqueue(
            Frame {
                bytes: Bytes::from(kind.encode(message)),
                trackable: message.is_trackable(),
            },
            limit,
        )
    }

    /// Stops accepting messages; `last` (e.g. a Close message or a failed handshake
    /// response) is written after what is already queued, then the transport ends.
    pub fn close_with(&self, last: Option<Bytes>) {
        let mut st = self.state.lock();
        if st.phase != Phase::Open {
            return;
        }
        if let Some(bytes) = last {
            st.queue.push_back(Frame {
                bytes,
                trackable: false,
            });
        }
        st.phase = Phase::Closing(Instant::now());
        wake(st);
    }

    /// Sends a Close message (when the handshake is done) and closes.
    pub fn close(&self, error: Option<&str>, allow_reconnect: bool) {
        let frame = {
            let st = self.state.lock();
            match self.protocol_kind() {
                Some(kind) if st.handshake_done => {
                    Some(close_frame(kind, error, allow_reconnect).bytes)
                }
                _ => None,
            }
        };
        self.close_with(frame);
    }

    /// Ends the connection's transport now, dropping unwritten frames.
    pub fn abort(&self) {
        let mut st = self.state.lock();
        st.phase = Phase::Aborted;
        st.queue.clear();
        wake(st);
    }

    /// Wakes the current owner (e.g. after an Ack freed replay-buffer space).
    pub fn wake(&self) {
        wake(self.state.lock());
    }

    /// Registers the owner's waker if `generation` still owns the connection; returns
    /// whether the owner should stop (superseded or aborted).
    pub fn register(&self, generation: u64, waker: &Waker) -> Option<Next> {
        let mut st = self.state.lock();
        if st.generation != generation {
            return Some(Next::Superseded);
        }
        if st.phase == Phase::Aborted {
            return Some(Next::Ended);
        }
        set_waker(&mut st, waker);
        None
    }

    /// The next frame for the transport request of generation `generation`. When it returns
    /// `Idle`, `waker` (if given) is woken once there is more to do.
    pub fn next_frame(&self, generation: u64, waker: Option<&Waker>) -> Next {
        let mut st = self.state.lock();
        if st.generation != generation {
            return Next::Superseded;
        }
        if st.phase == Phase::Aborted {
            return Next::Ended;
        }
        let blocked = match (&st.reconnect, st.queue.front()) {
            (Some(rb), Some(front)) => front.trackable && !rb.can_send(),
            _ => false,
        };
        if blocked {
            if let Some(w) = waker {
                set_waker(&mut st, w);
            }
            return Next::Idle;
        }
        match st.queue.pop_front() {
            Some(frame) => {
                st.last_send = Instant::now();
                if frame.trackable
                    && let Some(rb) = st.reconnect.as_mut()
                {
                    rb.on_send(&frame.bytes);
                }
                Next::Frame(frame.bytes)
            }
            None if st.phase == Phase::Open => {
                if let Some(w) = waker {
                    set_waker(&mut st, w);
                }
                Next::Idle
            }
            None => Next::Ended,
        }
    }

    /// Takes every queued frame (up to about `max_bytes`) for a long poll or SSE write.
    pub fn take_batch(
        &self,
        generation: u64,
        max_bytes: usize,
        waker: &Waker,
    ) -> (Vec<Bytes>, Next) {
        let mut out = Vec::new();
        let mut size = 0;
        loop {
            if size >= max_bytes {
                return (out, Next::Idle);
            }
            match self.next_frame(generation, Some(waker)) {
                Next::Frame(b) => {
                    size += b.len();
                    out.push(b);
                }
                other => return (out, other),
            }
        }
    }

    /// Marks the connection as not owned by any transport request (if `generation` still
    /// owns it).
    pub fn detach(&self, generation: u64) {
        let mut st = self.state.lock();
        if st.generation == generation && st.attached {
            st.attached = false;
            st.detached_at = Instant::now();
        }
    }

    pub fn touch_recv(&self) {
        self.state.lock().last_recv = Instant::now();
    }

    pub fn is_open(&self) -> bool {
        self.state.lock().phase == Phase::Open
    }
}

fn set_waker(st: &mut ConnState, waker: &Waker) {
    match &st.waker {
        Some(w) if w.will_wake(waker) => {}
        _ => st.waker = Some(waker.clone()),
    }
}

/// Takes the owner's waker and wakes it after releasing the lock.
fn wake(mut st: parking_lot::MutexGuard<'_, ConnState>) {
    let waker = st.waker.take();
    drop(st);
    if let Some(w) = waker {
        w.wake();
    }
}

/// A Close message frame for `kind`.
pub(crate) fn close_frame(kind: ProtocolKind, error: Option<&str>, allow_reconnect: bool) -> Frame {
    Frame {
        bytes: Bytes::from(kind.encode(&HubMessage::Close {
            error: error.map(str::to_owned),
            allow_reconnect,
        })),
        trackable: false,
    }
}

/// A cheaply clonable handle to one live connection.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnInner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The public connection id (the `connectionId` of negotiate; never the secret token).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// What [`crate::HubHandler::authenticate`] returned when the connection was created.
    pub fn principal(&self) -> &Principal {
        &self.inner.principal
    }

    /// The transport carrying the connection.
    pub fn transport(&self) -> TransportKind {
        self.inner.transport().unwrap_or(TransportKind::WebSockets)
    }

    /// The hub protocol name chosen by the handshake (`json` or `messagepack`).
    pub fn protocol(&self) -> &str {
        self.inner.protocol_kind().map(|k| k.name()).unwrap_or("")
    }

    /// The hub protocol version chosen by the handshake.
    pub fn protocol_version(&self) -> i64 {
        self.inner.protocol.get().map(|(_, v)| *v).unwrap_or(0)
    }

    /// Whether the connection still accepts messages.
    pub fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// Closes the connection: a Close message carrying `error` and `allow_reconnect` is
    /// written after what is already queued, then the transport ends. Called from
    /// [`crate::HubHandler::on_connected`], it refuses the connection: none of its messages
    /// is dispatched (`on_disconnected` still follows).
    pub fn close(&self, error: Option<&str>, allow_reconnect: bool) {
        self.inner.close(error, allow_reconnect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnInner {
        let c = ConnInner::new("id".into(), "tok".into(), Arc::new(()), None, false);
        c.protocol.set((ProtocolKind::Json, 1)).unwrap();
        c.state.lock().handshake_done = true;
        c
    }

    fn frame(s: &'static str) -> Frame {
        Frame {
            bytes: Bytes::from_static(s.as_bytes()),
            trackable: true,
        }
    }

    #[test]
    fn queue_overflow_closes_with_reconnectable_close() {
        let c = conn();
        assert!(c.enqueue(frame("a"), 2).is_ok());
        assert!(c.enqueue(frame("b"), 2).is_ok());
        assert_eq!(c.enqueue(frame("c"), 2), Err(true));
        assert_eq!(c.enqueue(frame("d"), 2), Err(false));
        let Next::Frame(b) = c.next_frame(0, None) else {
            panic!()
        };
        let text = std::str::from_utf8(&b).unwrap();
        assert!(text.starts_with("{\"type\":7,\"error\":"), "{text}");
        assert!(text.contains("\"allowReconnect\":true"));
        assert!(matches!(c.next_frame(0, None), Next::Ended));
    }

    #[test]
    fn generations_and_close() {
        let c = conn();
        c.enqueue(frame("a"), 10).unwrap();
        assert!(matches!(c.next_frame(1, None), Next::Superseded));
        assert!(matches!(c.next_frame(0, None), Next::Frame(_)));
        assert!(matches!(c.next_frame(0, None), Next::Idle));
        c.close(None, false);
        assert!(matches!(c.next_frame(0, None), Next::Frame(_)));
        assert!(matches!(c.next_frame(0, None), Next::Ended));
    }

    #[test]
    fn reconnect_buffer_limits_trackable_frames() {
        let c = conn();
        c.state.lock().reconnect = Some(Box::new(ReconnectBuffer::new(2)));
        c.enqueue(frame("ab"), 10).unwrap();
        c.enqueue(frame("cd"), 10).unwrap();
        assert!(matches!(c.next_frame(0, None), Next::Frame(_)));
        assert!(matches!(c.next_frame(0, None), Next::Idle));
        c.state.lock().reconnect.as_mut().unwrap().ack(1);
        assert!(matches!(c.next_frame(0, None), Next::Frame(_)));
    }
}
