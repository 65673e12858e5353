//! The admin API (master key): virtual keys, maintenance notices and provider
//! health announcements.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fields::{Fields, JsonBody, metadata};
use crate::app::App;
use crate::error::ApiError;
use crate::ids::{now, parse_time};
use crate::keys::auth::AdminKey;
use crate::keys::model::VirtualKey;
use crate::keys::secrets;
use crate::store::Change;

fn string_list(fields: &Fields<'_>, name: &str) -> Result<Option<Vec<String>>, ApiError> {
    match fields.0.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() <= 100 => items
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() && s.len() <= 128 => Ok(s.clone()),
                _ => Err(ApiError::invalid(
                    name,
                    "invalid_type",
                    format!("`{name}` must be a list of names."),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ApiError::invalid(
            name,
            "invalid_type",
            format!("`{name}` must be a list of at most 100 names."),
        )),
    }
}

fn expires_at(
    fields: &Fields<'_>,
) -> Result<Option<Option<chrono::DateTime<chrono::Utc>>>, ApiError> {
    match fields.0.get("expires_at") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => parse_time(s).map(|t| Some(Some(t))).ok_or_else(|| {
            ApiError::invalid(
                "expires_at",
                "invalid_value",
                "`expires_at` must be an RFC 3339 time like 2027-01-01T00:00:00Z.",
            )
        }),
        Some(_) => Err(ApiError::invalid(
            "expires_at",
            "invalid_type",
            "`expires_at` must be a string or null.",
        )),
    }
}

/// Applies the limit fields shared by create and update.
fn apply_limits(key: &mut VirtualKey, fields: &Fields<'_>) -> Result<(), ApiError> {
    if let Some(models) = string_list(fields, "allowed_models")? {
        key.allowed_models = models;
    }
    if fields.0.contains_key("rate_limit_rpm") {
        key.rate_limit_rpm = fields
            .integer("rate_limit_rpm", 1..=1_000_000)?
            .map(|v| v as u32);
    }
    if fields.0.contains_key("rate_limit_rpd") {
        key.rate_limit_rpd = fields
            .integer("rate_limit_rpd", 1..=100_000_000)?
            .map(|v| v as u32);
    }
    if fields.0.contains_key("budget") {
        key.budget = fields.number("budget", 0.0..=1e12)?;
    }
    if let Some(expiry) = expires_at(fields)? {
        key.expires_at = expiry;
    }
    if let Some(meta) = metadata(fields)? {
        key.metadata = meta;
    }
    Ok(())
}

/// `POST /admin/v1/keys`: 201 with the record, the key's value and its webhook secret.
pub async fn create_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = Fields(&body);
    let name = fields.required_string("name", 128)?;
    let value = secrets::generate_key();
    let mut key = VirtualKey {
        id: crate::ids::new_id("key"),
        name,
        key_hash: secrets::hash_key(&value),
        key_prefix: secrets::display_prefix(&value),
        enabled: true,
        disabled_reason: None,
        expires_at: None,
        allowed_models: vec![],
        rate_limit_rpm: None,
        rate_limit_rpd: None,
        budget: None,
        spend: 0.0,
        metadata: Default::default(),
        webhook_secret: secrets::generate_webhook_secret(),
        previous_webhook_secret: None,
        created_at: now(),
        updated_at: now(),
    };
    apply_limits(&mut key, &fields)?;
    let applied = app
        .store
        .apply(Change::PutKey {
            key: Box::new(key),
            event: None,
        })
        .await?;
    let key = applied
        .key
        .ok_or_else(|| ApiError::internal("key missing after commit"))?;
    tracing::info!(key_id = %key.id, "virtual key created");
    let mut record = serde_json::to_value(key.record()).map_err(ApiError::internal)?;
    record["key"] = json!(value);
    record["webhook_secret"] = json!(key.webhook_secret);
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `GET /admin/v1/keys`.
pub async fn list_keys(State(app): State<Arc<App>>, _: AdminKey) -> Json<Value> {
    let data: Vec<Value> = app
        .keys
        .all()
        .iter()
        .filter_map(|k| serde_json::to_value(k.record()).ok())
        .collect();
    Json(json!({"object": "list", "data": data}))
}

fn find(app: &App, id: &str) -> Result<Arc<VirtualKey>, ApiError> {
    app.keys.by_id(id).ok_or_else(|| ApiError::not_found("key"))
}

/// `GET /admin/v1/keys/{id}`.
pub async fn get_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = find(&app, &id)?;
    Ok(Json(
        serde_json::to_value(key.record()).map_err(ApiError::internal)?,
    ))
}

/// `PATCH /admin/v1/keys/{id}`: changes fields; `{"enabled": false}` disables the
/// key everywhere at once (its hub connections are told and closed).
pub async fn update_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let fields = Fields(&body);
    let mut key = (*find(&app, &id)?).clone();
    let was_enabled = key.enabled;
    if let Some(name) = fields.string("name", 128)? {
        if name.trim().is_empty() {
            return Err(ApiError::invalid(
                "name",
                "empty_field",
                "`name` must not be empty.",
            ));
        }
        key.name = name;
    }
    if let Some(enabled) = fields.boolean("enabled")? {
        key.enabled = enabled;
        key.disabled_reason = (!enabled).then(|| "manual".to_string());
    }
    apply_limits(&mut key, &fields)?;
    key.updated_at = now();
    let event = (was_enabled && !key.enabled).then(|| {
        (
            "key.disabled".to_string(),
            json!({"keyId": key.id, "keyName": key.name, "reason": "manual"}),
        )
    });
    let applied = app
        .store
        .apply(Change::PutKey {
            key: Box::new(key),
            event,
        })
        .await?;
    let key = applied
        .key
        .ok_or_else(|| ApiError::internal("key missing after commit"))?;
    Ok(Json(
        serde_json::to_value(key.record()).map_err(ApiError::internal)?,
    ))
}

/// `DELETE /admin/v1/keys/{id}`.
pub async fn delete_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = find(&app, &id)?;
    // Tell the key's live channels first, then remove it.
    let data = json!({"keyId": key.id, "keyName": key.name, "reason": "deleted"});
    let mut disabled = (*key).clone();
    disabled.enabled = false;
    disabled.disabled_reason = Some("deleted".into());
    app.store
        .apply(Change::PutKey {
            key: Box::new(disabled),
            event: Some(("key.disabled".into(), data)),
        })
        .await?;
    app.store
        .apply(Change::DeleteKey { id: id.clone() })
        .await?;
    app.limits.forget(&id);
    Ok(Json(
        json!({"id": id, "object": "virtual_key", "deleted": true}),
    ))
}

/// `POST /admin/v1/keys/{id}/rotate-webhook-secret`: a new task-webhook secret;
/// the old one keeps signing for the grace period.
pub async fn rotate_key_secret(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut key = (*find(&app, &id)?).clone();
    let grace = chrono::Duration::from_std(app.config.webhook_secret_grace).unwrap_or_default();
    let old = std::mem::replace(&mut key.webhook_secret, secrets::generate_webhook_secret());
    key.previous_webhook_secret = Some((old, now() + grace));
    key.updated_at = now();
    let applied = app
        .store
        .apply(Change::PutKey {
            key: Box::new(key),
            event: None,
        })
        .await?;
    let key = applied
        .key
        .ok_or_else(|| ApiError::internal("key missing after commit"))?;
    Ok(Json(json!({
        "id": key.id,
        "webhook_secret": key.webhook_secret,
        "previous_secret_expires_at": key.previous_webhook_secret.as_ref().map(|(_, t)| crate::ids::format_time(*t)),
    })))
}

/// `POST /admin/v1/maintenance`: emits `system.maintenance` to every channel.
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
pub async fn provider_health(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
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
