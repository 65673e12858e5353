//! Tasks: the record and its state machine, the validated requests, the cache of
//! answers, the runner, and the operations the API performs on them.

pub mod cache;
pub mod events;
pub mod model;
pub mod requests;
pub mod runner;
pub mod uploads;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::app::App;
use crate::error::ApiError;
use crate::ids::{format_time, new_id, now};
use crate::keys::model::VirtualKey;
use crate::providers::models::ModelInfo;
use crate::store::{Change, Transition};
use cache::TaskView;
use model::{Task, TaskStatus, TaskType};

/// A validated submission.
pub struct NewTask<'a> {
    pub task_type: TaskType,
    pub model: &'a ModelInfo,
    pub request: Value,
    pub webhook_url: Option<String>,
    pub webhook_headers: Option<Map<String, Value>>,
    pub metadata: Option<Map<String, Value>>,
    pub user_id: Option<String>,
}

/// Stores a new pending task durably and queues it; answers once committed.
pub async fn submit(app: &App, key: &VirtualKey, new: NewTask<'_>) -> Result<Task, ApiError> {
    let created = format_time(now());
    // Only a key with a budget needs its work reserved up front; for the others
    // the completed task is simply charged, which keeps their submits to one write.
    let estimate = match key.budget {
        Some(_) => new.model.estimate(&new.request),
        None => 0.0,
    };
    let task = Task {
        id: new_id("task"),
        key_id: key.id.clone(),
        task_type: new.task_type,
        status: TaskStatus::Pending,
        progress: 0,
        progress_message: Some("queued".into()),
        request: new.request,
        result: None,
        error: None,
        model: new.model.name.clone(),
        provider: new.model.provider.clone(),
        provider_model: new.model.provider_model.clone(),
        webhook_url: new.webhook_url,
        webhook_headers: new.webhook_headers,
        metadata: new.metadata,
        user_id: new.user_id,
        created_at: created.clone(),
        updated_at: created,
        completed_at: None,
        last_sequence: 0,
        version: 1,
        // Reserved against the key's budget now, settled when the task ends.
        cost: estimate,
    };
    let applied = match app.store.apply(Change::CreateTask(Box::new(task))).await {
        Err(crate::store::StoreError::BudgetExceeded) => {
            announce_budget_refusal(app, key).await;
            return Err(crate::store::StoreError::BudgetExceeded.into());
        }
        other => other?,
    };
    let task = applied
        .task
        .ok_or_else(|| ApiError::internal("task missing after commit"))?;
    metrics::counter!("conduit_tasks_submitted_total", "type" => task.task_type.as_str())
        .increment(1);
    app.runner.enqueue(&task.id);
    Ok(task)
}

/// Tells the key's channels (`key.budget.exceeded`, at most once a minute) that
/// work was refused because its budget does not cover it.
pub async fn announce_budget_refusal(app: &App, key: &VirtualKey) {
    if !app.budget_announcements.should_announce(&key.id) {
        return;
    }
    let current = app.keys.by_id(&key.id);
    let spend = current.as_ref().map_or(key.spend, |k| k.spend);
    let data = serde_json::json!({
        "keyId": key.id, "keyName": key.name, "budget": key.budget, "spend": spend,
    });
    let change = Change::Emit {
        key_id: Some(key.id.clone()),
        event_type: "key.budget.exceeded".into(),
        data,
    };
    if let Err(err) = app.store.apply(change).await {
        tracing::warn!(cause = %err, "cannot record key.budget.exceeded");
    }
}

/// The caller's task; another key's task is "not found", exactly like an unknown id.
pub async fn view(app: &App, key: &VirtualKey, id: &str) -> Result<Arc<TaskView>, ApiError> {
    let view = match app.tasks.get(id) {
        Some(view) if view.task.key_id != key.id => {
            // Answer in about the time an unknown id takes (a store read), so
            // that timing does not tell another key's task from no task.
            let _ = app.store.task(id).await;
            return Err(ApiError::not_found("task"));
        }
        Some(view) => view,
        None => {
            if !looks_like_task_id(id) {
                return Err(ApiError::not_found("task"));
            }
            let token = app.tasks.fill_token();
            let task = app
                .store
                .task(id)
                .await?
                .ok_or(ApiError::not_found("task"))?;
            app.tasks.fill(task, token)
        }
    };
    if view.task.key_id != key.id {
        return Err(ApiError::not_found("task"));
    }
    Ok(view)
}

fn looks_like_task_id(id: &str) -> bool {
    id.len() <= 64 && id.starts_with("task_")
}

/// Waits until the task differs from `etag` (by default, from how it is now) or
/// `wait` has passed; returns the latest view either way. A finished task with
/// no `etag` answers at once: it will not change again.
pub async fn wait_for_change(
    app: &App,
    key: &VirtualKey,
    id: &str,
    etag: Option<&str>,
    wait: Duration,
) -> Result<Arc<TaskView>, ApiError> {
    let watch = app.watchers.watch(id);
    let deadline = tokio::time::Instant::now() + wait;
    let first = view(app, key, id).await?;
    if etag.is_none() && first.task.status.is_terminal() {
        return Ok(first);
    }
    let baseline = etag.unwrap_or(&first.etag).to_string();
    let mut current = first;
    while current.etag == baseline {
        // Register for the wake-up before looking again, so a change between the
        // look and the wait is not missed.
        let changed = watch.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        current = view(app, key, id).await?;
        if current.etag != baseline {
            break;
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => break,
            _ = app.shutdown.cancelled() => break,
            // A key disabled, deleted or expired meanwhile ends the wait (the
            // caller answers 401).
            _ = tokio::time::sleep(KEY_RECHECK) => {
                if app.keys.refusal(&key.id).is_some() {
                    break;
                }
            }
        }
        current = view(app, key, id).await?;
    }
    Ok(current)
}

/// How often a long poll checks that its key is still valid.
const KEY_RECHECK: Duration = Duration::from_secs(1);

/// Cancels a task that has not finished; 409 if it has.
pub async fn cancel(app: &App, key: &VirtualKey, id: &str) -> Result<Task, ApiError> {
    let current = view(app, key, id).await?;
    if current.task.status.is_terminal() {
        return Err(ApiError::conflict(
            "task_finished",
            format!(
                "The task is already {} and cannot be cancelled.",
                current.task.status.as_str()
            ),
        ));
    }
    let change = Change::Transition {
        task_id: id.to_string(),
        transition: Transition::Cancel {
            reason: "cancelled by client".into(),
        },
    };
    let applied = app.store.apply(change).await.map_err(|err| match err {
        crate::store::StoreError::Conflict(_) => ApiError::conflict(
            "task_finished",
            "The task finished before it could be cancelled.",
        ),
        other => other.into(),
    })?;
    app.runner.stop(id);
    applied
        .task
        .ok_or_else(|| ApiError::internal("task missing after cancel"))
}
