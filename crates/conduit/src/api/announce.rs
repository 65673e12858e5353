//! Admin announcements (master key): maintenance notices and provider health
//! changes, each emitted as a system event that every key sees on every channel.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fields::{Fields, JsonBody};
use super::schema::admin::{MaintenanceRequest, ProviderHealthRequest};
use super::schema::responses::EventEnvelope;
use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::ids::parse_time;
use crate::keys::auth::AdminKey;
use crate::store::Change;

/// `POST /admin/v1/maintenance`: emits `system.maintenance` to every channel.
#[utoipa::path(
    post,
    path = "/admin/v1/maintenance",
    tag = "admin",
    description = "Announces maintenance to every key on every channel.",
    request_body = MaintenanceRequest,
    responses(
        (status = 201, description = "The emitted event.", body = EventEnvelope),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 400, description = "A bad field, named in `param`.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn maintenance(
    State(app): State<Arc<App>>,
    _: AdminKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = Fields(&body);
    let status = fields
        .choice("status", &["scheduled", "started", "ended"])?
        .ok_or_else(|| {
            ApiError::invalid(
                "status",
                "missing_field",
                "`status` is required: scheduled, started or ended.",
            )
        })?;
    let message = fields.string("message", 1000)?.unwrap_or_default();
    let time = |name: &str| -> Result<Value, ApiError> {
        match fields.string(name, 64)? {
            None => Ok(Value::Null),
            Some(t) => parse_time(&t)
                .map(|t| Value::String(crate::ids::format_time(t)))
                .ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        "invalid_value",
                        format!("`{name}` must be an RFC 3339 time."),
                    )
                }),
        }
    };
    let data = json!({"status": status, "message": message, "startsAt": time("starts_at")?, "endsAt": time("ends_at")?});
    emit_system(&app, "system.maintenance", data).await
}

/// `POST /admin/v1/providers/{name}/health`: announces a provider's health change.
#[utoipa::path(
    post,
    path = "/admin/v1/providers/{name}/health",
    tag = "admin",
    description = "Announces a provider's health change to every key.",
    request_body = ProviderHealthRequest,
    params(("name" = String, Path, description = "The provider name.")),
    responses(
        (status = 201, description = "The emitted event.", body = EventEnvelope),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 400, description = "A bad field, named in `param`, or an unknown provider.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn provider_health(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if app.providers.get(&name).is_none() {
        return Err(ApiError::invalid(
            "name",
            "unknown_provider",
            format!(
                "This gateway has no provider named `{name}`; it has: {}.",
                app.providers.names().join(", ")
            ),
        ));
    }
    let fields = Fields(&body);
    let status = fields
        .choice("status", &["healthy", "degraded", "unhealthy"])?
        .ok_or_else(|| {
            ApiError::invalid(
                "status",
                "missing_field",
                "`status` is required: healthy, degraded or unhealthy.",
            )
        })?;
    let data = json!({
        "provider": name,
        "status": status,
        "previousStatus": fields.choice("previous_status", &["healthy", "degraded", "unhealthy"])?,
        "latencyMs": fields.integer("latency_ms", 0..=3_600_000)?,
        "reason": fields.string("reason", 1000)?,
    });
    emit_system(&app, "provider.health_changed", data).await
}

async fn emit_system(app: &App, event_type: &str, data: Value) -> Result<Response, ApiError> {
    let change = Change::Emit {
        key_id: None,
        event_type: event_type.into(),
        data,
    };
    let applied = app.store.apply(change).await?;
    let event = applied
        .events
        .first()
        .ok_or_else(|| ApiError::internal("event missing after commit"))?;
    let body: Value = serde_json::from_slice(&event.body).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
