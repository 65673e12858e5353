//! Long polling (GET), and the HTTP POST send and DELETE shared with SSE.
//!
//! The first poll only activates the connection and returns at once. Later polls wait for
//! frames up to the poll timeout: 200 with the frames, 200 empty on timeout, 204 when the
//! connection ended or a newer poll replaced this one.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use super::{attach, connection, text_response};
use crate::connection::{ConnInner, Next, TransportKind};
use crate::dispatch::process;
use crate::hub::Hub;

/// Most bytes returned by one poll.
const MAX_POLL_BYTES: usize = 1024 * 1024;

fn empty_ok() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::empty(),
    )
        .into_response()
}

fn no_content() -> Response {
    text_response(StatusCode::NO_CONTENT, "")
}

fn no_cache(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        "no-cache, no-store".parse().expect("static"),
    );
    h.insert(header::PRAGMA, "no-cache".parse().expect("static"));
    h.insert(
        header::EXPIRES,
        "Thu, 01 Jan 1970 00:00:00 GMT".parse().expect("static"),
    );
    resp
}

/// Detaches the poll from the connection however the request ends (including the client
/// going away mid-poll).
struct PollGuard {
    conn: Arc<ConnInner>,
    generation: u64,
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        self.conn.detach(self.generation);
    }
}

pub(super) async fn poll(
    hub: Arc<Hub>,
    params: &HashMap<String, String>,
    caller: Option<&str>,
) -> Response {
    let conn = match connection(&hub, params, caller) {
        Ok(c) => c,
        Err(resp) => return no_cache(resp.into_response()),
    };
    let attached = match attach(&hub, &conn, TransportKind::LongPolling) {
        Ok(a) => a,
        Err(resp) => return no_cache(resp.into_response()),
    };
    let guard = PollGuard {
        conn: conn.clone(),
        generation: attached.generation,
    };
    if attached.first {
        return no_cache(empty_ok());
    }
    let wait = poll_fn(|cx| {
        let (frames, next) = conn.take_batch(attached.generation, MAX_POLL_BYTES, cx.waker());
        if !frames.is_empty() {
            return Poll::Ready(Ok(frames));
        }
        match next {
            Next::Idle | Next::Frame(_) => Poll::Pending,
            other => Poll::Ready(Err(other)),
        }
    });
    let resp = match tokio::time::timeout(hub.options.long_poll_timeout, wait).await {
        Err(_elapsed) => empty_ok(),
        Ok(Ok(frames)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            frames.concat(),
        )
            .into_response(),
        Ok(Err(Next::Ended)) => {
            drop(guard);
            hub.finalize(&conn);
            return no_cache(no_content());
        }
        Ok(Err(_superseded)) => no_content(),
    };
    drop(guard);
    no_cache(resp)
}

pub(super) async fn send(
    hub: Arc<Hub>,
    params: &HashMap<String, String>,
    caller: Option<&str>,
    body: Body,
) -> Response {
    let conn = match connection(&hub, params, caller) {
        Ok(c) => c,
        Err(resp) => return resp.into_response(),
    };
    if conn.transport() == Some(TransportKind::WebSockets) {
        return text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST requests are not allowed for WebSocket connections.",
        );
    }
    if !conn.is_open() {
        return text_response(StatusCode::NOT_FOUND, "");
    }
    let limit = hub
        .options
        .max_message_size
        .saturating_mul(32)
        .max(1024 * 1024);
    let data = match axum::body::to_bytes(body, limit).await {
        Ok(d) => d,
        Err(_) => return text_response(StatusCode::BAD_REQUEST, ""),
    };
    conn.touch_recv();
    // LIMITATION: the POST is answered once its messages are handled, so a slow hub method
    // delays the client's next send (WebSockets are not affected); queueing the input and
    // handling it in a per-connection task would lift this.
    // Handled in a task so that a client dropping its request does not cancel the
    // application's handler halfway; the lock keeps messages of one connection in order.
    let task = tokio::spawn(async move {
        let mut input = conn.dispatch.lock().await;
        input.extend_from_slice(&data);
        let buf = std::mem::take(&mut *input);
        let (rest, _flow) = process(hub, conn.clone(), buf).await;
        *input = rest;
    });
    let _ = task.await;
    text_response(StatusCode::OK, "")
}

pub(super) async fn delete(
    hub: Arc<Hub>,
    params: &HashMap<String, String>,
    caller: Option<&str>,
) -> Response {
    let conn = match connection(&hub, params, caller) {
        Ok(c) => c,
        Err(resp) => return resp.into_response(),
    };
    if conn.transport() != Some(TransportKind::LongPolling) {
        return text_response(
            StatusCode::BAD_REQUEST,
            "Cannot terminate this connection using the DELETE endpoint.",
        );
    }
    hub.finalize(&conn);
    text_response(StatusCode::ACCEPTED, "")
}
