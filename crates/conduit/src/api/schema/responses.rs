//! Answers of the client API.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::tasks::model::{TaskError, TaskStatus, TaskType};

/// The 202 answer of an async submit.
#[derive(Serialize, ToSchema)]
pub struct TaskAccepted {
    pub task_id: String,
    /// Always `task`.
    pub object: &'static str,
    pub status: TaskStatus,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    pub model: String,
    pub created_at: String,
    /// Where to poll: `/v1/tasks/{task_id}`.
    pub check_status_url: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// A task as `GET /v1/tasks/{id}` shows it.
#[derive(Serialize, ToSchema)]
pub struct TaskObject {
    pub task_id: String,
    pub object: String,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    pub status: TaskStatus,
    /// 0–100.
    pub progress: u8,
    pub progress_message: Option<String>,
    /// Present only when completed: images, video, audio or text by type.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Present only when failed or timed out.
    pub error: Option<TaskError>,
    pub model: String,
    pub provider: String,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub webhook_url: Option<String>,
    pub check_status_url: String,
}

/// `GET /v1/tasks`: newest first.
#[derive(Serialize, ToSchema)]
pub struct TaskList {
    pub object: String,
    pub data: Vec<TaskObject>,
    pub has_more: bool,
    /// Pass as `after` for the next page.
    pub next_cursor: Option<String>,
}

/// One event: the webhook body and an item of the event lists.
#[derive(Serialize, ToSchema)]
pub struct EventEnvelope {
    /// `evt_…`, the same on every channel and retry.
    pub id: String,
    /// Such as `image.completed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Commit time, UTC with milliseconds.
    pub timestamp: String,
    /// Counts one task's events from 1; absent for key and system events.
    pub sequence: Option<i64>,
    /// The type's fields, camelCase.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `GET /v1/events` and `GET /v1/tasks/{id}/events`.
#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub object: String,
    pub data: Vec<EventEnvelope>,
    /// More events follow: ask again with `after` = the last id.
    pub has_more: bool,
}

/// A synchronous image answer, as OpenAI's.
#[derive(Serialize, ToSchema)]
pub struct ImagesResponse {
    /// Unix seconds.
    pub created: i64,
    pub data: Vec<ImageData>,
}

/// One generated image.
#[derive(Serialize, ToSchema)]
pub struct ImageData {
    /// Absolute capability URL (with `response_format: url`).
    pub url: Option<String>,
    /// The PNG in base64 (with `response_format: b64_json`).
    pub b64_json: Option<String>,
    pub revised_prompt: Option<String>,
}

/// A synchronous transcription (`json`; `verbose_json` adds `language`,
/// `duration` and `segments`; `text`, `srt` and `vtt` answer plain text).
#[derive(Serialize, ToSchema)]
pub struct TranscriptionResponse {
    pub text: String,
    pub language: Option<String>,
    pub duration: Option<f64>,
}

/// `GET /health` and `GET /ready`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok`, `ready`, `unavailable` or `shutting_down`.
    pub status: String,
}

/// What the routes that read one task answer (`GET /v1/tasks/{id}` and its aliases).
/// Documentation only: never built, so the size of its variants does not matter.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, clippy::large_enum_variant)]
pub enum TaskAnswers {
    /// The task.
    #[response(status = 200, headers(("ETag" = String, description = "Changes whenever the task does.")))]
    Task(TaskObject),
    /// Unchanged since `If-None-Match`.
    #[response(status = 304)]
    NotModified,
    /// No such task for this key.
    #[response(status = 404)]
    NotFound(crate::error::ErrorBody),
}
