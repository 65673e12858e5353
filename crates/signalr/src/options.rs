//! Hub configuration. Defaults follow the official ASP.NET Core SignalR server.

use std::time::Duration;

/// Which transports a hub serves. All are enabled by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// WebSockets (full duplex, also used for stateful reconnect and `skipNegotiation`).
    pub websockets: bool,
    /// Server-Sent Events for server → client plus HTTP POST for client → server (text only).
    pub sse: bool,
    /// Long polling for server → client plus HTTP POST for client → server.
    pub long_polling: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Self {
            websockets: true,
            sse: true,
            long_polling: true,
        }
    }
}

/// Options of one hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// A Ping is sent when nothing else was sent for this long (official default 15 s).
    pub keep_alive: Duration,
    /// A WebSocket or SSE connection that sent nothing for this long is closed (official default 30 s).
    pub client_timeout: Duration,
    /// Time allowed between the transport starting and the handshake request (official default 15 s).
    pub handshake_timeout: Duration,
    /// Largest accepted incoming hub message in bytes (official default 32 KiB).
    pub max_message_size: usize,
    /// Outbound messages queued per connection before it is closed as a slow consumer.
    pub outbound_queue: usize,
    /// Offer stateful reconnect to clients that ask for it in negotiate.
    pub stateful_reconnect: bool,
    /// Bytes of unacknowledged messages kept for replay per connection (official default 100,000).
    pub stateful_reconnect_buffer: usize,
    /// How long a long poll is held when there is nothing to send (official default 90 s).
    pub long_poll_timeout: Duration,
    /// Served transports.
    pub transports: Transports,
    /// How long a connection without a transport is kept: a negotiated connection that never
    /// connects, a long-polling connection between polls, or a stateful WebSocket connection
    /// waiting for its client to reconnect (official `DisconnectTimeout`, default 15 s).
    pub disconnect_timeout: Duration,
    /// Add exception-like details to the errors sent to clients, as the official
    /// `EnableDetailedErrors` does. Off by default.
    pub detailed_errors: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            max_message_size: 32 * 1024,
            outbound_queue: 1024,
            stateful_reconnect: true,
            stateful_reconnect_buffer: 100_000,
            long_poll_timeout: Duration::from_secs(90),
            transports: Transports::default(),
            disconnect_timeout: Duration::from_secs(15),
            detailed_errors: false,
        }
    }
}
