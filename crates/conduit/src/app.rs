//! The running gateway's shared state, and what happens after every commit.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::bus::EventBus;
use crate::keys::KeyDirectory;
use crate::keys::limits::RateLimits;
use crate::providers::models::ModelTable;
use crate::providers::{MediaStore, Providers};
use crate::store::{Applied, CommitSink, Store};
use crate::tasks::cache::TaskCache;
use crate::tasks::runner::Runner;
use crate::webhooks::Webhooks;

/// Everything a request handler or background worker needs; shared as `Arc<App>`.
pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub bus: EventBus,
    pub keys: Arc<KeyDirectory>,
    pub tasks: Arc<TaskCache>,
    /// Long polls waiting for a task to change.
    pub watchers: Arc<crate::tasks::watch::TaskWatchers>,
    pub limits: RateLimits,
    pub rate_announcements: crate::keys::limits::Announcements,
    pub replay_limits: crate::keys::limits::ReplayLimits,
    pub budget_announcements: Arc<crate::keys::limits::Announcements>,
    /// Ids of the `key.disabled` events this process committed (and published)
    /// since the key upkeep last looked; see `server::key_upkeep`.
    pub local_disables: Arc<parking_lot::Mutex<std::collections::HashSet<String>>>,
    pub models: ModelTable,
    pub providers: Providers,
    pub media: MediaStore,
    pub runner: Arc<Runner>,
    pub webhooks: Arc<Webhooks>,
    /// SHA-256 of the master key.
    pub master_key_hash: [u8; 32],
    pub metrics: PrometheusHandle,
    /// Cancelled when the process begins to shut down.
    pub shutdown: CancellationToken,
}

/// Keeps the in-memory views in step with the store and wakes the channels.
/// Runs inside the store's writer, in commit order, so it must stay cheap.
pub struct CommitFanout {
    pub keys: Arc<KeyDirectory>,
    pub tasks: Arc<TaskCache>,
    pub watchers: Arc<crate::tasks::watch::TaskWatchers>,
    pub bus: EventBus,
    /// Hands the webhook dispatcher what a commit leased, and wakes its claims.
    pub outbox: Arc<crate::webhooks::gate::Gate>,
    pub endpoints: Arc<crate::webhooks::EndpointDirectory>,
    /// A `key.budget.exceeded` from any path (the spend reaching the budget, or
    /// a refusal) starts the key's one-a-minute window.
    pub budget_announcements: Arc<crate::keys::limits::Announcements>,
    pub local_disables: Arc<parking_lot::Mutex<std::collections::HashSet<String>>>,
}

impl CommitSink for CommitFanout {
    fn committed(&self, applied: &Applied) {
        if let Some(task) = &applied.task {
            self.tasks.put(task.clone());
            self.watchers.changed(&task.id);
        }
        if let Some(key) = &applied.key {
            self.keys.put(key.clone());
        }
        if let Some(id) = &applied.deleted_key {
            self.keys.remove(id);
            self.endpoints.remove_owner(id);
        }
        if let Some(endpoint) = &applied.endpoint {
            self.endpoints.put(endpoint.clone());
        }
        if let Some(id) = &applied.deleted_endpoint {
            self.endpoints.remove(id);
        }
        for event in &applied.events {
            if event.event_type == "key.budget.exceeded"
                && let Some(key_id) = &event.key_id
            {
                self.budget_announcements.should_announce(key_id);
            }
            if event.event_type == "key.disabled" {
                self.local_disables.lock().insert(event.id.clone());
            }
            self.bus.publish(event.clone());
        }
        if applied.deliveries > 0 {
            self.outbox.committed(applied);
        }
    }
}
