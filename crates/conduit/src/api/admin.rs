//! The admin API for virtual keys (master key): create, list, read, update,
//! delete, and rotate a key's task-webhook secret.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::fields::{Fields, JsonBody, metadata};
use super::schema::admin::{
    CreateKeyRequest, CreatedKey, DeletedKey, KeyList, RotatedSecret, UpdateKeyRequest,
};
use crate::app::App;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::ids::{now, parse_time};
use crate::keys::auth::AdminKey;
use crate::keys::model::{KeyRecord, VirtualKey, bounds};
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

/// Fields of a key that the admin API sets (`enabled` on update only).
const KEY_FIELDS: &[&str] = &[
    "enabled",
    "name",
    "allowed_models",
    "rate_limit_rpm",
    "rate_limit_rpd",
    "budget",
    "expires_at",
    "metadata",
];

/// Applies the limit fields shared by create and update.
fn apply_limits(app: &App, key: &mut VirtualKey, fields: &Fields<'_>) -> Result<(), ApiError> {
    if let Some(models) = string_list(fields, "allowed_models")? {
        if let Some(unknown) = models.iter().find(|m| !app.models.is_known(m)) {
            return Err(ApiError::invalid(
                "allowed_models",
                "model_not_found",
                format!("`{unknown}` is not a model this gateway serves."),
            ));
        }
        key.allowed_models = models;
    }
    if fields.0.contains_key("rate_limit_rpm") {
        key.rate_limit_rpm = fields
            .integer("rate_limit_rpm", bounds::RPM)?
            .map(|v| v as u32);
    }
    if fields.0.contains_key("rate_limit_rpd") {
        key.rate_limit_rpd = fields
            .integer("rate_limit_rpd", bounds::RPD)?
            .map(|v| v as u32);
    }
    if fields.0.contains_key("budget") {
        key.budget = fields.number("budget", bounds::BUDGET)?;
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
#[utoipa::path(
    post,
    path = "/admin/v1/keys",
    tag = "admin",
    description = "Creates a virtual key.",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The key; its value and webhook secret are shown only now.", body = CreatedKey),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 400, description = "A bad field, named in `param`.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn create_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = Fields(&body);
    fields.only(&KEY_FIELDS[1..])?;
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
    apply_limits(&app, &mut key, &fields)?;
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
    let created = CreatedKey {
        webhook_secret: key.webhook_secret.clone(),
        record: key.record(),
        key: value,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /admin/v1/keys`.
#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "admin",
    description = "Lists virtual keys.",
    responses(
        (status = 200, description = "Every key (never its value).", body = KeyList),
        (status = 401, description = "Not the master key.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn list_keys(State(app): State<Arc<App>>, _: AdminKey) -> Json<KeyList> {
    let data = app.keys.all().iter().map(|k| k.record()).collect();
    Json(KeyList {
        object: "list".into(),
        data,
    })
}

fn find(app: &App, id: &str) -> Result<Arc<VirtualKey>, ApiError> {
    app.keys.by_id(id).ok_or_else(|| ApiError::not_found("key"))
}

/// The key as stored now, for a read-modify-write: the in-memory directory may
/// not have caught up yet with a change made by `conduit keys` (it reloads
/// every two seconds), and writing its copy back would undo that change.
async fn find_stored(app: &App, id: &str) -> Result<VirtualKey, ApiError> {
    find(app, id)?;
    app.store
        .key(id)
        .await?
        .ok_or_else(|| ApiError::not_found("key"))
}

/// `GET /admin/v1/keys/{id}`.
#[utoipa::path(
    get,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    description = "Reads a virtual key.",
    params(("id" = String, Path, description = "The key id.")),
    responses(
        (status = 200, description = "The key (never its value).", body = KeyRecord),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn get_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    Ok(Json(find(&app, &id)?.record()))
}

/// `PATCH /admin/v1/keys/{id}`: changes fields; `{"enabled": false}` disables the
/// key everywhere at once (its hub connections are told and closed).
#[utoipa::path(
    patch,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    description = "Changes a key; `enabled: false` disables it everywhere at once.",
    request_body = UpdateKeyRequest,
    params(("id" = String, Path, description = "The key id.")),
    responses(
        (status = 200, description = "The updated key.", body = KeyRecord),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 400, description = "A bad field, named in `param`.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn update_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<KeyRecord>, ApiError> {
    let fields = Fields(&body);
    fields.only(KEY_FIELDS)?;
    let mut key = find_stored(&app, &id).await?;
    let was_enabled = key.enabled;
    if let Some(name) = fields.string("name", bounds::NAME_CHARS)? {
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
    apply_limits(&app, &mut key, &fields)?;
    // A key that was disabled only because it expired comes back when its
    // expiry is moved into the future (unless `enabled` says otherwise).
    let extended = key.expires_at.is_none_or(|at| at > now());
    if !key.enabled
        && key.disabled_reason.as_deref() == Some("expired")
        && fields.0.contains_key("expires_at")
        && extended
        && !fields.0.contains_key("enabled")
    {
        key.enabled = true;
        key.disabled_reason = None;
    }
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
    Ok(Json(key.record()))
}

/// `DELETE /admin/v1/keys/{id}`.
#[utoipa::path(
    delete,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    description = "Deletes a virtual key.",
    params(("id" = String, Path, description = "The key id.")),
    responses(
        (status = 200, description = "Deleted; the key is refused everywhere at once.", body = DeletedKey),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn delete_key(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<DeletedKey>, ApiError> {
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
    Ok(Json(DeletedKey {
        id,
        object: "virtual_key".into(),
        deleted: true,
    }))
}

/// `POST /admin/v1/keys/{id}/rotate-webhook-secret`: a new task-webhook secret;
/// the old one keeps signing for the grace period.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/rotate-webhook-secret",
    tag = "admin",
    description = "Rotates the key's task-webhook secret.",
    params(("id" = String, Path, description = "The key id.")),
    responses(
        (status = 200, description = "The new secret; the old one signs too until it expires.", body = RotatedSecret),
        (status = 401, description = "Not the master key.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody)
    ),
    security(("master_key" = []))
)]
pub async fn rotate_key_secret(
    State(app): State<Arc<App>>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let mut key = find_stored(&app, &id).await?;
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
    Ok(Json(RotatedSecret {
        previous_secret_expires_at: key
            .previous_webhook_secret
            .as_ref()
            .map(|(_, t)| crate::ids::format_time(*t)),
        webhook_secret: key.webhook_secret.clone(),
        id: key.id.clone(),
    }))
}
