//! Wake-ups for long polls: a long poll waits on its task's own `Notify`, and the
//! commit fan-out wakes only the waiters of the task that changed. With many
//! long polls open this costs one map lookup per commit, not one wake-up per
//! poll per event.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Task id → the `Notify` its current waiters share.
#[derive(Default)]
pub struct TaskWatchers {
    map: Mutex<HashMap<String, Weak<Notify>>>,
}

impl TaskWatchers {
    /// The shared `Notify` of `task_id`; keep it while waiting.
    pub fn watch(&self, task_id: &str) -> Arc<Notify> {
        let mut map = self.map.lock();
        if let Some(existing) = map.get(task_id).and_then(Weak::upgrade) {
            return existing;
        }
        // Forget tasks nobody waits on any more before the map grows.
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let notify = Arc::new(Notify::new());
        map.insert(task_id.to_string(), Arc::downgrade(&notify));
        notify
    }

    /// Wakes everyone waiting on `task_id`.
    pub fn changed(&self, task_id: &str) {
        let notify = {
            let mut map = self.map.lock();
            match map.get(task_id).map(Weak::upgrade) {
                Some(Some(n)) => Some(n),
                Some(None) => {
                    map.remove(task_id);
                    None
                }
                None => None,
            }
        };
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn only_the_changed_task_wakes_its_waiters() {
        let watchers = TaskWatchers::default();
        let a = watchers.watch("task_a");
        let b = watchers.watch("task_b");
        {
            let wait_a = a.notified();
            let wait_b = b.notified();
            tokio::pin!(wait_a);
            tokio::pin!(wait_b);
            wait_a.as_mut().enable();
            wait_b.as_mut().enable();
            watchers.changed("task_a");
            tokio::time::timeout(Duration::from_secs(1), wait_a)
                .await
                .expect("a woke");
            assert!(
                tokio::time::timeout(Duration::from_millis(50), wait_b)
                    .await
                    .is_err()
            );
        }
        drop((a, b));
        watchers.changed("task_a");
        assert!(watchers.map.lock().get("task_a").is_none());
    }
}
