//! Bodies of the webhook API: registered endpoints and the delivery log, the
//! same under `/v1/webhooks` (a key's own) and `/admin/v1/webhooks` (system
//! events, master key).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::webhooks::model::{Attempt, Delivery};

/// `POST …/webhooks`; every field but `url` is optional.
#[derive(Deserialize, ToSchema)]
pub struct CreateWebhookEndpointRequest {
    /// The receiver: `https://…` (checked like a task's `webhook_url`).
    pub url: String,
    /// 1–100 event type patterns such as `image.*`, `video.completed` or `*`;
    /// `["*"]` by default. Each must match an event the endpoint can receive.
    pub events: Option<Vec<String>>,
    /// At most 512 characters.
    pub description: Option<String>,
    /// Deliveries per second at most, 1–10,000; absent or `null` is unlimited.
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
    /// Extra headers sent with each delivery; they cannot replace Conduit's own.
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Map<String, Value>>,
    /// `active` (the default) or `disabled`: created switched off, to be
    /// enabled later with `PATCH`.
    pub status: Option<String>,
}

/// `PATCH …/webhooks/{id}`: the fields to change; `null` clears `description`
/// and `rate_limit`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateWebhookEndpointRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Map<String, Value>>,
    /// `active` re-enables the endpoint and forgets its failure run; `disabled`
    /// cancels its pending deliveries at once.
    pub status: Option<String>,
}

/// A registered endpoint (never its secret).
#[derive(Serialize, ToSchema)]
pub struct WebhookEndpoint {
    /// `ep_…`.
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    pub url: String,
    pub description: Option<String>,
    /// Event type patterns (`image.*`, `video.progress`, `*`).
    pub events: Vec<String>,
    /// Deliveries per second at most; `null` is unlimited.
    pub rate_limit: Option<u32>,
    #[schema(value_type = Object)]
    pub headers: Map<String, Value>,
    /// `active` or `disabled`.
    pub status: String,
    /// Why it is disabled: `manual`, `failing` (failed for too long) or `gone`
    /// (the receiver answered 410).
    pub disabled_reason: Option<String>,
    pub last_success_at: Option<String>,
    /// Start of the current run of failures, cleared by a success.
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The 201 answer of endpoint creation: the endpoint and its signing secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookEndpoint {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: signs every delivery to this endpoint.
    pub secret: String,
}

/// `GET …/webhooks`: every endpoint of the scope, oldest first.
#[derive(Serialize, ToSchema)]
pub struct WebhookEndpointList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<WebhookEndpoint>,
    /// Always `false`: the list is never paged.
    pub has_more: bool,
}

/// `DELETE …/webhooks/{id}`.
#[derive(Serialize, ToSchema)]
pub struct DeletedWebhookEndpoint {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    pub deleted: bool,
}

/// `GET …/webhooks/{id}/secret` and `POST …/webhooks/{id}/rotate-secret`.
#[derive(Serialize, ToSchema)]
pub struct WebhookSecret {
    /// Always `webhook_secret`.
    pub object: &'static str,
    /// `whsec_…`.
    pub secret: String,
    /// Only after a rotation: until then the old secret signs too (as a second
    /// `webhook-signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub previous_secret_expires_at: Option<String>,
}

/// A delivery of one event to one receiver.
#[derive(Serialize, ToSchema)]
pub struct WebhookDelivery {
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Always `webhook_delivery`.
    pub object: &'static str,
}

/// `GET …/webhooks/deliveries` (newest first) and the fresh deliveries of
/// `POST /v1/events/{id}/redeliver`.
#[derive(Serialize, ToSchema)]
pub struct WebhookDeliveryList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<WebhookDelivery>,
    /// More deliveries match than `limit`.
    pub has_more: bool,
}

/// One HTTP attempt of a delivery.
#[derive(Serialize, ToSchema)]
pub struct WebhookAttempt {
    #[serde(flatten)]
    pub attempt: Attempt,
    /// Always `webhook_attempt`.
    pub object: &'static str,
}

/// `GET …/webhooks/deliveries/{id}/attempts`: first attempt first.
#[derive(Serialize, ToSchema)]
pub struct WebhookAttemptList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<WebhookAttempt>,
    /// Always `false`.
    pub has_more: bool,
}

/// Filters of `GET …/webhooks/deliveries`; an empty value is no filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// `pending`, `succeeded`, `failed` (a retry is scheduled), `dead` or `cancelled`.
    pub status: Option<String>,
    /// `ep_…`: deliveries to one registered endpoint.
    pub endpoint_id: Option<String>,
    /// `task_…`: deliveries of one task's events.
    pub task_id: Option<String>,
    /// `evt_…`: deliveries of one event.
    pub event_id: Option<String>,
    /// 1–100 (default 20): only the newest `limit` matches are listed.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}
