//! Webhook endpoints and the delivery log over HTTP.

use std::sync::Arc;

use axum::Router;

use crate::app::App;

/// `/v1/webhooks…` routes for a key's own endpoints and deliveries.
pub fn router() -> Router<Arc<App>> {
    Router::new()
}

/// `/admin/v1/webhooks…` routes for system-event endpoints.
pub fn admin_router() -> Router<Arc<App>> {
    Router::new()
}
