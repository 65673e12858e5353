//! Webhook endpoints and the delivery log over HTTP.
//!
//! The same handlers serve two scopes: a virtual key's own endpoints and
//! deliveries under `/v1/webhooks` (its task and key events), and the operator's
//! system-event endpoints under `/admin/v1/webhooks` (master key). A record of
//! another scope answers 404, exactly like an unknown id.

mod deliveries;
mod endpoints;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};

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

/// The routes of one scope under `prefix`.
fn routes<S: Scope>(prefix: &str) -> Router<Arc<App>> {
    let path = |rest: &str| format!("{prefix}{rest}");
    Router::new()
        .route(
            &path(""),
            post(endpoints::create::<S>).get(endpoints::list::<S>),
        )
        .route(&path("/deliveries"), get(deliveries::list::<S>))
        .route(&path("/deliveries/{id}"), get(deliveries::get::<S>))
        .route(
            &path("/deliveries/{id}/attempts"),
            get(deliveries::attempts::<S>),
        )
        .route(
            &path("/deliveries/{id}/retry"),
            post(deliveries::retry::<S>),
        )
        .route(
            &path("/{id}"),
            get(endpoints::get::<S>)
                .patch(endpoints::update::<S>)
                .delete(endpoints::delete::<S>),
        )
        .route(&path("/{id}/secret"), get(endpoints::secret::<S>))
        .route(
            &path("/{id}/rotate-secret"),
            post(endpoints::rotate_secret::<S>),
        )
}

/// `/v1/webhooks…` routes for a key's own endpoints and deliveries, and
/// `/v1/events/{id}/redeliver`.
pub fn router() -> Router<Arc<App>> {
    routes::<KeyScope>("/v1/webhooks")
        .route("/v1/events/{id}/redeliver", post(deliveries::redeliver))
}

/// `/admin/v1/webhooks…` routes for system-event endpoints.
pub fn admin_router() -> Router<Arc<App>> {
    routes::<SystemScope>("/admin/v1/webhooks")
}
