//! Webhooks: the outbox planner (which deliveries an event needs), the endpoint
//! directory, and the dispatcher that signs, sends, retries and records them.
//!
//! Deliveries are written by the store in the same transaction as their event
//! (see [`planner`]), so an accepted event is never without its deliveries. A
//! delivery is sent only under a lease: the first attempt of a delivery that
//! heads its lane is leased in that same transaction and handed to the
//! dispatcher after the commit ([`gate`]); retries and anything left behind are
//! claimed later ([`claimer`]). A killed process loses nothing: its leases are
//! released when the next one starts, and every delivery it held is sent again
//! (at least once, same `webhook-id`).
//!
//! Files: [`planner`] (which deliveries), [`gate`] (writer ↔ dispatcher),
//! [`dispatcher`] (concurrency, rate limits), [`attempt`] (one HTTP attempt),
//! [`signing`], [`client`] (HTTP client with the SSRF-guarded resolver),
//! [`retry`] (schedule, `Retry-After`), [`recorder`] (group-recording of
//! attempts), [`health`] (auto-disable), [`api`].

pub mod api;
mod attempt;
mod claimer;
pub mod client;
mod dispatcher;
pub mod gate;
mod health;
pub mod model;
pub mod planner;
mod recorder;
pub mod retry;
pub mod signing;
pub mod ssrf;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::events::filter::TypeFilter;
use gate::Gate;
use model::Endpoint;

/// How long a lease on a delivery lasts (seconds). Longer than any attempt
/// (the timeout) plus the time a delivery may wait in memory for its URL.
pub const LEASE_SECS: u64 = 60;

/// Registered endpoints in memory, with their parsed event filters.
#[derive(Default)]
pub struct EndpointDirectory {
    inner: RwLock<HashMap<String, (Arc<Endpoint>, TypeFilter)>>,
    /// Held while an endpoint record is read, changed and written back (by the
    /// API and by the health tracker), so neither undoes the other's change.
    edits: tokio::sync::Mutex<()>,
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

    /// Forgets every endpoint of a deleted key.
    pub fn remove_owner(&self, key_id: &str) {
        self.inner
            .write()
            .retain(|_, (e, _)| e.key_id.as_deref() != Some(key_id));
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

    /// Serialises read-modify-write of endpoint records.
    pub async fn edit(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.edits.lock().await
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
    /// Receives what each commit leased and wakes the claim loop.
    pub wake: Arc<Gate>,
}

/// The guard's policy from the configuration.
pub fn policy(config: &crate::config::Config) -> ssrf::Policy {
    let own_authority = url::Url::parse(&config.public_url).ok().and_then(|u| {
        let host = u.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Some((host, u.port_or_known_default()?))
    });
    ssrf::Policy {
        allow: config.webhook_allow_cidrs.clone(),
        https_only: config.webhook_https_only,
        own_port: config.listen.port(),
        own_authority,
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
        policy.permitted(&addrs, |ip| ip).map_err(refuse)?;
        if port == policy.own_port && addrs.iter().any(|ip| ip.is_loopback()) {
            return Err(refuse(
                "A webhook may not call the gateway itself.".to_string(),
            ));
        }
    }
    Ok(url.to_string())
}

/// Starts the dispatcher and its claim loop; they stop with the app's shutdown.
pub fn start(app: Arc<crate::app::App>) {
    let gate = app.webhooks.wake.clone();
    let Some(hot) = gate.open(app.config.webhook_concurrency * 4) else {
        tracing::warn!("webhook dispatcher already started");
        return;
    };
    let policy = policy(&app.config);
    let ctx = Arc::new(dispatcher::Context {
        client: client::build(policy.clone(), app.config.webhook_timeout),
        policy,
        retry: retry::RetryPolicy {
            schedule: app.config.webhook_retry_schedule.clone(),
            retry_after_cap: app.config.webhook_retry_after_cap,
        },
        recorder: recorder::Recorder::start(app.store.clone()),
        app: app.clone(),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let dispatcher = dispatcher::Dispatcher::new(ctx, gate.clone(), tx.clone());
    tokio::spawn(dispatcher.run(rx, hot));
    tokio::spawn(claimer::run(app, gate, tx));
    tracing::info!("webhook dispatcher started");
}

/// Most custom headers a task or an endpoint may add to its deliveries.
pub const MAX_CUSTOM_HEADERS: usize = 20;

/// What is wrong with custom delivery headers, if anything: too many, a name
/// Conduit sets itself, an invalid name, or a value that is not a header-safe
/// string of at most 1024 bytes. `field` names the request field in the message.
pub fn custom_headers_problem(
    field: &str,
    headers: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    if headers.len() > MAX_CUSTOM_HEADERS {
        return Some(format!(
            "`{field}` may hold at most {MAX_CUSTOM_HEADERS} headers."
        ));
    }
    for (name, value) in headers {
        if signing::is_reserved(name) {
            return Some(format!(
                "The header `{name}` is set by Conduit and cannot be replaced."
            ));
        }
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Some(format!("`{name}` is not a valid header name."));
        }
        let safe = matches!(value, serde_json::Value::String(v)
            if v.len() <= 1024 && reqwest::header::HeaderValue::from_str(v).is_ok());
        if !safe {
            return Some(format!(
                "The value of `{name}` must be a header-safe string of at most 1024 bytes."
            ));
        }
    }
    None
}
