//! The steps every submit route shares: reading the common fields, admitting
//! the key, resolving the model, storing the task, and answering either 202
//! with the task or, for a synchronous request, once it has finished.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::fields::{Fields, metadata};
use super::schema::responses::TaskAccepted;
use crate::app::App;
use crate::error::ApiError;
use crate::keys::model::VirtualKey;
use crate::providers::models::ModelInfo;
use crate::tasks::cache::TaskView;
use crate::tasks::model::{TaskStatus, TaskType};
use crate::tasks::{self, NewTask};

/// The fields every submit route shares.
pub(super) struct Common {
    pub(super) model: Option<String>,
    webhook_url: Option<String>,
    webhook_headers: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
    user: Option<String>,
    pub(super) is_async: bool,
}

pub(super) async fn common(
    app: &App,
    fields: &Fields<'_>,
    force_async: bool,
) -> Result<Common, ApiError> {
    let webhook_url = match fields.string("webhook_url", 2048)? {
        Some(url) => Some(crate::webhooks::check_webhook_url(app, &url).await?),
        None => None,
    };
    let webhook_headers = fields.object("webhook_headers")?;
    if let Some(headers) = &webhook_headers {
        check_webhook_headers(headers)?;
    }
    Ok(Common {
        model: fields.string("model", 128)?,
        webhook_url,
        webhook_headers,
        metadata: metadata(fields)?,
        user: fields.string("user", 256)?,
        // Read even when the route forces async, so a malformed value is refused.
        is_async: fields.boolean("async")?.unwrap_or(false) || force_async,
    })
}

fn check_webhook_headers(headers: &Map<String, Value>) -> Result<(), ApiError> {
    match crate::webhooks::custom_headers_problem("webhook_headers", headers) {
        Some(problem) => Err(ApiError::invalid(
            "webhook_headers",
            "invalid_webhook_headers",
            problem,
        )),
        None => Ok(()),
    }
}

/// Checks what the key may do before any work is accepted.
pub(super) async fn admit(app: &App, key: &VirtualKey, model: &ModelInfo) -> Result<(), ApiError> {
    if !key.allows_model(&model.name) {
        return Err(ApiError::forbidden(
            "model_not_allowed",
            format!("This virtual key may not use the model `{}`.", model.name),
        ));
    }
    if key.budget_exhausted() {
        tasks::announce_budget_refusal(app, key).await;
        return Err(ApiError::payment_required(format!(
            "This virtual key has used its budget of ${:.2}.",
            key.budget.unwrap_or_default()
        )));
    }
    if let Err(limited) = app.limits.check(key) {
        let retry_after = limited.retry_after.as_secs_f64().ceil() as u64;
        if app.rate_announcements.should_announce(&key.id) {
            let data = json!({
                "keyId": key.id, "keyName": key.name, "limit": limited.limit,
                "window": limited.window, "retryAfterSeconds": retry_after.max(1),
            });
            let change = crate::store::Change::Emit {
                key_id: Some(key.id.clone()),
                event_type: "key.rate_limited".into(),
                data,
            };
            if let Err(err) = app.store.apply(change).await {
                tracing::warn!(cause = %err, "cannot record key.rate_limited");
            }
        }
        return Err(ApiError::rate_limited(
            retry_after,
            format!(
                "Rate limit reached: {} requests per {}. Retry after {} seconds.",
                limited.limit,
                limited.window,
                retry_after.max(1)
            ),
        ));
    }
    Ok(())
}

pub(super) fn resolve<'a>(
    app: &'a App,
    task_type: TaskType,
    name: Option<&str>,
) -> Result<&'a ModelInfo, ApiError> {
    app.models.resolve(task_type, name).map_err(|message| {
        ApiError::invalid("model", "model_not_found", message).with_status(StatusCode::BAD_REQUEST)
    })
}

pub(super) fn parse_size(
    model: &ModelInfo,
    size: Option<String>,
) -> Result<(String, u32, u32), ApiError> {
    let size = size.unwrap_or_else(|| model.sizes[0].clone());
    if !model.sizes.contains(&size) {
        return Err(ApiError::invalid(
            "size",
            "invalid_size",
            format!(
                "`{size}` is not a supported size for {}; use one of: {}.",
                model.name,
                model.sizes.join(", ")
            ),
        ));
    }
    let concrete = if size == "auto" {
        "1024x1024".to_string()
    } else {
        size.clone()
    };
    let (w, h) = concrete
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::invalid("size", "invalid_size", "`size` must look like 1024x1024.")
        })?;
    Ok((size, w, h))
}

/// The 202 answer of an async submit.
pub(super) fn accepted(task: &crate::tasks::model::Task) -> Response {
    let body = TaskAccepted {
        task_id: task.id.clone(),
        object: "task",
        status: task.status,
        task_type: task.task_type,
        model: task.model.clone(),
        created_at: task.created_at.clone(),
        check_status_url: format!("/v1/tasks/{}", task.id),
        metadata: task.metadata.clone(),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Waits for a synchronous request's task to end; failure becomes an error answer.
pub(super) async fn finish_sync(
    app: &App,
    key: &VirtualKey,
    task_id: &str,
) -> Result<Arc<TaskView>, ApiError> {
    let mut etag: Option<String> = None;
    let limit = tokio::time::Instant::now() + app.config.task_timeout + Duration::from_secs(5);
    loop {
        let wait = limit.saturating_duration_since(tokio::time::Instant::now());
        let view = tasks::wait_for_change(app, key, task_id, etag.as_deref(), wait).await?;
        match view.task.status {
            TaskStatus::Completed => return Ok(view),
            TaskStatus::Pending | TaskStatus::Processing if app.shutdown.is_cancelled() => {
                let mut err = ApiError::unavailable(format!(
                    "The server is restarting; task {task_id} was accepted and resumes when it is back: follow it at /v1/tasks/{task_id}."
                ));
                err.code = Some("shutting_down".into());
                return Err(err);
            }
            TaskStatus::Pending | TaskStatus::Processing if !wait.is_zero() => {
                etag = Some(view.etag.clone());
            }
            _ => {
                let error = view.task.error.clone();
                let message = error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| format!("The task ended as {}.", view.task.status.as_str()));
                if view.task.status == TaskStatus::Cancelled {
                    // The client's own doing, not a server failure.
                    let mut err = ApiError::bad_request("task_cancelled", message);
                    err.status = StatusCode::CONFLICT;
                    return Err(err);
                }
                let code = error
                    .map(|e| e.code)
                    .unwrap_or_else(|| "task_failed".into());
                let mut err = ApiError::bad_request(&code, message);
                err.status = StatusCode::BAD_GATEWAY;
                err.kind = "server_error";
                return Err(err);
            }
        }
    }
}

/// The task-independent parts of a submission.
pub(super) struct Parts {
    webhook_url: Option<String>,
    webhook_headers: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
    user: Option<String>,
}

impl Common {
    pub(super) fn clone_parts(&self) -> Parts {
        Parts {
            webhook_url: self.webhook_url.clone(),
            webhook_headers: self.webhook_headers.clone(),
            metadata: self.metadata.clone(),
            user: self.user.clone(),
        }
    }
}

pub(super) fn new_task<'a>(
    task_type: TaskType,
    model: &'a ModelInfo,
    job: &impl serde::Serialize,
    parts: Parts,
) -> NewTask<'a> {
    NewTask {
        task_type,
        model,
        request: serde_json::to_value(job).unwrap_or_default(),
        webhook_url: parts.webhook_url,
        webhook_headers: parts.webhook_headers,
        metadata: parts.metadata,
        user_id: parts.user,
    }
}
