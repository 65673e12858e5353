//! Webhook endpoints and the delivery log over HTTP.
//!
//! The same handlers serve two scopes: a virtual key's own endpoints and
//! deliveries under `/v1/webhooks` (its task and key events), and the operator's
//! system-event endpoints under `/admin/v1/webhooks` (master key). A record of
//! another scope answers 404, exactly like an unknown id.
//!
//! The handlers of [`endpoints`] and [`deliveries`] are generic over the
//! [`Scope`]; [`key`] and [`admin`] instantiate each for one scope, documented
//! with `#[utoipa::path]`, and [`table`] routes them (through `api::routes()`,
//! which `/openapi.json` is checked against).

pub(crate) mod admin;
pub(crate) mod deliveries;
mod endpoints;
pub(crate) mod key;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, delete, get, patch, post};

use super::model::Owner;
use crate::app::App;
use crate::error::ApiError;
use crate::keys::auth::{AdminKey, ClientKey};

/// Whose endpoints and deliveries a request may see.
pub(crate) trait Scope:
    FromRequestParts<Arc<App>, Rejection = ApiError> + Send + Sync + 'static
{
    /// The owning key; `None` for system-event endpoints.
    fn key_id(&self) -> Option<&str>;

    /// The same as a delivery-log filter.
    fn owner(&self) -> Owner {
        match self.key_id() {
            Some(id) => Owner::Key(id.to_string()),
            None => Owner::System,
        }
    }

    /// Whether a record owned by `key_id` is visible in this scope.
    fn sees(&self, key_id: Option<&str>) -> bool {
        self.key_id() == key_id
    }
}

/// A virtual key's scope.
pub(crate) struct KeyScope(ClientKey);

impl FromRequestParts<Arc<App>> for KeyScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        ClientKey::from_request_parts(parts, app)
            .await
            .map(KeyScope)
    }
}

impl Scope for KeyScope {
    fn key_id(&self) -> Option<&str> {
        Some(&self.0.0.id)
    }
}

/// The operator's scope: system-event endpoints.
pub(crate) struct SystemScope;

impl FromRequestParts<Arc<App>> for SystemScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        AdminKey::from_request_parts(parts, app)
            .await
            .map(|_| SystemScope)
    }
}

impl Scope for SystemScope {
    fn key_id(&self) -> Option<&str> {
        None
    }
}

/// Every webhook route as `(method, path, handler)`: a key's under
/// `/v1/webhooks` and `/v1/events/{id}/redeliver`, the operator's under
/// `/admin/v1/webhooks`. Part of `api::table()`.
pub(crate) fn table() -> Vec<(Method, &'static str, MethodRouter<Arc<App>>)> {
    vec![
        (
            Method::POST,
            "/v1/webhooks",
            post(key::create_webhook_endpoint),
        ),
        (
            Method::GET,
            "/v1/webhooks",
            get(key::list_webhook_endpoints),
        ),
        (
            Method::GET,
            "/v1/webhooks/deliveries",
            get(key::list_webhook_deliveries),
        ),
        (
            Method::GET,
            "/v1/webhooks/deliveries/{id}",
            get(key::get_webhook_delivery),
        ),
        (
            Method::GET,
            "/v1/webhooks/deliveries/{id}/attempts",
            get(key::list_webhook_delivery_attempts),
        ),
        (
            Method::POST,
            "/v1/webhooks/deliveries/{id}/retry",
            post(key::retry_webhook_delivery),
        ),
        (
            Method::GET,
            "/v1/webhooks/{id}",
            get(key::get_webhook_endpoint),
        ),
        (
            Method::PATCH,
            "/v1/webhooks/{id}",
            patch(key::update_webhook_endpoint),
        ),
        (
            Method::DELETE,
            "/v1/webhooks/{id}",
            delete(key::delete_webhook_endpoint),
        ),
        (
            Method::GET,
            "/v1/webhooks/{id}/secret",
            get(key::get_webhook_endpoint_secret),
        ),
        (
            Method::POST,
            "/v1/webhooks/{id}/rotate-secret",
            post(key::rotate_webhook_endpoint_secret),
        ),
        (
            Method::POST,
            "/v1/events/{id}/redeliver",
            post(deliveries::redeliver),
        ),
        (
            Method::POST,
            "/admin/v1/webhooks",
            post(admin::create_system_webhook_endpoint),
        ),
        (
            Method::GET,
            "/admin/v1/webhooks",
            get(admin::list_system_webhook_endpoints),
        ),
        (
            Method::GET,
            "/admin/v1/webhooks/deliveries",
            get(admin::list_system_webhook_deliveries),
        ),
        (
            Method::GET,
            "/admin/v1/webhooks/deliveries/{id}",
            get(admin::get_system_webhook_delivery),
        ),
        (
            Method::GET,
            "/admin/v1/webhooks/deliveries/{id}/attempts",
            get(admin::list_system_webhook_delivery_attempts),
        ),
        (
            Method::POST,
            "/admin/v1/webhooks/deliveries/{id}/retry",
            post(admin::retry_system_webhook_delivery),
        ),
        (
            Method::GET,
            "/admin/v1/webhooks/{id}",
            get(admin::get_system_webhook_endpoint),
        ),
        (
            Method::PATCH,
            "/admin/v1/webhooks/{id}",
            patch(admin::update_system_webhook_endpoint),
        ),
        (
            Method::DELETE,
            "/admin/v1/webhooks/{id}",
            delete(admin::delete_system_webhook_endpoint),
        ),
        (
            Method::GET,
            "/admin/v1/webhooks/{id}/secret",
            get(admin::get_system_webhook_endpoint_secret),
        ),
        (
            Method::POST,
            "/admin/v1/webhooks/{id}/rotate-secret",
            post(admin::rotate_system_webhook_endpoint_secret),
        ),
    ]
}
