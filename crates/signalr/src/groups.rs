//! In-memory group membership.
//!
//! The group map is only locked to copy member handles; messages are queued after the lock
//! is released. Each connection also lists its groups so that disconnecting (or
//! `groups_of`) does not scan every group.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::RwLock;

use crate::connection::ConnInner;

// LIMITATION: membership lives in this process only (no backplane), so a hub scales to one
// server; a shared store with pub/sub between servers would lift this.
#[derive(Default)]
pub(crate) struct Groups {
    map: RwLock<HashMap<String, HashMap<String, Arc<ConnInner>>>>,
}

impl Groups {
    pub fn add(&self, conn: &Arc<ConnInner>, group: &str) {
        let mut map = self.map.write();
        // Checked under the lock: `remove_all` runs after `finalized` is set and takes the
        // same lock, so a finalized connection is never left in a group.
        if conn.finalized.load(Ordering::SeqCst) {
            return;
        }
        let members = map.entry(group.to_owned()).or_default();
        if members.insert(conn.id.clone(), conn.clone()).is_none() {
            conn.groups.lock().push(group.to_owned());
        }
    }

    pub fn remove(&self, conn: &ConnInner, group: &str) {
        let mut map = self.map.write();
        if let Some(members) = map.get_mut(group) {
            members.remove(&conn.id);
            if members.is_empty() {
                map.remove(group);
            }
        }
        conn.groups.lock().retain(|g| g != group);
    }

    pub fn remove_all(&self, conn: &ConnInner) {
        let mut map = self.map.write();
        let groups = std::mem::take(&mut *conn.groups.lock());
        for group in groups {
            if let Some(members) = map.get_mut(&group) {
                members.remove(&conn.id);
                if members.is_empty() {
                    map.remove(&group);
                }
            }
        }
    }

    pub fn members(&self, group: &str) -> Vec<Arc<ConnInner>> {
        self.map
            .read()
            .get(group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Members of any of `groups`, each once.
    ///
    /// The common case, where only one of the groups has members (e.g. a key's group and
    /// an unused task group), is a plain copy; otherwise duplicates are found by address,
    /// which is cheaper to hash than the connection id.
    pub fn members_of_any(&self, groups: &[&str]) -> Vec<Arc<ConnInner>> {
        let map = self.map.read();
        let found: Vec<&HashMap<String, Arc<ConnInner>>> =
            groups.iter().filter_map(|g| map.get(*g)).collect();
        match found.as_slice() {
            [] => Vec::new(),
            [only] => only.values().cloned().collect(),
            several => {
                let total = several.iter().map(|m| m.len()).sum();
                let mut seen: HashSet<usize, BuildHasherDefault<AddressHasher>> =
                    HashSet::with_capacity_and_hasher(total, Default::default());
                let mut out = Vec::with_capacity(total);
                for members in several {
                    for conn in members.values() {
                        if seen.insert(Arc::as_ptr(conn) as usize) {
                            out.push(conn.clone());
                        }
                    }
                }
                out
            }
        }
    }

    pub fn groups_of(conn: &ConnInner) -> Vec<String> {
        conn.groups.lock().clone()
    }
}

/// Hashes a heap address (for deduplicating connections): the low bits are alignment,
/// so the address is mixed by one multiplication.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(26);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: &str) -> Arc<ConnInner> {
        Arc::new(ConnInner::new(
            id.into(),
            id.into(),
            Arc::new(()),
            None,
            false,
        ))
    }

    #[test]
    fn membership_and_dedup() {
        let g = Groups::default();
        let (a, b) = (conn("a"), conn("b"));
        g.add(&a, "x");
        g.add(&a, "x");
        g.add(&a, "y");
        g.add(&b, "y");
        assert_eq!(g.members("x").len(), 1);
        assert_eq!(g.members_of_any(&["x", "y"]).len(), 2);
        assert_eq!(Groups::groups_of(&a), vec!["x", "y"]);
        g.remove(&a, "x");
        assert!(g.members("x").is_empty());
        g.remove_all(&a);
        assert_eq!(g.members("y").len(), 1);
        assert!(Groups::groups_of(&a).is_empty());
        b.finalized.store(true, Ordering::SeqCst);
        g.add(&b, "z");
        assert!(g.members("z").is_empty());
    }
}
