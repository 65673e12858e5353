//! In-memory group membership.
//!
//! The group map is only locked to copy member handles; messages are queued after the lock
//! is released. Each connection also lists its groups so that disconnecting (or
//! `groups_of`) does not scan every group.

use std::collections::{HashMap, HashSet};
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
    pub fn members_of_any(&self, groups: &[&str]) -> Vec<Arc<ConnInner>> {
        let map = self.map.read();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for group in groups {
            if let Some(members) = map.get(*group) {
                for (id, conn) in members {
                    if seen.insert(id.as_str()) {
                        out.push(conn.clone());
                    }
                }
            }
        }
        out
    }

    pub fn groups_of(conn: &ConnInner) -> Vec<String> {
        conn.groups.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: &str) -> Arc<ConnInner> {
        Arc::new(ConnInner::new(id.into(), id.into(), Arc::new(()), false))
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
