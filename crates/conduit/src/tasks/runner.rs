//! The runner: executes tasks with bounded concurrency, a time limit and
//! cancellation, turning the provider's progress and outcome into transitions.
//!
//! Accepted tasks are queued by id. At start, tasks that were pending or
//! processing when the last process stopped are queued again: a pending task
//! starts normally, a processing one is run again from the beginning (its events
//! continue the same sequence). On shutdown running jobs are stopped without
//! writing anything, so they stay resumable.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Map;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::events;
use super::model::{Task, TaskError, TaskStatus};
use crate::providers::{Job, Progress, Providers};
use crate::store::{Change, Store, StoreError, Transition};

/// Runs tasks in the background.
pub struct Runner {
    queue: mpsc::UnboundedSender<String>,
    running: Mutex<HashMap<String, CancellationToken>>,
}

/// What the runner's workers need.
pub struct RunnerDeps {
    pub store: Arc<dyn Store>,
    pub providers: Providers,
    pub max_concurrent: usize,
    pub timeout: Duration,
    pub shutdown: CancellationToken,
}

impl Runner {
    /// Starts the runner's dispatch loop.
    pub fn start(deps: RunnerDeps) -> Arc<Runner> {
        let (queue, mut receiver) = mpsc::unbounded_channel::<String>();
        let runner = Arc::new(Runner {
            queue,
            running: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&runner);
        let deps = Arc::new(deps);
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(deps.max_concurrent));
            loop {
                let task_id = tokio::select! {
                    next = receiver.recv() => match next { Some(id) => id, None => break },
                    _ = deps.shutdown.cancelled() => break,
                };
                let permit = tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("semaphore open"),
                    _ = deps.shutdown.cancelled() => break,
                };
                let (deps, weak) = (deps.clone(), weak.clone());
                tokio::spawn(async move {
                    run_one(&deps, &weak, &task_id).await;
                    drop(permit);
                });
            }
        });
        runner
    }

    /// Queues an accepted task.
    // LIMITATION: one first-in-first-out queue for every key: a key that
    // submits thousands of tasks delays other keys' tasks until they are done
    // (per-key rate limits are the only brake). A queue per key served in turn
    // would share the runner fairly.
    pub fn enqueue(&self, task_id: &str) {
        let _ = self.queue.send(task_id.to_string());
    }

    /// Stops a running job (its task was cancelled).
    pub fn stop(&self, task_id: &str) {
        if let Some(token) = self.running.lock().get(task_id) {
            token.cancel();
        }
    }

    /// How many jobs are running now.
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }
}

async fn run_one(deps: &RunnerDeps, runner: &Weak<Runner>, task_id: &str) {
    let task = match deps.store.task(task_id).await {
        Ok(Some(task)) if !task.status.is_terminal() => task,
        Ok(_) => return,
        Err(err) => {
            tracing::error!(task_id, cause = %err, "cannot load task to run");
            return;
        }
    };

    // 1. Register for cancellation, then start (or resume) the task.
    let cancel = deps.shutdown.child_token();
    if let Some(runner) = runner.upgrade() {
        runner
            .running
            .lock()
            .insert(task.id.clone(), cancel.clone());
    }
    let task = if task.status == TaskStatus::Pending {
        let data = events::started(&task);
        match apply(deps, &task.id, Transition::Start { data }).await {
            Some(task) => task,
            None => return unregister(runner, task_id),
        }
    } else {
        // LIMITATION: a task that was processing when the process died runs again from
        // the start (its sequence continues); providers that can resume from a
        // checkpoint would need a resume hook in the `Provider` trait.
        tracing::info!(task_id, "resuming task after restart");
        task
    };

    // 2. Run the provider under the time limit.
    let started = Instant::now();
    let outcome = match deps.providers.get(&task.provider) {
        None => Err(crate::providers::ProviderError::new(
            "provider_unavailable",
            format!("The provider `{}` is not configured.", task.provider),
            false,
        )),
        Some(provider) => {
            let job = Job {
                task_id: task.id.clone(),
                task_type: task.task_type,
                provider_model: task.provider_model.clone(),
                request: task.request.clone(),
                cancel: cancel.clone(),
            };
            let progress = TaskProgress { deps, task: &task };
            match tokio::time::timeout(deps.timeout, provider.run(job, &progress)).await {
                Ok(result) => result,
                Err(_) => {
                    cancel.cancel();
                    let data = events::failed(
                        &task,
                        &TaskError {
                            message: "The task did not finish within its time limit.".into(),
                            code: "timeout".into(),
                            retryable: true,
                        },
                    );
                    apply(deps, &task.id, Transition::TimedOut { data }).await;
                    return unregister(runner, task_id);
                }
            }
        }
    };

    // 3. Record the outcome, unless the task was cancelled or we are shutting down.
    if deps.shutdown.is_cancelled() {
        return unregister(runner, task_id);
    }
    let transition = match outcome {
        Ok(output) => {
            let elapsed = started.elapsed().as_millis() as u64;
            Transition::Complete {
                data: events::completed(&task, &output, elapsed),
                cost: events::round_cost(output.cost),
                result: output.result,
            }
        }
        Err(_) if cancel.is_cancelled() => return unregister(runner, task_id),
        Err(err) => {
            let error = TaskError {
                message: err.message,
                code: err.code,
                retryable: err.retryable,
            };
            Transition::Fail {
                data: events::failed(&task, &error),
                error,
            }
        }
    };
    apply(deps, &task.id, transition).await;
    unregister(runner, task_id);
}

fn unregister(runner: &Weak<Runner>, task_id: &str) {
    if let Some(runner) = runner.upgrade() {
        runner.running.lock().remove(task_id);
    }
}

/// Applies a transition; a conflict (the task was cancelled meanwhile) is expected.
async fn apply(deps: &RunnerDeps, task_id: &str, transition: Transition) -> Option<Task> {
    let change = Change::Transition {
        task_id: task_id.to_string(),
        transition,
    };
    match deps.store.apply(change).await {
        Ok(applied) => applied.task,
        Err(StoreError::Conflict(_)) => None,
        Err(err) => {
            tracing::error!(task_id, cause = %err, "cannot record task transition");
            None
        }
    }
}

/// Turns provider progress reports into `…progress` events.
struct TaskProgress<'a> {
    deps: &'a RunnerDeps,
    task: &'a Task,
}

#[async_trait::async_trait]
impl Progress for TaskProgress<'_> {
    async fn report(&self, progress: u8, message: &str, fields: Map<String, serde_json::Value>) {
        let data = events::progress(self.task, progress, message, fields);
        let transition = Transition::Progress {
            progress,
            message: message.to_string(),
            data,
        };
        apply(self.deps, &self.task.id, transition).await;
    }
}
