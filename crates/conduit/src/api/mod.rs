//! The HTTP API: one module per resource, assembled into one router here.

pub mod admin;
pub mod events;
pub mod fields;
pub mod ops;
pub mod submit;
pub mod tasks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::App;
use crate::error::ApiError;

/// The whole HTTP surface (hubs are merged in by the caller).
pub fn router(app: Arc<App>) -> Router {
    let media = Router::new()
        .fallback_service(ServeDir::new(app.media.dir()).append_index_html_on_directories(false))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ));

    let client = Router::new()
        .route("/v1/images/generations", post(submit::images))
        .route("/v1/images/generations/async", post(submit::images_async))
        .route("/v1/images/generations/{id}/status", get(tasks::alias))
        .route("/v1/videos/generations", post(submit::videos))
        .route("/v1/videos/generations/async", post(submit::videos))
        .route("/v1/videos/generations/tasks/{id}", get(tasks::alias))
        .route("/v1/audio/speech", post(submit::speech))
        .route("/v1/audio/transcriptions", post(submit::transcriptions))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::get).delete(tasks::cancel))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{id}/poll", get(tasks::poll))
        .route("/v1/tasks/{id}/events", get(tasks::events))
        .route("/v1/events", get(events::feed))
        .merge(crate::webhooks::api::router());

    let admin = Router::new()
        .route(
            "/admin/v1/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route(
            "/admin/v1/keys/{id}",
            get(admin::get_key)
                .patch(admin::update_key)
                .delete(admin::delete_key),
        )
        .route(
            "/admin/v1/keys/{id}/rotate-webhook-secret",
            post(admin::rotate_key_secret),
        )
        .route("/admin/v1/maintenance", post(admin::maintenance))
        .route(
            "/admin/v1/providers/{name}/health",
            post(admin::provider_health),
        )
        .merge(crate::webhooks::api::admin_router());

    Router::new()
        .merge(client)
        .merge(admin)
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(crate::openapi::document))
        .nest_service("/v1/media", media)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

async fn not_found() -> ApiError {
    let mut err = ApiError::bad_request(
        "unknown_route",
        "No such route. See /openapi.json for the API.",
    );
    err.status = StatusCode::NOT_FOUND;
    err
}

async fn method_not_allowed() -> ApiError {
    let mut err = ApiError::bad_request(
        "method_not_allowed",
        "This route does not accept that method.",
    );
    err.status = StatusCode::METHOD_NOT_ALLOWED;
    err
}

/// Counts and times every request, logs it at debug, and turns axum's plain-text
/// rejections (bad path or query) into OpenAI-shaped errors.
async fn observe(State(_app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status();
    let response = reshape_plain_error(response).await;
    let elapsed = started.elapsed();
    metrics::counter!("conduit_http_requests_total", "route" => route.clone(), "status" => status.as_u16().to_string()).increment(1);
    metrics::histogram!("conduit_http_request_seconds", "route" => route.clone())
        .record(elapsed.as_secs_f64());
    tracing::debug!(%method, route, status = status.as_u16(), elapsed_us = elapsed.as_micros() as u64, "request");
    response
}

/// axum answers malformed paths and queries with a text/plain 4xx; clients of an
/// OpenAI-style API expect the JSON error shape everywhere.
async fn reshape_plain_error(response: Response) -> Response {
    let status = response.status();
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if !status.is_client_error() || !is_plain || status == StatusCode::NOT_MODIFIED {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    crate::error::from_rejection(status, String::from_utf8_lossy(&body).into_owned())
        .into_response()
}
