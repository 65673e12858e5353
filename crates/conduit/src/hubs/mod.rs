//! Conduit's SignalR hubs, on top of the protocol crate `signalr`.
//!
//! Four hubs share one handler type. Every connection joins its key's groups at
//! connect, so it hears its own key's task events without subscribing. The
//! fan-out task follows the event bus and sends each event once per hub, to the
//! groups that want it; the protocol crate serializes a message once per
//! protocol and shares the bytes with every recipient.
//!
//! Groups (per hub):
//! - `key:{key}`: every connection of a key (key events, closing on disable);
//! - `all:{key}`: connections hearing all of the key's task events (the default);
//! - `task:{task}`: connections subscribed to one task;
//! - `type:{key}:{type}`: connections subscribed to one task type of their key;
//! - `system`: every connection of the navigation hub (system events).
//!
//! A connection that subscribes to a task or a type is narrowed: it leaves
//! `all:{key}` and hears only what it subscribed to; unsubscribing from the last
//! subscription widens it back to all of its key's tasks.

mod fanout;
mod handler;

use std::sync::{Arc, OnceLock};

use axum::Router;
use signalr::{Hub, HubOptions};

use crate::app::App;
use handler::{ConduitHandler, HubKind};

/// The four hubs of a running gateway.
pub struct Hubs {
    pub image: Arc<Hub>,
    pub video: Arc<Hub>,
    pub tasks: Arc<Hub>,
    pub navigation: Arc<Hub>,
}

impl Hubs {
    pub fn all(&self) -> [&Arc<Hub>; 4] {
        [&self.image, &self.video, &self.tasks, &self.navigation]
    }
}

/// The hubs of each running gateway, found from its `App` (a process may run
/// several gateways in tests).
type Registry = parking_lot::Mutex<Vec<(usize, Arc<Hubs>)>>;

fn registry() -> &'static Registry {
    static HUBS: OnceLock<Registry> = OnceLock::new();
    HUBS.get_or_init(Default::default)
}

fn app_id(app: &App) -> usize {
    app as *const App as usize
}

/// The hubs of `app`, once started.
pub fn of(app: &App) -> Option<Arc<Hubs>> {
    let id = app_id(app);
    registry()
        .lock()
        .iter()
        .find(|(a, _)| *a == id)
        .map(|(_, h)| h.clone())
}

/// Creates the hubs, starts their fan-out, and returns their routes.
pub fn start(app: Arc<App>) -> Router {
    let options = HubOptions::default();
    let make = |kind: HubKind| {
        let handler = Arc::new(ConduitHandler::new(Arc::downgrade(&app), kind));
        Hub::new(kind.name(), options.clone(), handler)
    };
    let hubs = Arc::new(Hubs {
        image: make(HubKind::Image),
        video: make(HubKind::Video),
        tasks: make(HubKind::Tasks),
        navigation: make(HubKind::Navigation),
    });
    registry().lock().push((app_id(&app), hubs.clone()));
    tokio::spawn(fanout::run(app.clone(), hubs.clone()));
    tokio::spawn(fanout::usage_metrics(app.clone(), hubs.clone()));

    Router::new()
        .merge(hubs.image.router("/hubs/image-generation"))
        .merge(hubs.video.router("/hubs/video-generation"))
        .merge(hubs.tasks.router("/hubs/tasks"))
        .merge(hubs.navigation.router("/hubs/navigation-state"))
}

/// Closes every connection with `allowReconnect`, so clients reconnect to the next process.
pub async fn shutdown(app: &App) {
    let id = app_id(app);
    let hubs = {
        let mut list = registry().lock();
        let position = list.iter().position(|(a, _)| *a == id);
        position.map(|p| list.remove(p).1)
    };
    if let Some(hubs) = hubs {
        for hub in hubs.all() {
            hub.shutdown().await;
        }
    }
}
