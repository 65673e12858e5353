//! The delivery log and replay: list deliveries, read one and its attempts,
//! send one again, and redeliver an event to the key's current receivers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{KeyScope, Scope};
use crate::api::schema::webhooks::{
    WebhookAttempt, WebhookAttemptList, WebhookDelivery, WebhookDeliveryList,
};
use crate::app::App;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::webhooks::model::{Delivery, DeliveryQuery, NewDelivery};

/// The statuses a delivery can have.
const STATUSES: &[&str] = &["pending", "succeeded", "failed", "dead", "cancelled"];

/// Where a replay goes: URL, registered endpoint (if any), extra headers.
type Receiver = (
    String,
    Option<String>,
    Option<serde_json::Map<String, Value>>,
);

/// The delivery as the API shows it.
fn view(d: Delivery) -> WebhookDelivery {
    WebhookDelivery {
        delivery: d,
        object: "webhook_delivery",
    }
}

/// The delivery `id` if this scope may see it; 404 otherwise.
async fn find<S: Scope>(app: &App, scope: &S, id: &str) -> Result<Delivery, ApiError> {
    app.store
        .delivery(id)
        .await?
        .filter(|d| scope.sees(d.key_id.as_deref()))
        .ok_or_else(|| ApiError::not_found("webhook delivery"))
}

/// `GET …/webhooks/deliveries?status=&endpoint_id=&task_id=&event_id=&limit=`,
/// newest first.
// LIMITATION: no cursor yet: only the newest `limit` (at most 100) deliveries
// that match are listed, with `has_more`. An `after=` cursor on (created_at, id),
// as `GET /v1/tasks` has, would page through the rest.
pub(super) async fn list<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    let param = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let status = param("status");
    if let Some(status) = &status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            "invalid_value",
            format!(
                "`{status}` is not a delivery status; use one of: {}.",
                STATUSES.join(", ")
            ),
        ));
    }
    let limit = match param("limit") {
        None => 20,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    "invalid_value",
                    "`limit` must be a whole number from 1 to 100.",
                )
            })?,
    };
    let query = DeliveryQuery {
        owner: scope.owner(),
        status,
        endpoint_id: param("endpoint_id"),
        task_id: param("task_id"),
        event_id: param("event_id"),
        limit: limit + 1,
    };
    let mut found = app.store.deliveries(&query).await?;
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    Ok(Json(WebhookDeliveryList {
        object: "list",
        data: found.into_iter().map(view).collect(),
        has_more,
    }))
}

/// `GET …/webhooks/deliveries/{id}`.
pub(super) async fn get<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
) -> Result<Json<WebhookDelivery>, ApiError> {
    Ok(Json(view(find(&app, &scope, &id).await?)))
}

/// `GET …/webhooks/deliveries/{id}/attempts`, first attempt first.
pub(super) async fn attempts<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
) -> Result<Json<WebhookAttemptList>, ApiError> {
    find(&app, &scope, &id).await?;
    let data = app
        .store
        .attempts(&id)
        .await?
        .into_iter()
        .map(|attempt| WebhookAttempt {
            attempt,
            object: "webhook_attempt",
        })
        .collect();
    Ok(Json(WebhookAttemptList {
        object: "list",
        data,
        has_more: false,
    }))
}

/// 429 once the owner has asked for too many replays (see [`ReplayLimits`]).
///
/// [`ReplayLimits`]: crate::keys::limits::ReplayLimits
fn check_replay(app: &App, owner: &str) -> Result<(), ApiError> {
    app.replay_limits.check(owner).map_err(|wait| {
        ApiError::rate_limited(
            wait.as_secs_f64().ceil() as u64,
            "Too many redeliveries and retries; each writes a delivery per receiver. Try again later.",
        )
    })
}

/// `POST …/webhooks/deliveries/{id}/retry`: one more attempt now, whatever the
/// delivery's status (409 while an attempt is in flight, or when its endpoint
/// is disabled or deleted).
pub(super) async fn retry<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_replay(&app, scope.key_id().unwrap_or("system"))?;
    let delivery = find(&app, &scope, &id).await?;
    if let Some(endpoint_id) = &delivery.endpoint_id {
        let active = app
            .webhooks
            .endpoints
            .get(endpoint_id)
            .is_some_and(|e| e.status == "active");
        if !active {
            return Err(ApiError::conflict(
                "endpoint_disabled",
                "The delivery's endpoint is disabled or deleted; enable it first.",
            ));
        }
    }
    if !app.store.retry_delivery(&id).await? {
        return Err(ApiError::conflict(
            "delivery_in_flight",
            "An attempt of this delivery is in flight; try again when it has finished.",
        ));
    }
    app.webhooks.wake.wake_claims();
    let delivery = find(&app, &scope, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(delivery))).into_response())
}

/// `POST /v1/events/{id}/redeliver`: fresh deliveries of one of the key's
/// events to its current endpoints (that want the type) and, for a task event,
/// the task's `webhook_url`. Replays are sent at once, outside the lane order.
#[utoipa::path(
    post,
    path = "/v1/events/{id}/redeliver",
    tag = "webhooks",
    description = "Fresh deliveries of one of the key's events: to its current endpoints that want the type and, for a task event, to the task's `webhook_url`. Replays are sent at once, outside the lane order.",
    params(("id" = String, Path, description = "The event id, `evt_…`.")),
    responses(
        (status = 202, description = "The new deliveries (none when nothing wants the event).", body = WebhookDeliveryList),
        (status = 404, description = "No such event for this key.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many replays (60 a minute per key); see `Retry-After`.", body = crate::error::ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn redeliver(
    State(app): State<Arc<App>>,
    scope: KeyScope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key_id = scope.key_id().unwrap_or_default().to_string();
    check_replay(&app, &key_id)?;
    let event = app
        .store
        .event(&id)
        .await?
        .filter(|e| e.key_id.as_deref() == Some(key_id.as_str()))
        .ok_or_else(|| ApiError::not_found("event"))?;

    // 1. The receivers: the task's own URL, and the key's endpoints that want it.
    let mut receivers: Vec<Receiver> = Vec::new();
    if let Some(task_id) = &event.task_id
        && let Some(task) = app.store.task(task_id).await?
        && task.key_id == key_id
        && let Some(url) = task.webhook_url
    {
        receivers.push((url, None, task.webhook_headers));
    }
    for endpoint in app
        .webhooks
        .endpoints
        .subscribed(Some(&key_id), &event.event_type)
    {
        let headers = (!endpoint.headers.is_empty()).then(|| endpoint.headers.clone());
        receivers.push((endpoint.url.clone(), Some(endpoint.id.clone()), headers));
    }

    // 2. One fresh delivery each, in a lane of its own.
    let deliveries: Vec<NewDelivery> = receivers
        .into_iter()
        .map(|(url, endpoint_id, headers)| {
            let id = new_id("dlv");
            NewDelivery {
                lane: format!("replay:{id}"),
                id,
                event_position: event.position,
                event_id: event.id.clone(),
                event_type: event.event_type.clone(),
                key_id: event.key_id.clone(),
                task_id: event.task_id.clone(),
                endpoint_id,
                url,
                headers,
                body: event.body.clone(),
                lease: false,
            }
        })
        .collect();
    let ids: Vec<String> = deliveries.iter().map(|d| d.id.clone()).collect();
    if !deliveries.is_empty() {
        app.store.insert_deliveries(deliveries).await?;
        app.webhooks.wake.wake_claims();
    }

    // 3. Answer with the new deliveries.
    let mut data = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(d) = app.store.delivery(id).await? {
            data.push(view(d));
        }
    }
    let list = WebhookDeliveryList {
        object: "list",
        data,
        has_more: false,
    };
    Ok((StatusCode::ACCEPTED, Json(list)).into_response())
}
