//! The `data` of each task event (camelCase, as the clients read it).

use serde_json::{Map, Value};

use super::model::{Task, TaskError, TaskType};
use crate::providers::JobOutput;

fn base(task: &Task) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("taskId".into(), task.id.clone().into());
    data
}

fn add_context(data: &mut Map<String, Value>, task: &Task) {
    if let Some(user) = &task.user_id {
        data.insert("userId".into(), user.clone().into());
    }
    if let Some(metadata) = &task.metadata {
        data.insert("metadata".into(), Value::Object(metadata.clone()));
    }
}

/// `<prefix>.started`.
pub fn started(task: &Task) -> Value {
    let mut data = base(task);
    data.insert("model".into(), task.model.clone().into());
    data.insert("provider".into(), task.provider.clone().into());
    match task.task_type {
        TaskType::Image => {
            let n = task.request.get("n").cloned().unwrap_or(Value::from(1));
            data.insert("n".into(), n);
        }
        TaskType::Video => {
            let seconds = task
                .request
                .get("duration")
                .cloned()
                .unwrap_or(Value::from(5));
            data.insert("estimatedSeconds".into(), seconds);
        }
        TaskType::Speech | TaskType::Transcription => {}
    }
    add_context(&mut data, task);
    Value::Object(data)
}

/// `<prefix>.progress`.
pub fn progress(task: &Task, progress: u8, message: &str, fields: Map<String, Value>) -> Value {
    let mut data = base(task);
    data.insert("progress".into(), progress.into());
    data.insert("message".into(), message.into());
    data.extend(fields);
    Value::Object(data)
}

/// `<prefix>.completed`.
pub fn completed(task: &Task, output: &JobOutput, duration_ms: u64) -> Value {
    let mut data = base(task);
    data.extend(output.event_fields.clone());
    data.insert("model".into(), task.model.clone().into());
    data.insert("provider".into(), task.provider.clone().into());
    data.insert("durationMs".into(), duration_ms.into());
    data.insert("cost".into(), round_cost(output.cost).into());
    add_context(&mut data, task);
    Value::Object(data)
}

/// `<prefix>.failed`.
pub fn failed(task: &Task, error: &TaskError) -> Value {
    let mut data = base(task);
    data.insert("error".into(), error.message.clone().into());
    data.insert("code".into(), error.code.clone().into());
    data.insert("retryable".into(), error.retryable.into());
    add_context(&mut data, task);
    Value::Object(data)
}

/// Costs in USD to a millionth, so that sums print cleanly.
pub fn round_cost(cost: f64) -> f64 {
    (cost * 1_000_000.0).round() / 1_000_000.0
}
