//! Providers: what actually produces media. A provider gets a validated job,
//! reports progress while it works, and returns the task's result.

pub mod local;
pub mod media_store;
pub mod models;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::tasks::model::TaskType;
pub use media_store::MediaStore;

/// Why a provider could not finish a job.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub message: String,
    pub code: String,
    /// Whether trying again may succeed.
    pub retryable: bool,
}

impl ProviderError {
    pub fn new(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        ProviderError {
            message: message.into(),
            code: code.into(),
            retryable,
        }
    }
}

/// One job for a provider.
#[derive(Debug, Clone)]
pub struct Job {
    pub task_id: String,
    pub task_type: TaskType,
    pub provider_model: String,
    /// The validated request (see `tasks::requests`).
    pub request: Value,
    /// Cancelled when the task is cancelled or times out; a provider stops early.
    pub cancel: CancellationToken,
}

/// What a finished job produced.
#[derive(Debug, Clone)]
pub struct JobOutput {
    /// The task's `result` as `GET /v1/tasks/{id}` shows it.
    pub result: Value,
    /// Type-specific fields of the `…completed` event (`imageUrl`, `videoUrl`, …).
    pub event_fields: Map<String, Value>,
    /// USD charged to the key.
    pub cost: f64,
}

/// Where a provider reports progress; each report becomes a `…progress` event.
#[async_trait::async_trait]
pub trait Progress: Send + Sync {
    /// `progress` is 0–100; `fields` are the type's extra event fields
    /// (`imagesCompleted`, `framesCompleted`, …).
    async fn report(&self, progress: u8, message: &str, fields: Map<String, Value>);
}

/// A source of media.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &str;
    async fn run(&self, job: Job, progress: &dyn Progress) -> Result<JobOutput, ProviderError>;
}

/// Providers by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: HashMap<String, Arc<dyn Provider>>,
}

impl Providers {
    pub fn add(&mut self, provider: Arc<dyn Provider>) {
        self.by_name.insert(provider.name().to_string(), provider);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }
}
