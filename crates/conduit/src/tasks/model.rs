//! The task record and its state machine.
//!
//! A task moves only forward: `pending → processing → completed | failed |
//! cancelled | timedout`, and a pending task may also end directly. Progress
//! changes only while processing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What kind of media a task produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    Image,
    Video,
    Speech,
    Transcription,
}

impl TaskType {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Image => "image",
            TaskType::Video => "video",
            TaskType::Speech => "speech",
            TaskType::Transcription => "transcription",
        }
    }

    pub fn parse(text: &str) -> Option<TaskType> {
        match text {
            "image" => Some(TaskType::Image),
            "video" => Some(TaskType::Video),
            "speech" => Some(TaskType::Speech),
            "transcription" => Some(TaskType::Transcription),
            _ => None,
        }
    }

    /// The prefix of this type's event names: `image`, `video`,
    /// `audio.synthesis`, `audio.transcription`.
    pub fn event_prefix(self) -> &'static str {
        match self {
            TaskType::Image => "image",
            TaskType::Video => "video",
            TaskType::Speech => "audio.synthesis",
            TaskType::Transcription => "audio.transcription",
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
    Timedout,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Processing => "processing",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Timedout => "timedout",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        [
            TaskStatus::Pending,
            TaskStatus::Processing,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
            TaskStatus::Timedout,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the task has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Processing)
    }

    /// Whether the state machine allows moving from `self` to `next`.
    pub fn can_become(self, next: TaskStatus) -> bool {
        match self {
            TaskStatus::Pending => next != TaskStatus::Pending,
            TaskStatus::Processing => next.is_terminal(),
            _ => false,
        }
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskError {
    pub message: String,
    pub code: String,
    /// Whether submitting the same request again may succeed.
    pub retryable: bool,
}

/// One asynchronous job and everything needed to run and report it.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub key_id: String,
    pub task_type: TaskType,
    pub status: TaskStatus,
    pub progress: u8,
    pub progress_message: Option<String>,
    /// The validated request the provider runs (prompt, size, n, …).
    pub request: Value,
    pub result: Option<Value>,
    pub error: Option<TaskError>,
    /// The model name the client asked for (or the type's default).
    pub model: String,
    pub provider: String,
    pub provider_model: String,
    pub webhook_url: Option<String>,
    pub webhook_headers: Option<Map<String, Value>>,
    pub metadata: Option<Map<String, Value>>,
    /// The request's `user` field.
    pub user_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    /// The `sequence` of this task's latest event; 0 before the first.
    pub last_sequence: i64,
    /// Bumped on every change: orders snapshots of the same task.
    pub version: i64,
    pub cost: f64,
}

impl Task {
    /// The task as `GET /v1/tasks/{id}` shows it.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("task_id".into(), self.id.clone().into());
        out.insert("object".into(), "task".into());
        out.insert("type".into(), self.task_type.as_str().into());
        out.insert("status".into(), self.status.as_str().into());
        out.insert("progress".into(), self.progress.into());
        out.insert(
            "progress_message".into(),
            self.progress_message
                .clone()
                .map_or(Value::Null, Value::String),
        );
        if let Some(result) = &self.result {
            out.insert("result".into(), result.clone());
        }
        if let Some(error) = &self.error {
            out.insert(
                "error".into(),
                serde_json::to_value(error).unwrap_or_default(),
            );
        }
        out.insert("model".into(), self.model.clone().into());
        out.insert("provider".into(), self.provider.clone().into());
        out.insert("created_at".into(), self.created_at.clone().into());
        out.insert("updated_at".into(), self.updated_at.clone().into());
        out.insert(
            "completed_at".into(),
            self.completed_at.clone().map_or(Value::Null, Value::String),
        );
        out.insert(
            "metadata".into(),
            self.metadata.clone().map_or(Value::Null, Value::Object),
        );
        if self.webhook_url.is_some() {
            out.insert("webhook_url".into(), self.webhook_url.clone().into());
        }
        out.insert(
            "check_status_url".into(),
            format!("/v1/tasks/{}", self.id).into(),
        );
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_moves_forward() {
        use TaskStatus::*;
        assert!(Pending.can_become(Processing));
        assert!(Pending.can_become(Cancelled));
        assert!(Processing.can_become(Completed));
        assert!(Processing.can_become(Timedout));
        assert!(!Processing.can_become(Pending));
        assert!(!Processing.can_become(Processing));
        for end in [Completed, Failed, Cancelled, Timedout] {
            assert!(end.is_terminal());
            for next in [Pending, Processing, Completed, Failed, Cancelled, Timedout] {
                assert!(!end.can_become(next), "{end:?} -> {next:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for t in ["image", "video", "speech", "transcription"] {
            assert_eq!(TaskType::parse(t).unwrap().as_str(), t);
        }
        assert_eq!(TaskStatus::parse("timedout"), Some(TaskStatus::Timedout));
        assert_eq!(TaskStatus::parse("done"), None);
        assert_eq!(TaskType::Speech.event_prefix(), "audio.synthesis");
    }
}
