//! Observing tasks by polling: one task (with long polling and ETags), the
//! key's task list, cancellation, a task's events, and compatibility aliases.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::app::App;
use crate::error::ApiError;
use crate::keys::auth::ClientKey;
use crate::store::{EventQuery, TaskQuery};
use crate::tasks::cache::TaskView;
use crate::tasks::model::{TaskStatus, TaskType};

/// Longest long poll.
const MAX_WAIT_SECS: f64 = 60.0;

/// Long-poll parameters.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds (0–60) to hold the request until the task changes.
    #[param(value_type = Option<f64>)]
    wait: Option<String>,
    /// `wait` by its name on the `poll` alias.
    #[param(value_type = Option<f64>)]
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

/// An entity tag without its weak prefix: `If-None-Match` compares weakly
/// (RFC 9110 §13.1.2), and a proxy may have weakened ours (`W/"…"`).
fn weak_free(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// The answer for a view: 304 when the client's `If-None-Match` still matches.
fn answer(view: &TaskView, if_none_match: Option<&str>) -> Response {
    let etag = HeaderValue::from_str(&view.etag).expect("etag is ascii");
    if if_none_match.is_some_and(|tags| {
        tags.split(',')
            .map(weak_free)
            .any(|t| t == view.etag || t == "*")
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
        let etag = if_none_match.map(|t| weak_free(t.split(',').next().unwrap_or("")));
        let view = crate::tasks::wait_for_change(app, key, id, etag, wait).await?;
        // The key may have been disabled, deleted or expired while it waited.
        if let Some((code, reason)) = app.keys.refusal(&key.id) {
            return Err(ApiError::unauthorized(code, reason));
        }
        view
    };
    Ok(answer(&view, if_none_match))
}

/// `GET /v1/tasks/{id}[?wait=30]`.
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}",
    tag = "tasks",
    description = "One task; `wait` long-polls until it changes.",
    params(("id" = String, Path, description = "The task id, `task_…`."), WaitQuery),
    responses(
        super::schema::responses::TaskAnswers
    ),
    security(("virtual_key" = []))
)]
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
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}/poll",
    tag = "tasks",
    description = "The task, long-polled for `timeout` seconds.",
    params(("id" = String, Path, description = "The task id, `task_…`."), WaitQuery),
    responses(
        super::schema::responses::TaskAnswers
    ),
    security(("virtual_key" = []))
)]
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

/// `GET /v1/images/generations/{id}/status`: the task under an older name.
#[utoipa::path(
    get,
    path = "/v1/images/generations/{id}/status",
    tag = "tasks",
    description = "Compatibility alias of `GET /v1/tasks/{id}`.",
    params(("id" = String, Path, description = "The task id, `task_…`."), WaitQuery),
    responses(
        super::schema::responses::TaskAnswers
    ),
    security(("virtual_key" = []))
)]
pub async fn image_status(
    state: State<Arc<App>>,
    key: ClientKey,
    id: Path<String>,
    query: Query<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    get(state, key, id, query, headers).await
}

/// `GET /v1/videos/generations/tasks/{id}`: the task under an older name.
#[utoipa::path(
    get,
    path = "/v1/videos/generations/tasks/{id}",
    tag = "tasks",
    description = "Compatibility alias of `GET /v1/tasks/{id}`.",
    params(("id" = String, Path, description = "The task id, `task_…`."), WaitQuery),
    responses(
        super::schema::responses::TaskAnswers
    ),
    security(("virtual_key" = []))
)]
pub async fn video_status(
    state: State<Arc<App>>,
    key: ClientKey,
    id: Path<String>,
    query: Query<WaitQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    get(state, key, id, query, headers).await
}

/// Filters and paging of the task list.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only tasks in this status.
    #[param(value_type = Option<TaskStatus>)]
    status: Option<String>,
    /// Only tasks of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<TaskType>)]
    task_type: Option<String>,
    /// 1–100, default 20.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    after: Option<String>,
}

/// `GET /v1/tasks`: the key's tasks, newest first, paged by cursor.
#[utoipa::path(
    get,
    path = "/v1/tasks",
    tag = "tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of tasks.", body = super::schema::responses::TaskList),
        (status = 400, description = "A bad filter, limit or cursor.", body = crate::error::ErrorBody)
    ),
    security(("virtual_key" = []))
)]
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
    let tasks = app.store.tasks(&key.id, &task_query).await?;
    let mut has_more = tasks.len() > limit as usize;
    // A page stops early once its answers pass a size (large `b64_json`
    // results); the cursor continues where it stopped. Each answer is
    // serialized once, and its size read off the bytes that are sent.
    // LIMITATION: the page's rows are read whole before this cut; a query that
    // reads result sizes first would bound the read too.
    let mut data: Vec<Box<RawValue>> = Vec::new();
    let mut bytes = 0;
    let mut last = None;
    for task in tasks.iter().take(limit as usize) {
        if !data.is_empty() && bytes > MAX_PAGE_BYTES {
            has_more = true;
            break;
        }
        let answer =
            serde_json::value::to_raw_value(&task.to_json()).map_err(ApiError::internal)?;
        bytes += answer.get().len();
        data.push(answer);
        last = Some(task);
    }
    let next_cursor = if has_more {
        last.map(|t| encode_cursor(&t.created_at, &t.id))
    } else {
        None
    };
    Ok(Json(TaskPage {
        object: "list",
        data,
        has_more,
        next_cursor,
    })
    .into_response())
}

/// One page of `GET /v1/tasks`, its answers already serialized.
#[derive(serde::Serialize)]
struct TaskPage {
    object: &'static str,
    data: Vec<Box<RawValue>>,
    has_more: bool,
    next_cursor: Option<String>,
}

/// Answer bytes after which a page of `GET /v1/tasks` ends early.
const MAX_PAGE_BYTES: usize = 8 << 20;

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

/// `POST /v1/tasks/{id}/cancel`: cancels a task that has not finished.
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/cancel",
    tag = "tasks",
    description = "Cancels a pending or processing task.",
    params(("id" = String, Path, description = "The task id, `task_…`.")),
    responses(
        (status = 200, description = "The cancelled task.", body = super::schema::responses::TaskObject),
        (status = 404, description = "No such task for this key.", body = crate::error::ErrorBody),
        (status = 409, description = "The task has already finished.", body = crate::error::ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub async fn cancel(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let task = crate::tasks::cancel(&app, &key, &id).await?;
    Ok(Json(task.to_json()).into_response())
}

/// `DELETE /v1/tasks/{id}`: the same as cancelling.
#[utoipa::path(
    delete,
    path = "/v1/tasks/{id}",
    tag = "tasks",
    description = "Cancels a pending or processing task.",
    params(("id" = String, Path, description = "The task id, `task_…`.")),
    responses(
        (status = 200, description = "The cancelled task.", body = super::schema::responses::TaskObject),
        (status = 404, description = "No such task for this key.", body = crate::error::ErrorBody),
        (status = 409, description = "The task has already finished.", body = crate::error::ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub async fn delete(
    state: State<Arc<App>>,
    key: ClientKey,
    id: Path<String>,
) -> Result<Response, ApiError> {
    cancel(state, key, id).await
}

/// `GET /v1/tasks/{id}/events`: one task's events in order.
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}/events",
    tag = "tasks",
    description = "One task's events in order.",
    params(("id" = String, Path, description = "The task id, `task_…`.")),
    responses(
        (status = 200, description = "The task's events, `sequence` 1..n.", body = super::schema::responses::EventList),
        (status = 404, description = "No such task for this key.", body = crate::error::ErrorBody)
    ),
    security(("virtual_key" = []))
)]
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
