//! Where the store's writer and the dispatcher meet.
//!
//! - The planner asks [`Gate::accepts`] inside the writing transaction whether
//!   the dispatcher can take a delivery to a receiver right now. If so, and the
//!   delivery heads its lane, the writer leases it in that transaction and the
//!   commit hands it over ([`Gate::committed`]): the first attempt starts
//!   without another round trip through the database.
//! - Everything else waits in the outbox until the claim loop picks it up. The
//!   loop sleeps until woken ([`Gate::wake_claims`]) or until the next retry is
//!   due; it never polls the table on a timer.
//! - The dispatcher publishes which receivers are saturated (their concurrency is used
//!   up and a few deliveries already wait): neither the planner nor a claim
//!   takes more deliveries for those, so they stay in the outbox and hold no
//!   memory and no share of the global capacity.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::{Notify, mpsc};

use super::model::Dispatch;

/// The meeting point; one per process, shared as `Arc<Gate>`.
pub struct Gate {
    /// Wakes the claim loop.
    claims: Notify,
    hot: mpsc::UnboundedSender<Vec<Dispatch>>,
    /// Taken once by the dispatcher when it starts.
    hot_receiver: Mutex<Option<mpsc::UnboundedReceiver<Vec<Dispatch>>>>,
    /// Whether a dispatcher runs (no hot leases otherwise).
    running: AtomicBool,
    /// Receivers the dispatcher cannot take more deliveries for now.
    saturated: RwLock<HashSet<String>>,
    /// Deliveries this process holds: waiting in memory or in flight.
    held: AtomicUsize,
    /// Most deliveries held at once before new ones stay in the outbox.
    max_held: AtomicUsize,
    /// When the claim loop next looks at the outbox without a wake.
    planned: parking_lot::Mutex<Option<Instant>>,
    /// Bodies of recent events whose deliveries wait in the outbox, so that
    /// sending them later needs no read of the event log.
    bodies: parking_lot::Mutex<BodyCache>,
}

/// Event bodies by log position; the oldest go first.
#[derive(Default)]
struct BodyCache {
    map: HashMap<i64, Bytes>,
    order: VecDeque<i64>,
}

/// Event bodies kept at most.
const CACHED_BODIES: usize = 16_384;

impl BodyCache {
    fn put(&mut self, position: i64, body: Bytes) {
        if self.map.insert(position, body).is_none() {
            self.order.push_back(position);
        }
        while self.order.len() > CACHED_BODIES {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn get(&self, position: i64) -> Option<Bytes> {
        self.map.get(&position).cloned()
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    pub fn new() -> Gate {
        let (hot, receiver) = mpsc::unbounded_channel();
        Gate {
            claims: Notify::new(),
            hot,
            hot_receiver: Mutex::new(Some(receiver)),
            running: AtomicBool::new(false),
            saturated: RwLock::new(HashSet::new()),
            held: AtomicUsize::new(0),
            max_held: AtomicUsize::new(0),
            planned: parking_lot::Mutex::new(None),
            bodies: parking_lot::Mutex::new(BodyCache::default()),
        }
    }

    /// Called by the dispatcher as it starts: from now on hot leases are made.
    pub(super) fn open(&self, max_held: usize) -> Option<mpsc::UnboundedReceiver<Vec<Dispatch>>> {
        self.max_held.store(max_held, Ordering::Relaxed);
        let receiver = self.hot_receiver.lock().ok()?.take();
        self.running.store(receiver.is_some(), Ordering::Release);
        receiver
    }

    /// Stops hot leases (shutdown).
    pub(super) fn close(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// Whether the dispatcher can take a new delivery to `receiver` at once.
    pub fn accepts(&self, receiver: &str) -> bool {
        self.running.load(Ordering::Acquire)
            && self.held.load(Ordering::Relaxed) < self.max_held.load(Ordering::Relaxed)
            && !self.saturated.read().contains(receiver)
    }

    /// After a commit: hands over what the writer leased, and keeps the bodies
    /// of events with deliveries left in the outbox.
    ///
    /// A commit never wakes the claim loop: a delivery is left in the outbox
    /// only when its lane is busy (the attempt before it leases it when done),
    /// its URL is saturated or the dispatcher is full (both wake the loop when
    /// that ends), so a claim now would find nothing.
    pub fn committed(&self, applied: &crate::store::Applied) {
        let (written, leased) = (applied.deliveries, &applied.leased);
        if written > leased.len() {
            let mut bodies = self.bodies.lock();
            for event in &applied.events {
                bodies.put(event.position, event.body.clone());
            }
        }
        if !leased.is_empty() {
            self.held.fetch_add(leased.len(), Ordering::Relaxed);
            if self.hot.send(leased.to_vec()).is_err() {
                self.held.fetch_sub(leased.len(), Ordering::Relaxed);
            }
        }
    }

    /// A recent event's body, if still cached.
    pub(super) fn body(&self, position: i64) -> Option<Bytes> {
        self.bodies.lock().get(position)
    }

    /// Wakes the claim loop now (a retry was asked for, room freed up).
    pub fn wake_claims(&self) {
        self.claims.notify_one();
    }

    /// A delivery becomes due at `at` (a retry was scheduled): wakes the claim
    /// loop if it planned to look later than that.
    pub(super) fn due_at(&self, at: Instant) {
        let mut planned = self.planned.lock();
        if planned.is_none_or(|p| at < p) {
            *planned = Some(at);
            drop(planned);
            self.claims.notify_one();
        }
    }

    /// The claim loop records when it will look next (`None`: only when woken).
    pub(super) fn plan(&self, at: Option<Instant>) {
        *self.planned.lock() = at;
    }

    /// Waits for a wake.
    pub(super) async fn woken(&self) {
        self.claims.notified().await;
    }

    /// How many more deliveries a claim may take.
    pub(super) fn room(&self) -> usize {
        self.max_held
            .load(Ordering::Relaxed)
            .saturating_sub(self.held.load(Ordering::Relaxed))
    }

    /// Counts deliveries taken by a claim.
    pub(super) fn take(&self, count: usize) {
        self.held.fetch_add(count, Ordering::Relaxed);
    }

    /// Counts deliveries finished, dropped or given back.
    pub(super) fn put_back(&self, count: usize) {
        let before = self.held.fetch_sub(count, Ordering::Relaxed);
        let low = self.max_held.load(Ordering::Relaxed) / 2;
        if before >= low && before - count < low {
            // Room for a large claim again (half empty, so that claims are few
            // and big rather than many and small).
            self.claims.notify_one();
        }
    }

    /// Deliveries held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Marks `receiver` saturated or not; returns true if that changed.
    pub(super) fn set_saturated(&self, receiver: &str, saturated: bool) -> bool {
        let known = self.saturated.read().contains(receiver);
        if known == saturated {
            return false;
        }
        let mut set = self.saturated.write();
        if saturated {
            set.insert(receiver.to_string())
        } else {
            set.remove(receiver)
        }
    }

    /// The saturated receivers, for a claim to skip.
    pub(super) fn saturated(&self) -> Vec<String> {
        self.saturated.read().iter().cloned().collect()
    }
}
