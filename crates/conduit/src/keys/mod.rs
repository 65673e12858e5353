//! Virtual keys: the record, secrets, the in-memory directory used to
//! authenticate every request, the auth extractors, and rate limits.

pub mod auth;
pub mod limits;
pub mod model;
pub mod secrets;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use model::VirtualKey;

/// Every key by hash and by id, refreshed after each commit that changes one.
///
/// Authentication is a SHA-256 of the presented value and one map lookup: the
/// presented value is never compared with stored values byte by byte.
#[derive(Default)]
pub struct KeyDirectory {
    inner: RwLock<Maps>,
}

#[derive(Default)]
struct Maps {
    by_hash: HashMap<[u8; 32], Arc<VirtualKey>>,
    by_id: HashMap<String, Arc<VirtualKey>>,
}

impl KeyDirectory {
    pub fn load(keys: Vec<VirtualKey>) -> KeyDirectory {
        let directory = KeyDirectory::default();
        for key in keys {
            directory.put(key);
        }
        directory
    }

    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<Arc<VirtualKey>> {
        self.inner.read().by_hash.get(hash).cloned()
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<VirtualKey>> {
        self.inner.read().by_id.get(id).cloned()
    }

    /// Why the key `id` may not be used now, as the code and message of the
    /// 401 a client gets; `None` if it may. A key that is gone is refused like
    /// an unknown one.
    pub fn refusal(&self, id: &str) -> Option<(&'static str, &'static str)> {
        match self.by_id(id) {
            None => Some(("invalid_api_key", "Incorrect API key provided.")),
            Some(key) => key.refusal(crate::ids::now()),
        }
    }

    pub fn put(&self, key: VirtualKey) {
        let key = Arc::new(key);
        let mut maps = self.inner.write();
        if let Some(old) = maps.by_id.insert(key.id.clone(), key.clone()) {
            maps.by_hash.remove(&old.key_hash);
        }
        maps.by_hash.insert(key.key_hash, key);
    }

    pub fn remove(&self, id: &str) {
        let mut maps = self.inner.write();
        if let Some(old) = maps.by_id.remove(id) {
            maps.by_hash.remove(&old.key_hash);
        }
    }

    pub fn all(&self) -> Vec<Arc<VirtualKey>> {
        let mut keys: Vec<_> = self.inner.read().by_id.values().cloned().collect();
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        keys
    }
}
