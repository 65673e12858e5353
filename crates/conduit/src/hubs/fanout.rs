//! From the event bus to the hubs: which hub method each event becomes and which
//! groups receive it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use signalr::{Hub, ServerMessage};
use tokio::sync::broadcast::error::RecvError;

use super::Hubs;
use super::handler::{
    SYSTEM_GROUP, all_group, key_group, key_of, task_group, type_group, valid_key,
};
use crate::app::App;
use crate::events::Event;

/// The hub method for the last part of a task event's type.
fn task_method(prefix: &str, suffix: &str) -> Option<String> {
    let verb = match suffix {
        "started" => "Started",
        "progress" => "Progress",
        "completed" => "Completed",
        "failed" => "Failed",
        "cancelled" => "Cancelled",
        _ => return None,
    };
    Some(format!("{prefix}{verb}"))
}

/// Follows the bus until shutdown.
pub async fn run(app: Arc<App>, hubs: Arc<Hubs>) {
    let mut events = app.bus.subscribe();
    loop {
        let next = tokio::select! {
            next = events.recv() => next,
            _ = app.shutdown.cancelled() => return,
        };
        match next {
            Ok(event) => deliver(&app, &hubs, &event),
            Err(RecvError::Lagged(missed)) => {
                // SignalR promises no delivery; clients fill gaps from the event log
                // by `eventId` and `sequence`.
                metrics::counter!("conduit_hub_events_missed_total").increment(missed);
                tracing::warn!(missed, "hub fan-out fell behind the event bus");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

fn deliver(app: &App, hubs: &Hubs, event: &Event) {
    match (&event.task_id, &event.key_id) {
        (Some(task_id), Some(key_id)) => deliver_task_event(hubs, event, task_id, key_id),
        (None, Some(key_id)) => deliver_key_event(app, hubs, event, key_id),
        (_, None) => deliver_system_event(hubs, event),
    }
}

fn deliver_task_event(hubs: &Hubs, event: &Event, task_id: &str, key_id: &str) {
    let Some(task_type) = event.task_type_name() else {
        return;
    };
    let suffix = event.event_type.rsplit('.').next().unwrap_or_default();
    let groups = [
        all_group(key_id),
        task_group(task_id),
        type_group(key_id, task_type),
    ];
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let argument = event.hub_argument();

    let media_hub = match task_type {
        "image" => Some((&hubs.image, "ImageGeneration")),
        "video" => Some((&hubs.video, "VideoGeneration")),
        _ => None,
    };
    if let Some((hub, prefix)) = media_hub
        && let Some(method) = task_method(prefix, suffix)
    {
        send(hub, &groups, &method, argument.clone());
    }

    if let Some(method) = task_method("Task", suffix) {
        let mut with_type = argument.clone();
        with_type["taskType"] = Value::String(task_type.to_string());
        if suffix == "completed" {
            send(&hubs.navigation, &groups, &method, with_type.clone());
        }
        send(&hubs.tasks, &groups, &method, with_type);
    }
}

fn deliver_key_event(app: &App, hubs: &Hubs, event: &Event, key_id: &str) {
    let group = key_group(key_id);
    let method = match event.event_type.as_str() {
        "key.disabled" => "KeyDisabled",
        "key.budget.exceeded" => "BudgetExceeded",
        "key.rate_limited" => "RateLimited",
        "webhook.endpoint_disabled" => "WebhookEndpointDisabled",
        _ => return,
    };
    send(&hubs.tasks, &[group.as_str()], method, event.hub_argument());

    // A disabled key's connections are closed once they have been told.
    if event.event_type == "key.disabled" && app.keys.refusal(key_id).is_some() {
        for hub in hubs.all() {
            for conn in hub.connections() {
                if key_of(&conn) == Some(key_id) {
                    hub.close_connection(conn.id(), Some("The virtual key was disabled."), false);
                }
            }
        }
    }
}

fn deliver_system_event(hubs: &Hubs, event: &Event) {
    let method = match event.event_type.as_str() {
        "provider.health_changed" => "ProviderHealthChanged",
        "system.maintenance" => "SystemMaintenance",
        _ => return,
    };
    send(
        &hubs.navigation,
        &[SYSTEM_GROUP],
        method,
        event.hub_argument(),
    );
}

fn send(hub: &Hub, groups: &[&str], method: &str, argument: Value) {
    let message = ServerMessage::invocation(method, vec![argument]);
    let sent = hub.send_to_groups(groups, &message);
    metrics::counter!("conduit_hub_messages_total", "method" => method.to_string())
        .increment(sent as u64);
}

/// Sends `UsageMetricsUpdated` to the navigation hub every few seconds: for each
/// key with connections there, that key's own figures. Connections of a key that is
/// no longer valid (disabled, expired, deleted) get nothing but a Close.
pub async fn usage_metrics(app: Arc<App>, hubs: Arc<Hubs>) {
    let mut tick = tokio::time::interval(app.config.usage_metrics_interval);
    let mut events = app.bus.subscribe();
    let mut counts: HashMap<String, Usage> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            next = events.recv() => {
                if let Ok(event) = next
                    && let Some(key_id) = &event.key_id
                {
                    counts.entry(key_id.clone()).or_default().count(&event);
                }
                continue;
            }
            _ = app.shutdown.cancelled() => return,
        }
        let connections = hubs.navigation.connections();
        let mut keys: Vec<&str> = connections.iter().filter_map(key_of).collect();
        keys.sort_unstable();
        keys.dedup();
        for key_id in keys {
            // One instant for the check and the figures' timestamp.
            let now = crate::ids::now();
            let key = match valid_key(&app, key_id, now) {
                Ok(key) => key,
                Err(error) => {
                    for conn in connections.iter().filter(|c| key_of(c) == Some(key_id)) {
                        conn.close(Some(error), false);
                    }
                    continue;
                }
            };
            let usage = counts.entry(key_id.to_string()).or_default();
            let metrics = json!({
                "keyId": key.id,
                "tasksStarted": usage.started,
                "tasksCompleted": usage.completed,
                "tasksFailed": usage.failed,
                "activeTasks": usage.started.saturating_sub(usage.completed + usage.failed + usage.cancelled),
                "spend": key.spend,
                "budget": key.budget,
                "timestamp": crate::ids::format_time(now),
            });
            send(
                &hubs.navigation,
                &[key_group(key_id).as_str()],
                "UsageMetricsUpdated",
                json!({"metrics": metrics}),
            );
        }
    }
}

/// A key's task counts since this process started.
#[derive(Default)]
struct Usage {
    started: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
}

impl Usage {
    fn count(&mut self, event: &Event) {
        match event.event_type.rsplit('.').next() {
            Some("started") => self.started += 1,
            Some("completed") => self.completed += 1,
            Some("failed") => self.failed += 1,
            Some("cancelled") => self.cancelled += 1,
            _ => {}
        }
    }
}
