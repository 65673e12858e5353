//! Which deliveries an event needs, decided inside the writing transaction.
//!
//! - A task event goes to the task's own `webhook_url` (lane: the task and that URL).
//! - A key's event goes to each of the key's active endpoints whose filter wants it
//!   (lane: the endpoint and the task; an event of no task has a lane of its own).
//! - A system event goes to the admin endpoints that want it (a lane of its own).
//!
//! A lane is sent strictly in event order; different lanes never wait for each
//! other. So the events of one task reach one receiver in order, while key and
//! system events, which belong to no sequence, are never held back by another
//! event's retries.

use std::sync::Arc;

use super::EndpointDirectory;
use super::gate::Gate;
use super::model::{NewDelivery, receiver};
use crate::events::Event;
use crate::ids::new_id;
use crate::store::OutboxPlanner;
use crate::tasks::model::Task;

/// Plans deliveries from the endpoint directory and the task's own webhook.
pub struct Planner {
    pub endpoints: Arc<EndpointDirectory>,
    /// Says which receivers the dispatcher can take at once (hot lease).
    pub gate: Arc<Gate>,
}

impl OutboxPlanner for Planner {
    fn plan(&self, event: &Event, task: Option<&Task>) -> Vec<NewDelivery> {
        let mut out = Vec::new();
        let new = |url: &str, endpoint_id: Option<String>, lane: String, headers| NewDelivery {
            lease: self.gate.accepts(&receiver(endpoint_id.as_deref(), url)),
            id: new_id("dlv"),
            event_position: event.position,
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            key_id: event.key_id.clone(),
            task_id: event.task_id.clone(),
            endpoint_id,
            url: url.to_string(),
            headers,
            lane,
            body: event.body.clone(),
        };

        // 1. The task's own webhook_url.
        if let (Some(task), Some(task_id)) = (task, &event.task_id)
            && task.id == *task_id
            && let Some(url) = &task.webhook_url
        {
            let lane = format!("task:{task_id}:{url}");
            out.push(new(url, None, lane, task.webhook_headers.clone()));
        }

        // 2. Registered endpoints of the key (or admin endpoints for system events).
        for endpoint in self
            .endpoints
            .subscribed(event.key_id.as_deref(), &event.event_type)
        {
            // Events of no task are not ordered among themselves: each has a lane
            // of its own, so one that fails never holds back the others.
            let scope = event.task_id.as_deref().unwrap_or(&event.id);
            let lane = format!("ep:{}:{scope}", endpoint.id);
            let headers = (!endpoint.headers.is_empty()).then(|| endpoint.headers.clone());
            out.push(new(&endpoint.url, Some(endpoint.id.clone()), lane, headers));
        }
        out
    }
}
