//! The hub's shared timer: one task per hub instead of timers per connection.
//!
//! Once per tick (1 s, like the official heartbeat, shorter when the configured intervals
//! are shorter) it visits every connection: keep-alive pings when nothing was sent for the
//! keep-alive interval (not for long polling, whose polls keep the connection alive), the
//! client timeout, the handshake timeout, stateful-reconnect acks, and removal of
//! connections that have had no transport for the disconnect timeout or that do not finish
//! closing.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::connection::{ConnInner, Phase, TransportKind};
use crate::hub::Hub;
use crate::protocol::{HubMessage, write_handshake_response};

/// How long a closing connection may take to write its last frames.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) fn spawn(hub: Weak<Hub>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no Tokio runtime: signalr timers are not running");
        return;
    };
    let tick = match hub.upgrade() {
        Some(h) => tick_interval(&h),
        None => return,
    };
    runtime.spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(hub) = hub.upgrade() else { break };
            sweep(&hub, Instant::now());
        }
    });
}

fn tick_interval(hub: &Hub) -> Duration {
    let o = &hub.options;
    let shortest = [
        o.keep_alive,
        o.client_timeout,
        o.handshake_timeout,
        o.disconnect_timeout,
    ]
    .into_iter()
    .min()
    .unwrap_or(Duration::from_secs(1));
    (shortest / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

#[derive(Default)]
struct Actions {
    finalize: bool,
    abort: bool,
    handshake_timeout: bool,
    client_timeout: bool,
    ack: Option<u64>,
    ping: bool,
}

fn sweep(hub: &Arc<Hub>, now: Instant) {
    let conns: Vec<Arc<ConnInner>> = hub.by_token.read().values().cloned().collect();
    for conn in conns {
        let a = check(hub, &conn, now);
        if a.finalize {
            hub.finalize(&conn);
            continue;
        }
        if a.abort {
            conn.abort();
            continue;
        }
        if a.handshake_timeout {
            tracing::debug!(connection_id = %conn.id, "handshake timed out");
            let response = write_handshake_response(Some("Handshake was canceled."));
            conn.close_with(Some(Bytes::from(response)));
            continue;
        }
        if a.client_timeout {
            tracing::debug!(connection_id = %conn.id, "client timeout elapsed, closing");
            conn.close(
                Some("Server timeout elapsed without receiving a message from the client."),
                false,
            );
            continue;
        }
        if let Some(sequence_id) = a.ack {
            hub.send_direct(&conn, &HubMessage::Ack { sequence_id });
        }
        if a.ping {
            hub.send_direct(&conn, &HubMessage::Ping);
        }
    }
}

fn check(hub: &Hub, conn: &ConnInner, now: Instant) -> Actions {
    let o = &hub.options;
    let mut a = Actions::default();
    let mut st = conn.state.lock();
    let detached_for = now.saturating_duration_since(st.detached_at);
    match st.phase {
        Phase::Aborted => a.finalize = !st.attached,
        Phase::Closing(since) => {
            if !st.attached {
                a.finalize = detached_for > o.disconnect_timeout
                    || st.transport != Some(TransportKind::LongPolling);
            } else if now.saturating_duration_since(since) > CLOSE_GRACE {
                a.abort = true;
            }
        }
        Phase::Open if !st.attached => a.finalize = detached_for > o.disconnect_timeout,
        Phase::Open if !st.handshake_done => {
            a.handshake_timeout = st
                .started_at
                .is_some_and(|t| now.saturating_duration_since(t) > o.handshake_timeout);
        }
        Phase::Open => {
            let polling = st.transport == Some(TransportKind::LongPolling);
            if !polling
                && !st.invoking
                && now.saturating_duration_since(st.last_recv) > o.client_timeout
            {
                a.client_timeout = true;
                return a;
            }
            a.ack = st.reconnect.as_mut().and_then(|rb| rb.take_pending_ack());
            a.ping = !polling
                && a.ack.is_none()
                && st.queue.is_empty()
                && now.saturating_duration_since(st.last_send) >= o.keep_alive;
        }
    }
    a
}
