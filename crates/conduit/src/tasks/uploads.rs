//! Uploaded audio waits on disk under `<data_dir>/uploads` until its
//! transcription task has read it. A sweep removes every upload that no
//! unfinished task refers to: those of tasks that were refused (budget), were
//! cancelled or timed out before reading it, or whose process died.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::app::App;
use crate::tasks::model::TaskType;

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(60);
/// An upload younger than this may belong to a submit still in progress.
const GRACE: Duration = Duration::from_secs(60);

/// Runs the sweep at start and then every minute until shutdown.
pub async fn keep_clean(app: Arc<App>) {
    let dir = app.config.data_dir.join("uploads");
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = app.shutdown.cancelled() => return,
        }
        match sweep(&app, &dir, GRACE).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed uploads no task needs"),
            Err(err) => tracing::warn!(cause = %err, "cannot sweep uploads"),
        }
    }
}

/// Removes the uploads older than `grace` that no unfinished task refers to;
/// returns how many.
pub async fn sweep(app: &App, dir: &Path, grace: Duration) -> anyhow::Result<usize> {
    let needed: HashSet<String> = app
        .store
        .unfinished_tasks()
        .await?
        .into_iter()
        .filter(|t| t.task_type == TaskType::Transcription)
        .filter_map(|t| t.request.get("upload")?.as_str().map(str::to_string))
        .collect();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err.into()),
    };
    let mut removed = 0;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let age = entry
            .metadata()
            .await?
            .modified()
            .ok()
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .unwrap_or_default();
        if needed.contains(&name) || age < grace {
            continue;
        }
        if tokio::fs::remove_file(entry.path()).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}
