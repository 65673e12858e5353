//! The event feed: `GET /v1/events` pages through the key's events (its own and
//! system events) in log order; with `Accept: text/event-stream` it streams them
//! live as Server-Sent Events, resumable with `Last-Event-ID`.
//!
//! A stream first catches up from the log, then follows the bus. If it falls
//! behind the bus (a lagging receiver), it catches up from the log again, from
//! the last position it sent, so a slow client misses nothing.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::app::App;
use crate::error::ApiError;
use crate::events::Event;
use crate::events::filter::TypeFilter;
use crate::keys::auth::ClientKey;
use crate::store::EventQuery;

/// Events read from the log per catch-up step.
const CATCH_UP_PAGE: u32 = 500;

/// Cursor, filter and page size of the feed.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Events after this event id (`Last-Event-ID` when streaming).
    after: Option<String>,
    /// Comma-separated patterns such as `image.*,video.progress`.
    types: Option<String>,
    /// 1–1000, default 100 (ignored when streaming).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

/// A list body built from the events' stored envelopes, without re-serializing them.
pub fn list_body(events: &[Event], has_more: bool) -> Response {
    let mut out =
        BytesMut::with_capacity(64 + events.iter().map(|e| e.body.len() + 1).sum::<usize>());
    out.put_slice(b"{\"object\":\"list\",\"data\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(&event.body);
    }
    out.put_slice(if has_more {
        b"],\"has_more\":true}"
    } else {
        b"],\"has_more\":false}"
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        out.freeze(),
    )
        .into_response()
}

/// Resolves an event id cursor to its log position; the key must be allowed to see it.
async fn position_of(app: &App, key_id: &str, id: &str, param: &str) -> Result<i64, ApiError> {
    let event = app.store.event(id).await?;
    match event {
        Some(e) if e.key_id.as_deref().is_none_or(|k| k == key_id) => Ok(e.position),
        _ => Err(ApiError::invalid(
            param,
            "invalid_cursor",
            format!("`{id}` is not an event id of this key."),
        )),
    }
}

/// `GET /v1/events`.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    description = "The key's events and system events in log order; with `Accept: text/event-stream` a live, resumable stream.",
    params(
        FeedQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume a stream after this event id.")
    ),
    responses(
        (status = 200, description = "A page of events, or a Server-Sent Events stream.", content(
            (super::schema::responses::EventList = "application/json"),
            (String = "text/event-stream")
        )),
        (status = 400, description = "A bad cursor, filter or limit.", body = crate::error::ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub async fn feed(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    Query(query): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let types = TypeFilter::parse(query.types.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid("types", "invalid_value", e.to_string()))?;
    // A key's feed holds its own events and system events.
    let readable = crate::events::catalog::feed_types();
    if let Some(pattern) = crate::events::catalog::unmatched(&types, readable) {
        return Err(ApiError::invalid(
            "types",
            "invalid_value",
            format!(
                "`{pattern}` matches no event type; use a type such as `image.completed` or a pattern such as `image.*`."
            ),
        ));
    }
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let cursor = match (
        last_event_id.filter(|_| streaming),
        query.after.as_deref().filter(|a| !a.is_empty()),
    ) {
        (Some(id), _) => position_of(&app, &key.id, id, "Last-Event-ID").await?,
        (None, Some(id)) => position_of(&app, &key.id, id, "after").await?,
        (None, None) if streaming && query.after.is_none() => {
            app.store.last_event_position().await?
        }
        (None, None) => 0,
    };

    if streaming {
        let stream = live_stream(app.clone(), key.id.clone(), types, cursor);
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    }

    let limit = super::tasks::parse_limit(query.limit.as_deref(), 1000, 100)?;
    let event_query = EventQuery {
        key_id: Some(key.id.clone()),
        after_position: cursor,
        types,
        limit: limit + 1,
        ..EventQuery::default()
    };
    let mut events = app.store.events(&event_query).await?;
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    Ok(list_body(&events, has_more))
}

/// Where a live stream is.
struct Feed {
    app: Arc<App>,
    key_id: String,
    types: TypeFilter,
    /// Position of the last event sent (or the starting cursor).
    last: i64,
    bus: Receiver<Arc<Event>>,
    pending: VecDeque<Arc<Event>>,
    /// Read the log before following the bus again.
    catch_up: bool,
    /// The key was disabled: the stream ends after telling the client.
    closing: bool,
}

impl Feed {
    fn wants(&self, event: &Event) -> bool {
        event.position > self.last
            && event.key_id.as_deref().is_none_or(|k| k == self.key_id)
            && self.types.matches(&event.event_type)
    }

    /// Whether the stream's key may still be used.
    fn key_valid(&self) -> bool {
        self.app.keys.refusal(&self.key_id).is_none()
    }

    async fn next_event(&mut self) -> Option<Arc<Event>> {
        loop {
            if self.closing {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.position <= self.last {
                    continue;
                }
                // A disabled or deleted key hears its `key.disabled` and nothing more.
                if !self.key_valid() {
                    if event.event_type != "key.disabled" {
                        return None;
                    }
                    self.closing = true;
                }
                self.last = event.position;
                return Some(event);
            }
            if self.catch_up {
                let query = EventQuery {
                    key_id: Some(self.key_id.clone()),
                    after_position: self.last,
                    types: self.types.clone(),
                    limit: CATCH_UP_PAGE,
                    ..EventQuery::default()
                };
                let page = self.app.store.events(&query).await.ok()?;
                self.catch_up = page.len() as u32 == CATCH_UP_PAGE;
                self.pending.extend(page.into_iter().map(Arc::new));
                continue;
            }
            let next = tokio::select! {
                next = self.bus.recv() => next,
                _ = self.app.shutdown.cancelled() => return None,
            };
            match next {
                Ok(event) if self.wants(&event) => self.pending.push_back(event),
                // A stream whose types leave out its key's `key.disabled` still
                // ends with it.
                Ok(event)
                    if event.event_type == "key.disabled"
                        && event.key_id.as_deref() == Some(self.key_id.as_str()) =>
                {
                    return None;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.catch_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

// LIMITATION: no per-key cap on open event streams (nor on long polls and hub
// connections): one key can hold many of the process's 20,000 open files.
fn live_stream(
    app: Arc<App>,
    key_id: String,
    types: TypeFilter,
    cursor: i64,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let feed = Feed {
        bus: app.bus.subscribe(),
        app,
        key_id,
        types,
        last: cursor,
        pending: VecDeque::new(),
        catch_up: true,
        closing: false,
    };
    futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        let body = String::from_utf8_lossy(&event.body).into_owned();
        let sse = SseEvent::default()
            .id(event.id.clone())
            .event(event.event_type.clone())
            .data(body);
        Some((Ok(sse), feed))
    })
}
