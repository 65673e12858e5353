//! Server-Sent Events: the response body is a stream that drains the connection's queue.
//! The connection ends with the stream (the client disconnecting drops the body).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use http::header;

use super::{attach, connection};
use crate::connection::{ConnInner, Next, TransportKind};
use crate::hub::Hub;

/// Most bytes written in one SSE event.
const MAX_EVENT_BYTES: usize = 256 * 1024;

pub(super) fn stream(
    hub: Arc<Hub>,
    params: &HashMap<String, String>,
    caller: Option<&str>,
) -> Response {
    let conn = match connection(&hub, params, caller) {
        Ok(c) => c,
        Err(resp) => return resp.into_response(),
    };
    let attached = match attach(&hub, &conn, TransportKind::ServerSentEvents) {
        Ok(a) => a,
        Err(resp) => return resp.into_response(),
    };
    let body = SseBody {
        hub,
        conn,
        generation: attached.generation,
        started: false,
        done: false,
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Frames one SSE event: each line of the payload becomes a `data: ` line (a trailing `\r`
/// of a line is dropped, as the official formatter does), then an empty line.
pub(crate) fn format_event(payload: &[u8], out: &mut BytesMut) {
    if !payload.is_empty() {
        for line in payload.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.put_slice(b"data: ");
            out.put_slice(line);
            out.put_slice(b"\r\n");
        }
    }
    out.put_slice(b"\r\n");
}

struct SseBody {
    hub: Arc<Hub>,
    conn: Arc<ConnInner>,
    generation: u64,
    started: bool,
    done: bool,
}

impl Stream for SseBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.started {
            self.started = true;
            // An initial comment makes clients fire their open event right away.
            return Poll::Ready(Some(Ok(Bytes::from_static(b":\r\n"))));
        }
        let (frames, next) = self
            .conn
            .take_batch(self.generation, MAX_EVENT_BYTES, cx.waker());
        if !frames.is_empty() {
            let payload: Vec<u8> = frames.concat();
            let mut out = BytesMut::with_capacity(payload.len() + 16);
            format_event(&payload, &mut out);
            return Poll::Ready(Some(Ok(out.freeze())));
        }
        match next {
            Next::Idle | Next::Frame(_) => Poll::Pending,
            Next::Ended | Next::Superseded => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        // The stream is the connection: when it ends (or the client goes away) so does it.
        self.hub.finalize(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(p: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        format_event(p, &mut out);
        out.to_vec()
    }

    #[test]
    fn formats_like_the_official_server() {
        assert_eq!(fmt(b"{}\x1e"), b"data: {}\x1e\r\n\r\n");
        assert_eq!(fmt(b"a\nb\r\nc"), b"data: a\r\ndata: b\r\ndata: c\r\n\r\n");
        assert_eq!(fmt(b""), b"\r\n");
    }
}
