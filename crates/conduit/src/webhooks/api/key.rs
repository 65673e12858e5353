//! The `/v1/webhooks…` routes: a virtual key's own endpoints and deliveries.
//!
//! Each is the scope's documented instance of a handler of [`endpoints`] or
//! [`deliveries`], which serve the admin scope ([`super::admin`]) as well.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::{KeyScope, deliveries, endpoints};
use crate::api::fields::JsonBody;
use crate::api::schema::webhooks::{
    CreateWebhookEndpointRequest, CreatedWebhookEndpoint, DeletedWebhookEndpoint,
    DeliveryListQuery, UpdateWebhookEndpointRequest, WebhookAttemptList, WebhookDelivery,
    WebhookDeliveryList, WebhookEndpoint, WebhookEndpointList, WebhookSecret,
};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};

/// `POST /v1/webhooks`: 201 with the endpoint and its `secret`.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    description = "Registers an endpoint that receives the key's task and key events (those matching `events`), signed with its own secret.",
    request_body = CreateWebhookEndpointRequest,
    responses(
        (status = 201, description = "The endpoint; its secret is shown in full here and by `GET …/{id}/secret`.", body = CreatedWebhookEndpoint),
        (status = 400, description = "A bad field, named in `param` (an unsafe `url` too).", body = ErrorBody),
        (status = 409, description = "`too_many_endpoints`: the key has 500 already.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn create_webhook_endpoint(
    state: State<Arc<App>>,
    scope: KeyScope,
    body: JsonBody,
) -> Result<Response, ApiError> {
    endpoints::create(state, scope, body).await
}

/// `GET /v1/webhooks`.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    description = "The key's endpoints, oldest first (never paged).",
    responses((status = 200, description = "Every endpoint of the key.", body = WebhookEndpointList)),
    security(("virtual_key" = []))
)]
pub(crate) async fn list_webhook_endpoints(
    state: State<Arc<App>>,
    scope: KeyScope,
) -> Json<WebhookEndpointList> {
    endpoints::list(state, scope).await
}

/// `GET /v1/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    description = "Reads one of the key's endpoints.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The endpoint (never its secret).", body = WebhookEndpoint),
        (status = 404, description = "No such endpoint for this key.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn get_webhook_endpoint(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    endpoints::get(state, scope, id).await
}

/// `PATCH /v1/webhooks/{id}`.
#[utoipa::path(
    patch,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    description = "Changes an endpoint; `status: disabled` cancels its pending deliveries at once, `status: active` re-enables it.",
    request_body = UpdateWebhookEndpointRequest,
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The updated endpoint.", body = WebhookEndpoint),
        (status = 400, description = "A bad field, named in `param`.", body = ErrorBody),
        (status = 404, description = "No such endpoint for this key.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn update_webhook_endpoint(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
    body: JsonBody,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    endpoints::update(state, scope, id, body).await
}

/// `DELETE /v1/webhooks/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    description = "Deletes an endpoint; its pending deliveries are cancelled, never sent.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "Deleted.", body = DeletedWebhookEndpoint),
        (status = 404, description = "No such endpoint for this key.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn delete_webhook_endpoint(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
) -> Result<Json<DeletedWebhookEndpoint>, ApiError> {
    endpoints::delete(state, scope, id).await
}

/// `GET /v1/webhooks/{id}/secret`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/secret",
    tag = "webhooks",
    description = "The endpoint's current signing secret.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The secret.", body = WebhookSecret),
        (status = 404, description = "No such endpoint for this key.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn get_webhook_endpoint_secret(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
) -> Result<Json<WebhookSecret>, ApiError> {
    endpoints::secret(state, scope, id).await
}

/// `POST /v1/webhooks/{id}/rotate-secret`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    description = "A new signing secret; the old one keeps signing (as a second `webhook-signature`) for the grace period.",
    params(("id" = String, Path, description = "The endpoint id, `ep_…`.")),
    responses(
        (status = 200, description = "The new secret and when the old one stops signing.", body = WebhookSecret),
        (status = 404, description = "No such endpoint for this key.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn rotate_webhook_endpoint_secret(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
) -> Result<Json<WebhookSecret>, ApiError> {
    endpoints::rotate_secret(state, scope, id).await
}

/// `GET /v1/webhooks/deliveries`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries",
    tag = "webhooks",
    description = "The key's deliveries, to its endpoints and its tasks' `webhook_url`, newest first.",
    params(DeliveryListQuery),
    responses(
        (status = 200, description = "The newest matching deliveries.", body = WebhookDeliveryList),
        (status = 400, description = "A bad `status` or `limit`.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn list_webhook_deliveries(
    state: State<Arc<App>>,
    scope: KeyScope,
    query: Query<HashMap<String, String>>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    deliveries::list(state, scope, query).await
}

/// `GET /v1/webhooks/deliveries/{id}`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries/{id}",
    tag = "webhooks",
    description = "Reads one of the key's deliveries.",
    params(("id" = String, Path, description = "The delivery id, `dlv_…`.")),
    responses(
        (status = 200, description = "The delivery.", body = WebhookDelivery),
        (status = 404, description = "No such delivery for this key.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn get_webhook_delivery(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
) -> Result<Json<WebhookDelivery>, ApiError> {
    deliveries::get(state, scope, id).await
}

/// `GET /v1/webhooks/deliveries/{id}/attempts`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/deliveries/{id}/attempts",
    tag = "webhooks",
    description = "The HTTP attempts of one of the key's deliveries, first attempt first.",
    params(("id" = String, Path, description = "The delivery id, `dlv_…`.")),
    responses(
        (status = 200, description = "Every attempt.", body = WebhookAttemptList),
        (status = 404, description = "No such delivery for this key.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn list_webhook_delivery_attempts(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
) -> Result<Json<WebhookAttemptList>, ApiError> {
    deliveries::attempts(state, scope, id).await
}

/// `POST /v1/webhooks/deliveries/{id}/retry`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/deliveries/{id}/retry",
    tag = "webhooks",
    description = "One more attempt of a delivery now, whatever its status.",
    params(("id" = String, Path, description = "The delivery id, `dlv_…`.")),
    responses(
        (status = 202, description = "The delivery, pending again.", body = WebhookDelivery),
        (status = 404, description = "No such delivery for this key.", body = ErrorBody),
        (status = 409, description = "`delivery_in_flight`, or `endpoint_disabled` (its endpoint is disabled or deleted).", body = ErrorBody),
        (status = 429, description = "Too many replays (60 a minute per owner); see `Retry-After`.", body = ErrorBody)
    ),
    security(("virtual_key" = []))
)]
pub(crate) async fn retry_webhook_delivery(
    state: State<Arc<App>>,
    scope: KeyScope,
    id: Path<String>,
) -> Result<Response, ApiError> {
    deliveries::retry(state, scope, id).await
}
