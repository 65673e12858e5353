//! Recently seen tasks in memory, with their response bytes ready to send.
//!
//! `GET /v1/tasks/{id}` is the hottest route, so each cached task keeps the JSON
//! body and ETag it is answered with. The store's writer refreshes an entry after
//! every commit; a reader that missed fills the entry from the store, but never
//! over a newer version, so a stale read cannot win against a commit.
//!
//! The cache is bounded by entries and by bytes. A task whose answer is large
//! (`b64_json` images) is not kept at all: it is read from the store each time,
//! so no client can fill the gateway's memory with such tasks.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;

use super::model::Task;

const SHARDS: usize = 32;
/// Bytes of answers the whole cache holds at most.
const MAX_BYTES: usize = 256 << 20;
/// A task whose answer is larger is never cached.
const MAX_ENTRY_BYTES: usize = 256 << 10;

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

impl TaskView {
    /// What an entry costs in memory, roughly: the answer, the task it was
    /// made from (about as large) and the map's overhead.
    fn weight(&self) -> usize {
        2 * self.json.len() + 256
    }
}

/// One shard: its entries and their weight.
#[derive(Default)]
struct Shard {
    map: HashMap<String, Arc<TaskView>>,
    bytes: usize,
}

impl Shard {
    fn insert(&mut self, view: Arc<TaskView>) {
        self.bytes += view.weight();
        if let Some(old) = self.map.insert(view.task.id.clone(), view) {
            self.bytes -= old.weight();
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.map.remove(id) {
            self.bytes -= old.weight();
        }
    }
}

/// A sharded map of task id → latest view, bounded in entries and bytes.
pub struct TaskCache {
    shards: Vec<RwLock<Shard>>,
    hasher: RandomState,
    per_shard: usize,
    bytes_per_shard: usize,
    /// Counts evictions, so a reader's fill cannot resurrect an older version
    /// of an entry evicted while it read the store.
    evictions: AtomicU64,
}

impl TaskCache {
    /// A cache holding about `capacity` tasks and at most 256 MiB of answers.
    pub fn new(capacity: usize) -> TaskCache {
        Self::bounded(capacity, MAX_BYTES)
    }

    fn bounded(capacity: usize, max_bytes: usize) -> TaskCache {
        TaskCache {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            per_shard: (capacity / SHARDS).max(16),
            bytes_per_shard: max_bytes / SHARDS,
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: &str) -> &RwLock<Shard> {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }

    pub fn get(&self, id: &str) -> Option<Arc<TaskView>> {
        self.shard(id).read().map.get(id).cloned()
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
        let mut shard = shard.write();
        if let Some(existing) = shard.map.get(&task.id)
            && existing.task.version >= task.version
        {
            return existing.clone();
        }
        let view = Arc::new(TaskView::new(task));
        if view.json.len() > MAX_ENTRY_BYTES {
            // Too large to keep; an older version must not stay either.
            shard.remove(&view.task.id);
            return view;
        }
        if shard.map.len() >= self.per_shard || shard.bytes + view.weight() > self.bytes_per_shard {
            self.evictions.fetch_add(1, Ordering::AcqRel);
            evict(&mut shard);
        }
        shard.insert(view.clone());
        view
    }
}

/// Frees half a shard (by entries and by bytes), finished tasks first: they are
/// the ones no one waits on.
fn evict(shard: &mut Shard) {
    let (target, target_bytes) = (shard.map.len() / 2, shard.bytes / 2);
    let mut order: Vec<(bool, String)> = shard
        .map
        .iter()
        .map(|(id, v)| (!v.task.status.is_terminal(), id.clone()))
        .collect();
    order.sort_unstable_by_key(|(running, _)| *running);
    for (_, id) in order {
        if shard.map.len() <= target && shard.bytes <= target_bytes {
            break;
        }
        shard.remove(&id);
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
        let total: usize = cache.shards.iter().map(|s| s.read().map.len()).sum();
        assert!(total <= 32 * 16, "{total}");
        cache.fill(task("task_late", 1), token);
        assert!(cache.get("task_late").is_none());
    }

    fn with_result(id: &str, version: i64, bytes: usize) -> Task {
        let mut t = task(id, version);
        t.status = TaskStatus::Completed;
        t.result = Some(serde_json::json!({"b64_json": "A".repeat(bytes)}));
        t
    }

    #[test]
    fn large_answers_are_not_kept_and_bytes_stay_bounded() {
        let budget = 4 << 20;
        let cache = TaskCache::bounded(200_000, budget);
        // A large answer is served but never kept, and replaces no older entry.
        cache.put(task("task_big", 1));
        let view = cache.put(with_result("task_big", 2, MAX_ENTRY_BYTES + 1));
        assert_eq!(view.task.version, 2);
        assert!(cache.get("task_big").is_none());

        // Many mid-sized answers: the total stays under the byte budget.
        for i in 0..400 {
            cache.put(with_result(&format!("task_{i:05}"), 1, 20 << 10));
        }
        let bytes: usize = cache.shards.iter().map(|s| s.read().bytes).sum();
        let counted: usize = cache
            .shards
            .iter()
            .map(|s| s.read().map.values().map(|v| v.weight()).sum::<usize>())
            .sum();
        assert_eq!(bytes, counted);
        assert!(bytes <= budget, "{bytes}");
        assert!(
            bytes > budget / 4,
            "{bytes}: the cache should still be in use"
        );
    }
}
