//! Starting and stopping the gateway: open the store, bootstrap the first keys,
//! start the runner and the channels, serve HTTP, and shut down gracefully.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{App, CommitFanout};
use crate::config::Config;
use crate::events::bus::EventBus;
use crate::ids::now;
use crate::keys::KeyDirectory;
use crate::keys::model::VirtualKey;
use crate::keys::secrets;
use crate::providers::local::LocalProvider;
use crate::providers::models::ModelTable;
use crate::providers::{MediaStore, Providers};
use crate::store::sqlite::SqliteStore;
use crate::store::{Change, Store};
use crate::tasks::cache::TaskCache;
use crate::tasks::runner::{Runner, RunnerDeps};
use crate::webhooks::{EndpointDirectory, Webhooks};

/// Credentials made at first start, shown once.
#[derive(Debug, Clone)]
pub struct FirstStart {
    /// `None` when the operator supplied `CONDUIT_MASTER_KEY`.
    pub master_key: Option<String>,
    pub default_key: String,
    pub default_webhook_secret: String,
}

/// A gateway that is serving.
pub struct RunningServer {
    pub app: Arc<App>,
    pub addr: SocketAddr,
    pub first_start: Option<FirstStart>,
    served: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Begins a graceful shutdown and waits for it to finish.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.app.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after a shutdown was requested).
    pub async fn wait(self) -> std::io::Result<()> {
        self.served.await.unwrap_or(Ok(()))
    }
}

/// The process-wide Prometheus recorder (installed once, shared by every server
/// in the process, which matters for tests).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .expect("valid buckets")
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

/// Opens everything and starts serving on `config.listen`.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let lock = lock_data_dir(&config.data_dir)?;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let mut config = config;
    if config.public_url.ends_with(":0") {
        config.public_url = format!("http://{addr}");
    }

    // 1. The in-memory views the commit fan-out keeps current.
    let keys = Arc::new(KeyDirectory::default());
    let tasks = Arc::new(TaskCache::new(200_000));
    let watchers = Arc::new(crate::tasks::watch::TaskWatchers::default());
    let bus = EventBus::new();
    let endpoints = Arc::new(EndpointDirectory::default());
    let budget_announcements = Arc::new(crate::keys::limits::Announcements::default());
    let local_disables = Arc::new(parking_lot::Mutex::new(std::collections::HashSet::new()));
    let outbox = Arc::new(crate::webhooks::gate::Gate::new());
    let sink = Arc::new(CommitFanout {
        keys: keys.clone(),
        tasks: tasks.clone(),
        watchers: watchers.clone(),
        bus: bus.clone(),
        outbox: outbox.clone(),
        endpoints: endpoints.clone(),
        budget_announcements: budget_announcements.clone(),
        local_disables: local_disables.clone(),
    });

    // 2. The store, and what it already holds.
    if config.database_url.is_some() || config.redis_url.is_some() {
        // LIMITATION: only the embedded SQLite store and in-process bus exist; a
        // PostgreSQL `Store` and a Redis bus would implement the same traits.
        anyhow::bail!(
            "CONDUIT_DATABASE_URL / CONDUIT_REDIS_URL (scale-out mode) are not supported by this build; unset them to run on the embedded store"
        );
    }
    let store = Arc::new(SqliteStore::open(&config.data_dir, sink).await?);
    for key in store.keys().await? {
        keys.put(key);
    }
    for endpoint in store.endpoints().await? {
        endpoints.put(endpoint);
    }
    store.set_planner(Arc::new(crate::webhooks::planner::Planner {
        endpoints: endpoints.clone(),
        gate: outbox.clone(),
    }));
    let store: Arc<dyn Store> = store;
    let (master_key_hash, first_start) = bootstrap(&config, store.as_ref()).await?;

    // 3. Providers and the runner.
    let media = MediaStore::new(config.media_dir.clone(), &config.public_url)?;
    let mut providers = Providers::default();
    providers.add(Arc::new(LocalProvider::new(
        media.clone(),
        config.data_dir.join("uploads"),
        config.local_work,
    )));
    let shutdown = CancellationToken::new();
    let runner = Runner::start(RunnerDeps {
        store: store.clone(),
        providers: providers.clone(),
        max_concurrent: config.max_concurrent_tasks,
        timeout: config.task_timeout,
        shutdown: shutdown.clone(),
    });
    let unfinished = store.unfinished_tasks().await?;
    if !unfinished.is_empty() {
        tracing::info!(count = unfinished.len(), "resuming unfinished tasks");
    }
    for task in &unfinished {
        runner.enqueue(&task.id);
    }

    let app = Arc::new(App {
        config,
        store,
        bus,
        keys,
        tasks,
        watchers,
        limits: Default::default(),
        rate_announcements: Default::default(),
        replay_limits: Default::default(),
        budget_announcements: budget_announcements.clone(),
        local_disables,
        models: ModelTable::default(),
        providers,
        media,
        runner,
        webhooks: Arc::new(Webhooks {
            endpoints,
            wake: outbox,
        }),
        master_key_hash,
        metrics: metrics_handle(),
        shutdown: shutdown.clone(),
    });

    // 4. Background work: webhook dispatch, hubs, key upkeep.
    crate::webhooks::start(app.clone());
    let hubs = crate::hubs::start(app.clone());
    // Hub connections are long-lived: close them (with allowReconnect) as soon as
    // shutdown begins, or the HTTP server's graceful stop would wait for them.
    let closing = app.clone();
    tokio::spawn(async move {
        closing.shutdown.cancelled().await;
        crate::hubs::shutdown(&closing).await;
    });
    tokio::spawn(key_upkeep(app.clone()));
    tokio::spawn(crate::tasks::uploads::keep_clean(app.clone()));

    // 5. Serve until shut down.
    // Keys travel in headers or the query, never in cookies, so any origin may
    // call the API from a browser (the SignalR client sends credentials mode).
    let cors = tower_http::cors::CorsLayer::very_permissive().expose_headers([
        http::header::ETAG,
        http::header::RETRY_AFTER,
        http::header::CONTENT_LENGTH,
    ]);
    // The API routes refuse webhook deliveries in their own per-request layer
    // (`api::observe`); the hubs get the same refusal here.
    let hubs = hubs.layer(axum::middleware::from_fn(
        crate::api::refuse_webhook_deliveries,
    ));
    let router = crate::api::router(app.clone()).merge(hubs).layer(cors);
    let stop = shutdown.clone();
    let serve = crate::listener::serve(listener, router, app.config.header_read_timeout, stop);
    let served = tokio::spawn(async move {
        let result = serve.await;
        drop(lock);
        result
    });
    tracing::info!(%addr, public_url = %app.config.public_url, "conduit listening");
    Ok(RunningServer {
        app,
        addr,
        first_start,
        served,
    })
}

/// Takes the data directory for this process: two gateways on one directory
/// would run the same tasks twice and take each other's webhook leases. The
/// operating system releases the lock when the process ends, however it ends.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("conduit.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Conduit gateway is serving the data directory {} (it holds {}); stop it, or give this one its own CONDUIT_DATA_DIR",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => Err(err.into()),
    }
}

/// Sets up the master key and, on first start, the `default` virtual key.
async fn bootstrap(
    config: &Config,
    store: &dyn Store,
) -> anyhow::Result<([u8; 32], Option<FirstStart>)> {
    let stored = store.setting("master_key_hash").await?;
    let (master_hash, generated_master) = match (&config.master_key, stored) {
        (Some(master), _) => (secrets::hash_key(master), None),
        (None, Some(hex_hash)) => {
            let bytes = hex::decode(hex_hash)?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("stored master key hash is corrupt"))?;
            (hash, None)
        }
        (None, None) => {
            let master = secrets::generate_master_key();
            (secrets::hash_key(&master), Some(master))
        }
    };
    if generated_master.is_some() || config.master_key.is_some() {
        store
            .apply(Change::PutSetting {
                name: "master_key_hash".into(),
                value: hex::encode(master_hash),
            })
            .await?;
    }

    if store.setting("bootstrapped").await?.is_some() {
        return Ok((master_hash, None));
    }
    let value = secrets::generate_key();
    let key = new_key("default", &value);
    let secret = key.webhook_secret.clone();
    store
        .apply(Change::PutKey {
            key: Box::new(key),
            event: None,
        })
        .await?;
    store
        .apply(Change::PutSetting {
            name: "bootstrapped".into(),
            value: json!(crate::ids::format_time(now())).to_string(),
        })
        .await?;
    Ok((
        master_hash,
        Some(FirstStart {
            master_key: generated_master,
            default_key: value,
            default_webhook_secret: secret,
        }),
    ))
}

/// A new enabled key with no limits.
pub fn new_key(name: &str, value: &str) -> VirtualKey {
    VirtualKey {
        id: crate::ids::new_id("key"),
        name: name.to_string(),
        key_hash: secrets::hash_key(value),
        key_prefix: secrets::display_prefix(value),
        enabled: true,
        disabled_reason: None,
        expires_at: None,
        allowed_models: vec![],
        rate_limit_rpm: None,
        rate_limit_rpd: None,
        budget: None,
        spend: 0.0,
        metadata: Default::default(),
        webhook_secret: secrets::generate_webhook_secret(),
        previous_webhook_secret: None,
        created_at: now(),
        updated_at: now(),
    }
}

// LIMITATION: keys changed by another process are seen within two seconds;
// a change notification through the store (or the bus in scale-out mode) would
// make it immediate.

/// Every two seconds: picks up keys changed by another process (the `conduit
/// keys` command) and disables keys whose expiry has passed, telling their channels.
async fn key_upkeep(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut seen = app.store.last_event_position().await.unwrap_or(0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = app.shutdown.cancelled() => return,
        }
        let Ok(position) = app.store.last_event_position().await else {
            continue;
        };
        let Ok(stored) = app.store.keys().await else {
            continue;
        };
        for key in stored {
            let current = app.keys.by_id(&key.id);
            if current
                .as_ref()
                .is_none_or(|c| c.updated_at < key.updated_at)
            {
                app.keys.put(key.clone());
            }
            if key.enabled && key.expires_at.is_some_and(|at| at <= now()) {
                let mut expired = key.clone();
                expired.enabled = false;
                expired.disabled_reason = Some("expired".into());
                expired.updated_at = now();
                let data = json!({"keyId": key.id, "keyName": key.name, "reason": "expired"});
                let change = Change::PutKey {
                    key: Box::new(expired),
                    event: Some(("key.disabled".into(), data)),
                };
                if let Err(err) = app.store.apply(change).await {
                    tracing::warn!(key_id = %key.id, cause = %err, "cannot disable expired key");
                }
            }
        }
        announce_disabled_elsewhere(&app, seen, position).await;
        seen = position;
    }
}

/// A key disabled by another process (`conduit keys disable`) wrote its
/// `key.disabled` event, and its webhook deliveries, to the log; only this
/// process's bus is missing it. Publishing it here closes the key's hub
/// connections and event streams, as an in-process disable does, and the
/// claim loop is woken for the deliveries. Events this process committed
/// itself were published at their commit and are skipped.
async fn announce_disabled_elsewhere(app: &App, after_position: i64, up_to: i64) {
    let query = crate::store::EventQuery {
        key_id: None,
        task_id: None,
        after_position,
        types: crate::events::filter::TypeFilter::parse("key.disabled").expect("a valid pattern"),
        limit: 1000,
    };
    let events = match app.store.events(&query).await {
        Ok(events) => events,
        Err(err) => {
            tracing::warn!(cause = %err, "cannot read key.disabled events");
            return;
        }
    };
    let local = std::mem::take(&mut *app.local_disables.lock());
    let mut found = false;
    let fresh = events
        .into_iter()
        .filter(|e| e.position <= up_to && !local.contains(&e.id));
    for event in fresh {
        found = true;
        app.bus.publish(Arc::new(event));
    }
    if found {
        app.webhooks.wake.wake_claims();
    }
}
