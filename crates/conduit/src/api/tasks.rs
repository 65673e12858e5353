//! Observing tasks by polling: one task (with long polling and ETags), the
//! key's task list, cancellation, a task's events, and compatibility aliases.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::keys::auth::ClientKey;
use crate::store::{EventQuery, TaskQuery};
use crate::tasks::cache::TaskView;
use crate::tasks::model::{TaskStatus, TaskType};

/// Longest long poll.
const MAX_WAIT_SECS: f64 = 60.0;

#[derive(Deserialize, Default)]
pub struct WaitQuery {
    wait: Option<String>,
    timeout: Option<String>,
}

fn wait_of(text: Option<&str>, param: &str) -> Result<Duration, ApiError> {
    match text {
        None | Some("") => Ok(Duration::ZERO),
        Some(t) => match t.parse::<f64>() {
            Ok(secs) if secs.is_finite() && (0.0..=MAX_WAIT_SECS).contains(&secs) => {
                Ok(Duration::from_secs_f64(secs))
            }
            _ => Err(ApiError::invalid(
                param,
                "invalid_value",
                format!("`{param}` must be a number of seconds from 0 to {MAX_WAIT_SECS}."),
            )),
        },
    }
}

/// The answer for a view: 304 when the client's `If-None-Match` still matches.
fn answer(view: &TaskView, if_none_match: Option<&str>) -> Response {
    let etag = HeaderValue::from_str(&view.etag).expect("etag is ascii");
    if if_none_match.is_some_and(|tags| {
        tags.split(',')
            .any(|t| t.trim() == view.etag || t.trim() == "*")
    }) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        view.json.clone(),
    )
        .into_response()
}

async fn get_with_wait(
    app: &App,
    key: &crate::keys::model::VirtualKey,
    id: &str,
    wait: Duration,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let view = if wait.is_zero() {
        crate::tasks::view(app, key, id).await?
    } else {
        let etag = if_none_match.map(|t| t.split(',').next().unwrap_or("").trim());
        crate::tasks::wait_for_change(app, key, id, etag, wait).await?
    };
    Ok(answer(&view, if_none_match))
}

/// `GET /v1/tasks/{id}[?wait=30]`.
pub async fn get(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wait = wait_of(query.wait.as_deref(), "wait")?;
    get_with_wait(&app, &key, &id, wait, &headers).await
}

/// `GET /v1/tasks/{id}/poll?timeout=`: a long poll by another name.
pub async fn poll(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wait = wait_of(
        query.timeout.as_deref().or(query.wait.as_deref()),
        "timeout",
    )?;
    get_with_wait(&app, &key, &id, wait, &headers).await
}

/// `GET /v1/images/generations/{id}/status` and `/v1/videos/generations/tasks/{id}`.
pub async fn alias(
    state: State<Arc<App>>,
    key: ClientKey,
    id: Path<String>,
    query: Query<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    get(state, key, id, query, headers).await
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /v1/tasks`: the key's tasks, newest first, paged by cursor.
pub async fn list(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            ApiError::invalid("status", "invalid_value", format!("`{s}` is not a task status; use pending, processing, completed, failed, cancelled or timedout."))
        })?),
    };
    let task_type = match query.task_type.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(TaskType::parse(t).ok_or_else(|| {
            ApiError::invalid(
                "type",
                "invalid_value",
                format!("`{t}` is not a task type; use image, video, speech or transcription."),
            )
        })?),
    };
    let limit = parse_limit(query.limit.as_deref(), 100, 20)?;
    let after = match query.after.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor)?),
    };
    let task_query = TaskQuery {
        status,
        task_type,
        after,
        limit: limit + 1,
    };
    let mut tasks = app.store.tasks(&key.id, &task_query).await?;
    let has_more = tasks.len() > limit as usize;
    tasks.truncate(limit as usize);
    let next_cursor = if has_more {
        tasks.last().map(|t| encode_cursor(&t.created_at, &t.id))
    } else {
        None
    };
    let data: Vec<Value> = tasks.iter().map(|t| t.to_json()).collect();
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": has_more, "next_cursor": next_cursor}),
    )
    .into_response())
}

/// Parses `limit` within 1..=max.
pub fn parse_limit(text: Option<&str>, max: u32, default: u32) -> Result<u32, ApiError> {
    match text.filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(t) => match t.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                "limit",
                "invalid_value",
                format!("`limit` must be a whole number from 1 to {max}."),
            )),
        },
    }
}

fn encode_cursor(created_at: &str, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}|{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(String, String), ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once('|')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "after",
                "invalid_cursor",
                "`after` is not a cursor this API returned.",
            )
        })
}

/// `POST /v1/tasks/{id}/cancel` and `DELETE /v1/tasks/{id}`.
pub async fn cancel(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let task = crate::tasks::cancel(&app, &key, &id).await?;
    Ok(Json(task.to_json()).into_response())
}

/// `GET /v1/tasks/{id}/events`: one task's events in order.
pub async fn events(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = crate::tasks::view(&app, &key, &id).await?;
    let query = EventQuery {
        key_id: Some(key.id.clone()),
        task_id: Some(view.task.id.clone()),
        limit: 10_000,
        ..EventQuery::default()
    };
    let events = app.store.events(&query).await?;
    Ok(super::events::list_body(&events, false))
}
