//! The HTTP API: one module per resource, assembled into one router here.

pub mod admin;
pub mod announce;
pub mod events;
pub mod fields;
pub mod images;
pub mod ops;
pub mod schema;
pub mod speech;
pub mod submit;
pub mod tasks;
pub mod transcribe;
pub mod videos;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use tower_http::services::ServeDir;

use crate::app::App;
use crate::error::ApiError;

/// Every route of the client, admin, webhook and operations API, as `(method,
/// path, handler)`. The router is built from this table and `/openapi.json` is
/// checked against it, so neither can drift from the other. Webhook routes are
/// listed by `webhooks::api`, media come from a file service, hubs from `hubs`.
fn table() -> Vec<(Method, &'static str, MethodRouter<Arc<App>>)> {
    let mut table = vec![
        (Method::POST, "/v1/images/generations", post(images::images)),
        (
            Method::POST,
            "/v1/images/generations/async",
            post(images::images_async),
        ),
        (
            Method::GET,
            "/v1/images/generations/{id}/status",
            get(tasks::image_status),
        ),
        (Method::POST, "/v1/videos/generations", post(videos::videos)),
        (
            Method::POST,
            "/v1/videos/generations/async",
            post(videos::videos_async),
        ),
        (
            Method::GET,
            "/v1/videos/generations/tasks/{id}",
            get(tasks::video_status),
        ),
        (Method::POST, "/v1/audio/speech", post(speech::speech)),
        (
            Method::POST,
            "/v1/audio/transcriptions",
            post(transcribe::transcriptions),
        ),
        (Method::GET, "/v1/tasks", get(tasks::list)),
        (Method::GET, "/v1/tasks/{id}", get(tasks::get)),
        (Method::DELETE, "/v1/tasks/{id}", delete(tasks::delete)),
        (Method::POST, "/v1/tasks/{id}/cancel", post(tasks::cancel)),
        (Method::GET, "/v1/tasks/{id}/poll", get(tasks::poll)),
        (Method::GET, "/v1/tasks/{id}/events", get(tasks::events)),
        (Method::GET, "/v1/events", get(events::feed)),
        (Method::POST, "/admin/v1/keys", post(admin::create_key)),
        (Method::GET, "/admin/v1/keys", get(admin::list_keys)),
        (Method::GET, "/admin/v1/keys/{id}", get(admin::get_key)),
        (
            Method::PATCH,
            "/admin/v1/keys/{id}",
            patch(admin::update_key),
        ),
        (
            Method::DELETE,
            "/admin/v1/keys/{id}",
            delete(admin::delete_key),
        ),
        (
            Method::POST,
            "/admin/v1/keys/{id}/rotate-webhook-secret",
            post(admin::rotate_key_secret),
        ),
        (
            Method::POST,
            "/admin/v1/maintenance",
            post(announce::maintenance),
        ),
        (
            Method::POST,
            "/admin/v1/providers/{name}/health",
            post(announce::provider_health),
        ),
        (Method::GET, "/health", get(ops::health)),
        (Method::GET, "/ready", get(ops::ready)),
        (Method::GET, "/metrics", get(ops::metrics)),
        (Method::GET, "/openapi.json", get(crate::openapi::document)),
    ];
    table.extend(crate::webhooks::api::table());
    table
}

/// The `(method, path)` of every route in the table, in axum's path syntax;
/// generated media is served under [`MEDIA_ROUTE`] besides.
pub fn routes() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// Where generated media is served (`GET`, no credentials).
pub const MEDIA_ROUTE: &str = "/v1/media/{file}";

/// The whole HTTP surface (hubs are merged in by the caller).
pub fn router(app: Arc<App>) -> Router {
    let media = Router::new()
        .fallback_service(ServeDir::new(app.media.dir()).append_index_html_on_directories(false))
        .layer(middleware::map_response(media_answer))
        .layer(middleware::map_request(plain_ranges_only));

    let mut api = Router::new();
    for (_, path, handler) in table() {
        api = api.route(path, handler);
    }
    api.nest_service("/v1/media", media)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Keeps a `Range` header only if it asks for one byte range (`bytes=0-99`,
/// `bytes=100-`, `bytes=-100`): anything else is ignored and the whole file is
/// served, as RFC 9110 §14.2 allows, rather than refused.
async fn plain_ranges_only(mut request: Request) -> Request {
    let plain = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("bytes=").is_some_and(|spec| {
                let mut ends = spec.trim().splitn(2, '-');
                let (first, last) = (ends.next().unwrap_or(""), ends.next());
                last.is_some_and(|last| {
                    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
                    digits(first) && digits(last) && !(first.is_empty() && last.is_empty())
                })
            })
        });
    if plain == Some(false) {
        request.headers_mut().remove(header::RANGE);
    }
    request
}

/// Media files never change, so a found file may be cached for good; anything
/// else (a missing file, a wrong method) is an ordinary JSON error that is not.
async fn media_answer(mut response: Response) -> Response {
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        return response;
    }
    let mut err = match status {
        StatusCode::NOT_FOUND => ApiError::not_found("media file"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::bad_request(
            "method_not_allowed",
            "Media files are read with GET or HEAD.",
        ),
        StatusCode::RANGE_NOT_SATISFIABLE => ApiError::bad_request(
            "range_not_satisfiable",
            "The requested range is outside the file.",
        ),
        _ => ApiError::bad_request("invalid_request", "The media request could not be served."),
    };
    err.status = status;
    let content_range = response.headers_mut().remove(header::CONTENT_RANGE);
    let mut answer = err.into_response();
    if let Some(range) = content_range {
        answer.headers_mut().insert(header::CONTENT_RANGE, range);
    }
    answer
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

/// Refuses a request that carries a webhook delivery's signature (on the API
/// routes through [`observe`], on the hubs as a layer of their own): a webhook
/// pointed at a Conduit gateway (this one behind another name, or another
/// instance) must not act on it, or one delivery could start a loop of them.
pub async fn refuse_webhook_deliveries(request: Request, next: Next) -> Response {
    match webhook_delivery_refusal(&request) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

fn webhook_delivery_refusal(request: &Request) -> Option<Response> {
    let headers = request.headers();
    if !headers.contains_key("webhook-signature") && !headers.contains_key("x-conduit-signature") {
        return None;
    }
    let mut err = ApiError::bad_request(
        "webhook_loop",
        "This request is a Conduit webhook delivery; the gateway does not accept webhook deliveries.",
    );
    err.status = StatusCode::FORBIDDEN;
    Some(err.into_response())
}

/// Counts and times every request, logs it at debug, and turns axum's plain-text
/// rejections (bad path or query) into OpenAI-shaped errors.
async fn observe(State(_app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(refusal) = webhook_delivery_refusal(&request) {
        return refusal;
    }
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
