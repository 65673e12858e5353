//! Authentication and client → server methods of Conduit's hubs.

use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};
use serde_json::Value;
use signalr::{AuthError, Connection, HubError, HubHandler, Principal};

use crate::app::App;
use crate::keys::auth::{authenticate, presented_key};
use crate::keys::model::VirtualKey;
use crate::tasks::model::TaskType;

/// Which hub a handler serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubKind {
    Image,
    Video,
    Tasks,
    Navigation,
}

impl HubKind {
    pub fn name(self) -> &'static str {
        match self {
            HubKind::Image => "image-generation",
            HubKind::Video => "video-generation",
            HubKind::Tasks => "tasks",
            HubKind::Navigation => "navigation-state",
        }
    }
}

/// Who a connection belongs to.
#[derive(Debug)]
pub struct KeyPrincipal {
    pub key_id: String,
}

/// The key id of a connection.
pub fn key_of(conn: &Connection) -> Option<&str> {
    conn.principal()
        .downcast_ref::<KeyPrincipal>()
        .map(|p| p.key_id.as_str())
}

pub fn all_group(key_id: &str) -> String {
    format!("all:{key_id}")
}

pub fn key_group(key_id: &str) -> String {
    format!("key:{key_id}")
}

pub fn task_group(task_id: &str) -> String {
    format!("task:{task_id}")
}

pub fn type_group(key_id: &str, task_type: &str) -> String {
    format!("type:{key_id}:{task_type}")
}

pub const SYSTEM_GROUP: &str = "system";

/// The key `key_id` as the key directory has it now, if its connections may still be
/// served; otherwise why not (the error of the Close message they are sent).
pub fn valid_key(
    app: &App,
    key_id: &str,
    now: DateTime<Utc>,
) -> Result<Arc<VirtualKey>, &'static str> {
    let key = app
        .keys
        .by_id(key_id)
        .ok_or("The virtual key was deleted.")?;
    match key.refusal(now) {
        None => Ok(key),
        Some(("key_expired", _)) => Err("The virtual key has expired."),
        Some(_) => Err("The virtual key was disabled."),
    }
}

/// One hub's application side.
pub struct ConduitHandler {
    app: Weak<App>,
    kind: HubKind,
}

impl ConduitHandler {
    pub fn new(app: Weak<App>, kind: HubKind) -> ConduitHandler {
        ConduitHandler { app, kind }
    }

    fn hub(&self, app: &App) -> Option<Arc<signalr::Hub>> {
        let hubs = super::of(app)?;
        Some(match self.kind {
            HubKind::Image => hubs.image.clone(),
            HubKind::Video => hubs.video.clone(),
            HubKind::Tasks => hubs.tasks.clone(),
            HubKind::Navigation => hubs.navigation.clone(),
        })
    }

    /// Leaves the all-tasks group once a connection has explicit subscriptions,
    /// and returns to it when the last one is gone.
    fn renarrow(&self, hub: &signalr::Hub, conn: &Connection, key_id: &str) {
        let narrowed = hub
            .groups_of(conn.id())
            .iter()
            .any(|g| g.starts_with("task:") || g.starts_with("type:"));
        if narrowed {
            hub.remove_from_group(conn.id(), &all_group(key_id));
        } else {
            hub.add_to_group(conn.id(), &all_group(key_id));
        }
    }
}

fn string_arg(args: &[Value], method: &str) -> Result<String, HubError> {
    match args {
        [Value::String(s)] if !s.is_empty() && s.len() <= 128 => Ok(s.clone()),
        _ => Err(HubError::invalid_arguments(method)),
    }
}

#[async_trait::async_trait]
impl HubHandler for ConduitHandler {
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<Principal, AuthError> {
        let app = self.app.upgrade().ok_or_else(|| AuthError {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
            message: "The server is shutting down.".into(),
        })?;
        let presented = presented_key(parts, true);
        let key = authenticate(&app, presented.as_deref())
            .map_err(|err| AuthError::unauthorized(err.message))?;
        Ok(Arc::new(KeyPrincipal {
            key_id: key.id.clone(),
        }))
    }

    /// A connection belongs to the virtual key that negotiated it: polls, sends, deletes
    /// and (re)connects authenticated with another key are refused (403).
    fn principal_id(&self, principal: &Principal) -> Option<String> {
        principal
            .downcast_ref::<KeyPrincipal>()
            .map(|p| p.key_id.clone())
    }

    async fn on_connected(&self, conn: &Connection) {
        let (Some(app), Some(key_id)) = (self.app.upgrade(), key_of(conn)) else {
            return;
        };
        // The key was checked when the connection authenticated, but it may have been
        // disabled, have expired or been deleted before the handshake, when the disable
        // sweep (which only sees handshaken connections) could not reach it. The
        // connection is already visible to that sweep, so checking now leaves no gap.
        if let Err(error) = valid_key(&app, key_id, crate::ids::now()) {
            tracing::debug!(connection_id = %conn.id(), key_id, error, "hub connection refused at handshake");
            conn.close(Some(error), false);
            return;
        }
        let Some(hub) = self.hub(&app) else { return };
        hub.add_to_group(conn.id(), &key_group(key_id));
        hub.add_to_group(conn.id(), &all_group(key_id));
        if self.kind == HubKind::Navigation {
            hub.add_to_group(conn.id(), SYSTEM_GROUP);
        }
    }

    async fn on_invocation(
        &self,
        conn: &Connection,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, HubError> {
        let app = self.app.upgrade().ok_or(HubError::Internal)?;
        let hub = self.hub(&app).ok_or(HubError::Internal)?;
        let key_id = key_of(conn).ok_or(HubError::Internal)?.to_string();
        let key = app
            .keys
            .by_id(&key_id)
            .filter(|k| k.refusal(crate::ids::now()).is_none())
            .ok_or_else(|| HubError::Client("This virtual key is no longer valid.".into()))?;

        match method.to_ascii_lowercase().as_str() {
            "subscribetotask" => {
                let task_id = string_arg(&args, method)?;
                // Another key's task and an unknown id get the same answer.
                crate::tasks::view(&app, &key, &task_id)
                    .await
                    .map_err(|_| HubError::Client(format!("Task '{task_id}' was not found.")))?;
                hub.add_to_group(conn.id(), &task_group(&task_id));
                self.renarrow(&hub, conn, &key_id);
                Ok(Value::Null)
            }
            "unsubscribefromtask" => {
                let task_id = string_arg(&args, method)?;
                hub.remove_from_group(conn.id(), &task_group(&task_id));
                self.renarrow(&hub, conn, &key_id);
                Ok(Value::Null)
            }
            "subscribetotasktype" | "unsubscribefromtasktype" => {
                let task_type = string_arg(&args, method)?;
                let task_type = TaskType::parse(&task_type).ok_or_else(|| {
                    HubError::Client(format!(
                        "'{task_type}' is not a task type; use image, video, speech or transcription."
                    ))
                })?;
                let group = type_group(&key_id, task_type.as_str());
                if method.to_ascii_lowercase().starts_with("sub") {
                    hub.add_to_group(conn.id(), &group);
                } else {
                    hub.remove_from_group(conn.id(), &group);
                }
                self.renarrow(&hub, conn, &key_id);
                Ok(Value::Null)
            }
            "ping" => Ok(Value::String("pong".into())),
            _ => Err(HubError::unknown_method(method)),
        }
    }
}
