//! The dispatcher: decides which leased delivery is sent when.
//!
//! One task owns all scheduling state, so none of it needs a lock. Leased
//! deliveries arrive from the commit hand-over, from claims, and as the next of
//! a lane when an attempt is recorded. Each goes into its receiver's slot (a
//! registered endpoint, or a task's own `webhook_url`: see
//! [`super::model::receiver`]), and a slot starts attempts while three limits
//! allow:
//!
//! - the global limit on attempts in flight (`webhook_concurrency`);
//! - the receiver's own concurrency limit, which adapts: it grows by one with
//!   each prompt answer and halves on a timeout, connection error or 5xx, so a
//!   dead receiver soon holds a single connection and a healthy one ramps up
//!   under load;
//! - the endpoint's `rate_limit` (deliveries per second), as a minimum spacing.
//!
//! A receiver whose slot is full (in flight plus waiting reach twice its limit)
//! is published as saturated on the [`Gate`]: the planner and the claims leave
//! its deliveries in the outbox until the slot drains, so a slow receiver holds
//! only its own deliveries and never the memory or capacity others need. Two
//! keys' endpoints on the same URL are two receivers: one key's rate limit or
//! backlog never delays the other's. Ordering needs nothing here: only the head
//! of a lane is ever leased.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::attempt::{self, Finished};
use super::gate::Gate;
use super::model::Dispatch;
use super::retry::RetryPolicy;
use super::ssrf::Policy;
use crate::app::App;

// LIMITATION: the per-receiver limits below are constants, and what a
// receiver's limit learned lives in memory only (a restart starts every
// receiver at the initial limit again). Settings, or a per-endpoint override,
// would lift this.

/// A receiver's concurrency limit when first seen.
const INITIAL_LIMIT: usize = 2;
/// A receiver's concurrency limit at most.
const MAX_LIMIT: usize = 32;
/// Deliveries waiting in one slot beyond which more are given back to the outbox.
const MAX_WAITING: usize = 64;

// LIMITATION: the global limits (attempts in flight, deliveries held in
// memory) are shared first come, first served: one key with hundreds of slow
// endpoints can fill them and delay other keys' deliveries (each receiver's
// own limit and the saturation gate bound this per receiver, not per key). A
// share per key, served in turn, would isolate keys fully.

/// What an attempt needs besides the delivery.
pub(super) struct Context {
    pub app: Arc<App>,
    pub client: reqwest::Client,
    pub policy: Policy,
    pub retry: RetryPolicy,
    pub recorder: super::recorder::Recorder,
}

/// Messages to the dispatcher task.
pub(super) enum Msg {
    /// Leased deliveries to send (claimed or handed over by a commit).
    Deliver(Vec<Dispatch>),
    /// An attempt is over.
    Finished(Box<Finished>),
    /// A receiver's rate limit allows the next start now.
    Pump(String),
}

/// One receiver's share of the dispatcher.
struct Slot {
    in_flight: usize,
    waiting: VecDeque<Dispatch>,
    limit: usize,
    /// The earliest next start allowed by the endpoint's rate limit.
    next_start: Option<Instant>,
    timer_armed: bool,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            in_flight: 0,
            waiting: VecDeque::new(),
            limit: INITIAL_LIMIT,
            next_start: None,
            timer_armed: false,
        }
    }

    fn saturated(&self) -> bool {
        self.in_flight + self.waiting.len() >= 2 * self.limit
    }
}

/// The dispatcher task's state.
pub(super) struct Dispatcher {
    ctx: Arc<Context>,
    gate: Arc<Gate>,
    tx: mpsc::UnboundedSender<Msg>,
    slots: HashMap<String, Slot>,
    /// Receivers with waiting deliveries held back by the global limit, oldest first.
    blocked: VecDeque<String>,
    blocked_set: HashSet<String>,
    in_flight: usize,
    capacity: usize,
}

impl Dispatcher {
    pub(super) fn new(ctx: Arc<Context>, gate: Arc<Gate>, tx: mpsc::UnboundedSender<Msg>) -> Self {
        let capacity = ctx.app.config.webhook_concurrency;
        Dispatcher {
            ctx,
            gate,
            tx,
            slots: HashMap::new(),
            blocked: VecDeque::new(),
            blocked_set: HashSet::new(),
            in_flight: 0,
            capacity,
        }
    }

    /// Runs until shutdown.
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut hot: mpsc::UnboundedReceiver<Vec<Dispatch>>,
    ) {
        let shutdown = self.ctx.app.shutdown.clone();
        loop {
            let msg = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(msg) = rx.recv() => msg,
                Some(list) = hot.recv() => Msg::Deliver(list),
                else => break,
            };
            match msg {
                Msg::Deliver(list) => self.deliver(list),
                Msg::Finished(finished) => self.finished(*finished),
                Msg::Pump(receiver) => {
                    if let Some(slot) = self.slots.get_mut(&receiver) {
                        slot.timer_armed = false;
                    }
                    self.pump(&receiver);
                }
            }
            metrics::gauge!("conduit_webhook_in_flight").set(self.in_flight as f64);
        }
        self.gate.close();
    }

    /// Queues leased deliveries in their slots and starts what may start.
    fn deliver(&mut self, list: Vec<Dispatch>) {
        let mut touched = Vec::new();
        let mut give_back = Vec::new();
        for dispatch in list {
            let receiver = dispatch.delivery.receiver();
            let slot = self.slots.entry(receiver.clone()).or_insert_with(Slot::new);
            if slot.waiting.len() >= MAX_WAITING {
                give_back.push(dispatch.delivery.id);
                continue;
            }
            slot.waiting.push_back(dispatch);
            touched.push(receiver);
        }
        touched.dedup();
        for receiver in touched {
            self.pump(&receiver);
        }
        if !give_back.is_empty() {
            self.give_back(give_back);
        }
    }

    /// An attempt ended: free its places, adapt the receiver's limit, take the lane's next.
    fn finished(&mut self, finished: Finished) {
        self.in_flight -= 1;
        self.gate.put_back(1);
        if let Some(slot) = self.slots.get_mut(&finished.receiver) {
            slot.in_flight -= 1;
            match finished.healthy {
                Some(true) => slot.limit = (slot.limit + 1).min(MAX_LIMIT),
                Some(false) => slot.limit = (slot.limit / 2).max(1),
                None => {}
            }
        }
        if let Some(next) = finished.next {
            self.gate.take(1);
            self.deliver(vec![next]);
        }
        self.pump(&finished.receiver);
        while self.in_flight < self.capacity {
            let Some(receiver) = self.blocked.pop_front() else {
                break;
            };
            self.blocked_set.remove(&receiver);
            self.pump(&receiver);
        }
        self.forget_idle();
    }

    /// Starts the waiting deliveries of one receiver while the limits allow.
    fn pump(&mut self, receiver: &str) {
        let Some(slot) = self.slots.get_mut(receiver) else {
            return;
        };
        let stale_after = Duration::from_secs(super::LEASE_SECS / 2);
        let mut dropped = 0;
        while slot.in_flight < slot.limit {
            let Some(head) = slot.waiting.front() else {
                break;
            };
            // 1. A lease held too long is not trusted: a later claim retakes the row.
            if head.leased_at.elapsed() > stale_after {
                slot.waiting.pop_front();
                dropped += 1;
                continue;
            }

            // 2. The global limit.
            if self.in_flight >= self.capacity {
                if self.blocked_set.insert(receiver.to_string()) {
                    self.blocked.push_back(receiver.to_string());
                }
                break;
            }

            // 3. The endpoint's rate limit.
            // LIMITATION: the limit is a minimum spacing with no burst; a token
            // bucket per endpoint would allow short bursts within the rate.
            let rate = head.delivery.endpoint_id.as_deref().and_then(|id| {
                self.ctx
                    .app
                    .webhooks
                    .endpoints
                    .get(id)
                    .and_then(|e| e.rate_limit)
            });
            if let Some(rate) = rate.filter(|r| *r > 0) {
                let now = Instant::now();
                if let Some(at) = slot.next_start.filter(|at| *at > now) {
                    if !slot.timer_armed {
                        slot.timer_armed = true;
                        let tx = self.tx.clone();
                        let receiver = receiver.to_string();
                        tokio::spawn(async move {
                            tokio::time::sleep_until(at.into()).await;
                            let _ = tx.send(Msg::Pump(receiver));
                        });
                    }
                    break;
                }
                let spacing = Duration::from_secs_f64(1.0 / f64::from(rate));
                slot.next_start = Some(slot.next_start.map_or(now, |at| at.max(now)) + spacing);
            }

            // 4. Start it.
            let dispatch = slot.waiting.pop_front().expect("head exists");
            slot.in_flight += 1;
            self.in_flight += 1;
            let ctx = self.ctx.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let finished = attempt::run(&ctx, dispatch).await;
                let _ = tx.send(Msg::Finished(Box::new(finished)));
            });
        }
        let saturated = slot.saturated();
        if dropped > 0 {
            self.gate.put_back(dropped);
        }
        if self.gate.set_saturated(receiver, saturated) && !saturated {
            // The receiver can take more: whatever waits for it in the outbox may come.
            self.gate.wake_claims();
        }
    }

    /// Gives leases back to the outbox (more arrived than a slot may hold).
    fn give_back(&self, ids: Vec<String>) {
        self.gate.put_back(ids.len());
        let store = self.ctx.app.store.clone();
        let gate = self.gate.clone();
        tokio::spawn(async move {
            if let Err(err) = store.release_deliveries(ids).await {
                tracing::warn!(cause = %err, "cannot release webhook leases");
            }
            gate.wake_claims();
        });
    }

    /// Forgets idle receivers that learned nothing worth keeping, when there are many.
    fn forget_idle(&mut self) {
        if self.slots.len() < 4096 {
            return;
        }
        self.slots.retain(|_, slot| {
            slot.in_flight > 0 || !slot.waiting.is_empty() || slot.limit < INITIAL_LIMIT
        });
    }
}
