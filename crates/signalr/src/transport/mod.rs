//! HTTP entry points of a hub endpoint and what the three transports share.
//!
//! `GET {path}` is a WebSocket upgrade, an SSE stream (`Accept: text/event-stream`) or a
//! long poll; `POST {path}?id=` carries client messages for SSE and long polling;
//! `DELETE {path}?id=` ends a long-polling connection. Status codes and texts follow the
//! official server. Every request is authenticated by the application first, and a request
//! for an existing connection must come from the principal that created it (403 otherwise).

mod long_polling;
mod sse;
mod websocket;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http::{Method, StatusCode, header};

use crate::connection::{ConnInner, Phase, TransportKind};
use crate::handler::Principal;
use crate::hub::Hub;
use crate::protocol::HubMessage;

pub(crate) fn router(hub: Arc<Hub>, path: &str) -> Router {
    let base = path.trim_end_matches('/');
    let negotiate_hub = hub.clone();
    Router::new()
        .route(
            &format!("{base}/negotiate"),
            any(move |req: Request| crate::negotiate::handle(negotiate_hub.clone(), req)),
        )
        .route(
            if base.is_empty() { "/" } else { base },
            any(move |req: Request| handle(hub.clone(), req)),
        )
}

pub(crate) fn text_response(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// A refused transport request: status and plain-text body.
pub(crate) struct Reject(StatusCode, &'static str);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        text_response(self.0, self.1)
    }
}

/// Query parameters with lower-cased names (the official server matches them
/// case-insensitively).
pub(crate) fn query_params(uri: &http::Uri) -> HashMap<String, String> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| {
            q.0.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn authenticate(
    hub: &Hub,
    parts: &http::request::Parts,
) -> Result<Principal, Response> {
    hub.handler
        .authenticate(parts)
        .await
        .map_err(|e| (e.status, [(header::CONTENT_TYPE, "text/plain")], e.message).into_response())
}

/// The connection named by the `id` query parameter, if `caller` may use it.
fn connection(
    hub: &Hub,
    params: &HashMap<String, String>,
    caller: Option<&str>,
) -> Result<Arc<ConnInner>, Reject> {
    let Some(token) = params.get("id").filter(|t| !t.is_empty()) else {
        return Err(Reject(StatusCode::BAD_REQUEST, "Connection ID required"));
    };
    let conn = hub
        .lookup(token)
        .ok_or(Reject(StatusCode::NOT_FOUND, "No Connection with that ID"))?;
    check_owner(&conn, caller)?;
    Ok(conn)
}

/// Refuses a request whose principal is not the one that created the connection (see
/// [`crate::HubHandler::principal_id`]).
pub(crate) fn check_owner(conn: &ConnInner, caller: Option<&str>) -> Result<(), Reject> {
    if conn.owner.as_deref() == caller {
        return Ok(());
    }
    tracing::warn!(
        connection_id = %conn.id,
        "transport request refused: authenticated as another principal than the connection's"
    );
    Err(Reject(
        StatusCode::FORBIDDEN,
        "The connection belongs to another user.",
    ))
}

fn not_served(kind: TransportKind) -> Response {
    let body = match kind {
        TransportKind::WebSockets => "WebSockets transport not supported by this end point type",
        TransportKind::ServerSentEvents => {
            "ServerSentEvents transport not supported by this end point type"
        }
        TransportKind::LongPolling => "LongPolling transport not supported by this end point type",
    };
    text_response(StatusCode::NOT_FOUND, body)
}

/// A transport request that now owns a connection.
pub(crate) struct Attach {
    pub generation: u64,
    /// The first transport request of the connection.
    pub first: bool,
    /// Frames to write before the queue: `Sequence` and the replay, after a stateful
    /// reconnect.
    pub resend: Vec<Bytes>,
}

/// Makes the request the owner of the connection, or answers as the official server:
/// 400 for another transport, 409 for a second concurrent WebSocket/SSE, 404 when closed.
pub(crate) fn attach(hub: &Hub, conn: &ConnInner, kind: TransportKind) -> Result<Attach, Reject> {
    let mut st = conn.state.lock();
    // A closing long-polling connection is still polled for its last messages.
    let drainable = matches!(st.phase, Phase::Closing(_)) && kind == TransportKind::LongPolling;
    if st.phase != Phase::Open && !drainable {
        return Err(Reject(StatusCode::NOT_FOUND, "No Connection with that ID"));
    }
    let mut chosen = false;
    match st.transport {
        None => {
            st.transport = Some(kind);
            chosen = true;
        }
        Some(t) if t != kind => {
            return Err(Reject(
                StatusCode::BAD_REQUEST,
                "Cannot change transports mid-connection",
            ));
        }
        Some(_) => {}
    }
    let first = st.started_at.is_none();
    let resumable = kind == TransportKind::LongPolling || st.reconnect.is_some();
    if !first && !resumable {
        return Err(Reject(StatusCode::CONFLICT, ""));
    }
    st.generation += 1;
    st.attached = true;
    if first {
        st.started_at = Some(Instant::now());
    }
    let mut resend = Vec::new();
    if kind == TransportKind::WebSockets
        && !first
        && let (Some(rb), Some(protocol)) = (st.reconnect.as_mut(), conn.protocol_kind())
    {
        let (sequence_id, replay) = rb.begin_resend();
        resend.push(Bytes::from(
            protocol.encode(&HubMessage::Sequence { sequence_id }),
        ));
        resend.extend(replay);
    }
    let generation = st.generation;
    // Wake the previous owner so that it notices it was superseded.
    let previous = st.waker.take();
    drop(st);
    if let Some(w) = previous {
        w.wake();
    }
    if chosen {
        // A connection whose handshake came (by POST) before its first poll or stream is
        // counted now that its transport is known.
        hub.count_connection(conn);
    }
    Ok(Attach {
        generation,
        first,
        resend,
    })
}

async fn handle(hub: Arc<Hub>, req: Request) -> Response {
    hub.ensure_sweeper();
    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    if method != Method::GET && method != Method::POST && method != Method::DELETE {
        return text_response(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let principal = match authenticate(&hub, &parts).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    // Who the caller is, compared with the connection's creator on every request for it.
    let caller = hub.handler.principal_id(&principal);
    let params = query_params(&parts.uri);
    if method == Method::POST {
        return long_polling::send(hub, &params, caller.as_deref(), body).await;
    }
    if method == Method::DELETE {
        return long_polling::delete(hub, &params, caller.as_deref()).await;
    }
    if is_websocket_request(&parts) {
        if !hub.options.transports.websockets {
            return not_served(TransportKind::WebSockets);
        }
        return websocket::upgrade(hub, &mut parts, &params, principal, caller).await;
    }
    let wants_sse = parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"));
    if wants_sse {
        if !hub.options.transports.sse {
            return not_served(TransportKind::ServerSentEvents);
        }
        return sse::stream(hub, &params, caller.as_deref());
    }
    if !hub.options.transports.long_polling {
        return not_served(TransportKind::LongPolling);
    }
    long_polling::poll(hub, &params, caller.as_deref()).await
}

// LIMITATION: only HTTP/1.1 upgrades are recognised, not WebSockets over HTTP/2 (extended
// CONNECT); accepting `Method::CONNECT` with the `:protocol` pseudo-header would lift this.
fn is_websocket_request(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}
