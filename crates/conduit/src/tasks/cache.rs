//! Recently seen tasks in memory, with their response bytes ready to send.
//!
//! `GET /v1/tasks/{id}` is the hottest route, so each cached task keeps the JSON
//! body and ETag it is answered with. The store's writer refreshes an entry after
//! every commit; a reader that missed fills the entry from the store, but never
//! over a newer version, so a stale read cannot win against a commit.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;

use super::model::Task;

const SHARDS: usize = 32;

/// A task with its serialized answer.
#[derive(Debug)]
pub struct TaskView {
    pub task: Task,
    /// The JSON body of `GET /v1/tasks/{id}`.
    pub json: Bytes,
    /// `"<version>"`: changes whenever the task does.
    pub etag: String,
}

impl TaskView {
    pub fn new(task: Task) -> TaskView {
        let json = Bytes::from(serde_json::to_vec(&task.to_json()).unwrap_or_default());
        let etag = format!(
            "\"{}-{}\"",
            &task.id[task.id.len().saturating_sub(8)..],
            task.version
        );
        TaskView { task, json, etag }
    }
}

/// A sharded map of task id → latest view, bounded in size.
pub struct TaskCache {
    shards: Vec<RwLock<HashMap<String, Arc<TaskView>>>>,
    hasher: RandomState,
    per_shard: usize,
    /// Counts evictions, so a reader's fill cannot resurrect an older version
    /// of an entry evicted while it read the store.
    evictions: AtomicU64,
}

impl TaskCache {
    /// A cache holding about `capacity` tasks.
    pub fn new(capacity: usize) -> TaskCache {
        TaskCache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: (capacity / SHARDS).max(16),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: &str) -> &RwLock<HashMap<String, Arc<TaskView>>> {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }

    pub fn get(&self, id: &str) -> Option<Arc<TaskView>> {
        self.shard(id).read().get(id).cloned()
    }

    /// A token to pass to [`TaskCache::fill`] taken before reading the store.
    pub fn fill_token(&self) -> u64 {
        self.evictions.load(Ordering::Acquire)
    }

    /// Stores a task read from the store, unless the cache changed since `token`
    /// in a way that could make it stale.
    pub fn fill(&self, task: Task, token: u64) -> Arc<TaskView> {
        if self.evictions.load(Ordering::Acquire) != token {
            return Arc::new(TaskView::new(task));
        }
        self.put(task)
    }

    /// Stores `task` unless a newer version is already there; returns the view kept.
    pub fn put(&self, task: Task) -> Arc<TaskView> {
        let shard = self.shard(&task.id);
        let mut map = shard.write();
        if let Some(existing) = map.get(&task.id)
            && existing.task.version >= task.version
        {
            return existing.clone();
        }
        if map.len() >= self.per_shard {
            self.evictions.fetch_add(1, Ordering::AcqRel);
            evict(&mut map);
        }
        let view = Arc::new(TaskView::new(task));
        map.insert(view.task.id.clone(), view.clone());
        view
    }
}

/// Frees half a shard, finished tasks first (they are the ones no one waits on).
fn evict(map: &mut HashMap<String, Arc<TaskView>>) {
    let target = map.len() / 2;
    let finished: Vec<String> = map
        .iter()
        .filter(|(_, v)| v.task.status.is_terminal())
        .map(|(k, _)| k.clone())
        .take(target)
        .collect();
    for id in finished {
        map.remove(&id);
    }
    if map.len() > target {
        let rest: Vec<String> = map.keys().take(map.len() - target).cloned().collect();
        for id in rest {
            map.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::model::{TaskStatus, TaskType};

    fn task(id: &str, version: i64) -> Task {
        Task {
            id: id.into(),
            key_id: "key_1".into(),
            task_type: TaskType::Image,
            status: TaskStatus::Pending,
            progress: 0,
            progress_message: None,
            request: serde_json::Value::Null,
            result: None,
            error: None,
            model: "dall-e-3".into(),
            provider: "local".into(),
            provider_model: "dall-e-3".into(),
            webhook_url: None,
            webhook_headers: None,
            metadata: None,
            user_id: None,
            created_at: "t".into(),
            updated_at: "t".into(),
            completed_at: None,
            last_sequence: 0,
            version,
            cost: 0.0,
        }
    }

    #[test]
    fn older_versions_never_replace_newer_ones() {
        let cache = TaskCache::new(1000);
        cache.put(task("task_a", 2));
        let kept = cache.put(task("task_a", 1));
        assert_eq!(kept.task.version, 2);
        assert_ne!(TaskView::new(task("task_a", 1)).etag, kept.etag);
    }

    #[test]
    fn stays_bounded_and_a_stale_fill_is_not_kept() {
        let cache = TaskCache::new(32 * 16);
        let token = cache.fill_token();
        for i in 0..10_000 {
            cache.put(task(&format!("task_{i:05}"), 1));
        }
        let total: usize = cache.shards.iter().map(|s| s.read().len()).sum();
        assert!(total <= 32 * 16, "{total}");
        cache.fill(task("task_late", 1), token);
        assert!(cache.get("task_late").is_none());
    }
}
