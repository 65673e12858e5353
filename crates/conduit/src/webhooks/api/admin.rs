//! The `/admin/v1/webhooks…` routes (master key): the operator's endpoints,
//! which receive system events, and their deliveries.
//!
//! Each is the scope's documented instance of a handler of [`endpoints`] or
//! [`deliveries`], which serve a key's scope ([`super::key`]) as well.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::{SystemScope, deliveries, endpoints};
use crate::api::fields::JsonBody;
use crate::api::schema::webhooks::{
    CreateWebhookEndpointRequest, CreatedWebhookEndpoint, DeletedWebhookEndpoint,
    DeliveryListQuery, UpdateWebhookEndpointRequest, WebhookAttemptList, WebhookDelivery,
    WebhookDeliveryList, WebhookEndpoint, WebhookEndpointList, WebhookSecret,
};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};

/// `POST /admin/v1/webhooks`: 201 with the endpoint and its `secret`.
#[utoipa::path(
    post,
    path = "/admin/v1/webhooks",
    tag = "admin",
    description = "Registers an endpoint that receives system events (those matching `events`), signed with its own secret.",
    request_body = CreateWebhookEndpointRequest,
    responses(
        (status = 201, description = "The endpoint; its secret is shown in full here and by `GET …/{id}/secret`.", body = CreatedWebhookEndpoint),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 400, description = "A bad field, named in `param` (an unsafe `url` too).", body = ErrorBody),
        (status = 409, description = "`too_many_endpoints`: there are 500 already.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn create_system_webhook_endpoint(
    state: State<Arc<App>>,
    scope: SystemScope,
    body: JsonBody,
) -> Result<Response, ApiError> {
    endpoints::create(state, scope, body).await
}

/// `GET /admin/v1/webhooks`.
#[utoipa::path(
    get,
    path = "/admin/v1/webhooks",
    tag = "admin",
    description = "The system-event endpoints, oldest first (never paged).",
    responses(
        (status = 200, description = "Every system-event endpoint.", body = WebhookEndpointList),
        (status = 401, description = "Not the master key.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn list_system_webhook_endpoints(
    state: State<Arc<App>>,
    scope: SystemScope,
) -> Json<WebhookEndpointList> {
    endpoints::list(state, scope).await
}

/// `GET /admin/v1/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/admin/v1/webhooks/{id}",
    tag = "admin",
    description = "Reads a system-event endpoint.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The endpoint (never its secret).", body = WebhookEndpoint),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such system-event endpoint.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn get_system_webhook_endpoint(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    endpoints::get(state, scope, id).await
}

/// `PATCH /admin/v1/webhooks/{id}`.
#[utoipa::path(
    patch,
    path = "/admin/v1/webhooks/{id}",
    tag = "admin",
    description = "Changes an endpoint; `status: disabled` cancels its pending deliveries at once, `status: active` re-enables it.",
    request_body = UpdateWebhookEndpointRequest,
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The updated endpoint.", body = WebhookEndpoint),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 400, description = "A bad field, named in `param`.", body = ErrorBody),
        (status = 404, description = "No such system-event endpoint.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn update_system_webhook_endpoint(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
    body: JsonBody,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    endpoints::update(state, scope, id, body).await
}

/// `DELETE /admin/v1/webhooks/{id}`.
#[utoipa::path(
    delete,
    path = "/admin/v1/webhooks/{id}",
    tag = "admin",
    description = "Deletes an endpoint; its pending deliveries are cancelled, never sent.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "Deleted.", body = DeletedWebhookEndpoint),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such system-event endpoint.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn delete_system_webhook_endpoint(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
) -> Result<Json<DeletedWebhookEndpoint>, ApiError> {
    endpoints::delete(state, scope, id).await
}

/// `GET /admin/v1/webhooks/{id}/secret`.
#[utoipa::path(
    get,
    path = "/admin/v1/webhooks/{id}/secret",
    tag = "admin",
    description = "The endpoint's current signing secret.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The secret.", body = WebhookSecret),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such system-event endpoint.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn get_system_webhook_endpoint_secret(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
) -> Result<Json<WebhookSecret>, ApiError> {
    endpoints::secret(state, scope, id).await
}

/// `POST /admin/v1/webhooks/{id}/rotate-secret`.
#[utoipa::path(
    post,
    path = "/admin/v1/webhooks/{id}/rotate-secret",
    tag = "admin",
    description = "A new signing secret; the old one keeps signing (as a second `webhook-signature`) for the grace period.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The new secret and when the old one stops signing.", body = WebhookSecret),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such system-event endpoint.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn rotate_system_webhook_endpoint_secret(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
) -> Result<Json<WebhookSecret>, ApiError> {
    endpoints::rotate_secret(state, scope, id).await
}

/// `GET /admin/v1/webhooks/deliveries`.
#[utoipa::path(
    get,
    path = "/admin/v1/webhooks/deliveries",
    tag = "admin",
    description = "The deliveries of system events, newest first.",
    params(DeliveryListQuery),
    responses(
        (status = 200, description = "The newest matching deliveries.", body = WebhookDeliveryList),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 400, description = "A bad `status` or `limit`.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn list_system_webhook_deliveries(
    state: State<Arc<App>>,
    scope: SystemScope,
    query: Query<HashMap<String, String>>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    deliveries::list(state, scope, query).await
}

/// `GET /admin/v1/webhooks/deliveries/{id}`.
#[utoipa::path(
    get,
    path = "/admin/v1/webhooks/deliveries/{id}",
    tag = "admin",
    description = "Reads a delivery of a system event.",
    params(("id" = String, Path, description = "The delivery id, `dlv_…`.")),
    responses(
        (status = 200, description = "The delivery.", body = WebhookDelivery),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such delivery of a system event.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn get_system_webhook_delivery(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
) -> Result<Json<WebhookDelivery>, ApiError> {
    deliveries::get(state, scope, id).await
}

/// `GET /admin/v1/webhooks/deliveries/{id}/attempts`.
#[utoipa::path(
    get,
    path = "/admin/v1/webhooks/deliveries/{id}/attempts",
    tag = "admin",
    description = "The HTTP attempts of a delivery of a system event, first attempt first.",
    params(("id" = String, Path, description = "The delivery id, `dlv_…`.")),
    responses(
        (status = 200, description = "Every attempt.", body = WebhookAttemptList),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such delivery of a system event.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn list_system_webhook_delivery_attempts(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
) -> Result<Json<WebhookAttemptList>, ApiError> {
    deliveries::attempts(state, scope, id).await
}

/// `POST /admin/v1/webhooks/deliveries/{id}/retry`.
#[utoipa::path(
    post,
    path = "/admin/v1/webhooks/deliveries/{id}/retry",
    tag = "admin",
    description = "One more attempt of a delivery now, whatever its status.",
    params(("id" = String, Path, description = "The delivery id, `dlv_…`.")),
    responses(
        (status = 202, description = "The delivery, pending again.", body = WebhookDelivery),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such delivery of a system event.", body = ErrorBody),
        (status = 409, description = "`delivery_in_flight`, or `endpoint_disabled` (its endpoint is disabled or deleted).", body = ErrorBody),
        (status = 429, description = "Too many replays (60 a minute per owner); see `Retry-After`.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub(crate) async fn retry_system_webhook_delivery(
    state: State<Arc<App>>,
    scope: SystemScope,
    id: Path<String>,
) -> Result<Response, ApiError> {
    deliveries::retry(state, scope, id).await
}
