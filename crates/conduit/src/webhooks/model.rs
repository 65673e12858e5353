//! Webhook records: endpoints, deliveries (the outbox) and attempts.

use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

/// A registered receiver of a key's events (or, with no key, of system events).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    /// The owner; `None` for admin endpoints that receive system events.
    pub key_id: Option<String>,
    pub url: String,
    pub description: Option<String>,
    /// Event type patterns (`image.*`, `video.progress`, `*`).
    pub events: Vec<String>,
    /// Deliveries per second at most; `None` is unlimited.
    pub rate_limit: Option<u32>,
    pub secret: String,
    /// The secret before the last rotation and when it stops signing.
    pub previous_secret: Option<(String, String)>,
    /// `active` or `disabled`.
    pub status: String,
    pub disabled_reason: Option<String>,
    pub headers: Map<String, Value>,
    pub last_success_at: Option<String>,
    /// Start of the current run of failures, cleared by a success.
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The dispatcher's unit of concurrency and pacing for a delivery: its
/// registered endpoint, or, for a task's own `webhook_url`, that URL. Endpoints
/// of different keys that share a URL are separate receivers, so one key's
/// rate limit or backlog never delays another key's deliveries.
pub fn receiver(endpoint_id: Option<&str>, url: &str) -> String {
    match endpoint_id {
        Some(id) => format!("ep:{id}"),
        None => format!("url:{url}"),
    }
}

impl Delivery {
    /// See [`receiver`].
    pub fn receiver(&self) -> String {
        receiver(self.endpoint_id.as_deref(), &self.url)
    }
}

/// A delivery to write to the outbox with its event.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub event_position: i64,
    pub event_id: String,
    pub event_type: String,
    pub key_id: Option<String>,
    pub task_id: Option<String>,
    /// The registered endpoint, or `None` for a task's own `webhook_url`.
    pub endpoint_id: Option<String>,
    pub url: String,
    /// Extra headers (a task's `webhook_headers`).
    pub headers: Option<Map<String, Value>>,
    /// Deliveries of one lane are sent strictly in event order.
    pub lane: String,
    /// The event's envelope: the body to send.
    pub body: Bytes,
    /// Whether the dispatcher can take this delivery at once; if so, and it is the
    /// head of its lane, it is leased in the writing transaction and handed over
    /// after the commit (no claim round trip).
    pub lease: bool,
}

/// A leased delivery with the bytes to send: what the dispatcher works on.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub delivery: Delivery,
    pub body: Bytes,
    /// When this process leased it; a lease older than half its length is not
    /// trusted any more and the delivery is left for a later claim.
    pub leased_at: Instant,
}

/// A delivery as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: String,
    #[serde(skip)]
    pub event_position: i64,
    pub event_id: String,
    pub event_type: String,
    #[serde(skip)]
    pub key_id: Option<String>,
    pub task_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub url: String,
    #[serde(skip)]
    pub headers: Option<Map<String, Value>>,
    #[serde(skip)]
    pub lane: String,
    /// `pending`, `succeeded`, `failed` (a retry is scheduled), `dead` or `cancelled`.
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub id: String,
    pub delivery_id: String,
    pub attempt: i64,
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The first bytes of the receiver's answer.
    pub response_excerpt: Option<String>,
}

/// The outcome of an attempt and the delivery's next state.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: String,
    /// The HTTP attempt; `None` when the delivery was dropped without sending
    /// (its endpoint or key is gone).
    pub attempt: Option<Attempt>,
    /// `succeeded`, `failed`, `dead` or `cancelled`.
    pub status: String,
    pub next_attempt_at: Option<String>,
    /// Why the delivery ended without an attempt.
    pub error: Option<String>,
    /// Lease the next delivery of the lane (if due) in the same transaction.
    pub lease_next: Option<u64>,
}

/// Whose deliveries a query reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Owner {
    /// Every delivery (operators).
    #[default]
    Any,
    /// One key's deliveries.
    Key(String),
    /// Deliveries of system events (admin endpoints).
    System,
}

/// Filters of `GET /v1/webhooks/deliveries`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub owner: Owner,
    pub status: Option<String>,
    pub endpoint_id: Option<String>,
    pub task_id: Option<String>,
    pub event_id: Option<String>,
    pub limit: u32,
}
