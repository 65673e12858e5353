//! Operations: liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;

/// `GET /health`: the process is up.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "Up.", body = super::schema::responses::Status)))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the store answers and the process is not shutting down.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Store and bus reachable.", body = super::schema::responses::Status),
        (status = 503, description = "Not ready or shutting down.", body = super::schema::responses::Status)
    )
)]
pub async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting_down"})),
        )
            .into_response();
    }
    match app.store.last_event_position().await {
        Ok(_) => Json(json!({"status": "ready", "store": "ok", "bus": "ok"})).into_response(),
        Err(err) => {
            tracing::warn!(cause = %err, "store not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "store": "error"})),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition.", content_type = "text/plain", body = String)))]
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    metrics::gauge!("conduit_tasks_running").set(app.runner.running() as f64);
    if let Ok((depth, age)) = app.store.outbox_depth().await {
        metrics::gauge!("conduit_webhook_queue_depth").set(depth as f64);
        metrics::gauge!("conduit_webhook_oldest_due_seconds").set(age);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
