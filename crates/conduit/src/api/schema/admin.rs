//! Bodies of the admin API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::keys::model::KeyRecord;

/// `POST /admin/v1/keys`; every field but `name` is optional.
#[derive(Deserialize, ToSchema)]
pub struct CreateKeyRequest {
    pub name: String,
    /// Model names the key may use; empty or absent means all.
    pub allowed_models: Option<Vec<String>>,
    pub rate_limit_rpm: Option<u32>,
    pub rate_limit_rpd: Option<u32>,
    /// USD.
    pub budget: Option<f64>,
    /// RFC 3339.
    pub expires_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// `PATCH /admin/v1/keys/{id}`: the fields to change; `null` clears a limit.
#[derive(Deserialize, ToSchema)]
pub struct UpdateKeyRequest {
    pub name: Option<String>,
    /// `false` disables the key everywhere at once.
    pub enabled: Option<bool>,
    pub allowed_models: Option<Vec<String>>,
    pub rate_limit_rpm: Option<u32>,
    pub rate_limit_rpd: Option<u32>,
    pub budget: Option<f64>,
    pub expires_at: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// The 201 answer of key creation: the only time the key's value is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: KeyRecord,
    /// `condt_…`.
    pub key: String,
    /// `whsec_…`: signs the webhooks of this key's tasks.
    pub webhook_secret: String,
}

/// `GET /admin/v1/keys`.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub object: String,
    pub data: Vec<KeyRecord>,
}

/// `DELETE /admin/v1/keys/{id}`.
#[derive(Serialize, ToSchema)]
pub struct DeletedKey {
    pub id: String,
    pub object: String,
    pub deleted: bool,
}

/// `POST /admin/v1/keys/{id}/rotate-webhook-secret`.
#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    pub id: String,
    pub webhook_secret: String,
    /// Until then the old secret signs too.
    pub previous_secret_expires_at: Option<String>,
}

/// `POST /admin/v1/maintenance`: emits `system.maintenance`.
#[derive(Deserialize, ToSchema)]
pub struct MaintenanceRequest {
    /// `scheduled`, `started` or `ended`.
    pub status: String,
    pub message: Option<String>,
    /// RFC 3339.
    pub starts_at: Option<String>,
    /// RFC 3339.
    pub ends_at: Option<String>,
}

/// `POST /admin/v1/providers/{name}/health`: emits `provider.health_changed`.
#[derive(Deserialize, ToSchema)]
pub struct ProviderHealthRequest {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: String,
    pub previous_status: Option<String>,
    pub latency_ms: Option<u64>,
    pub reason: Option<String>,
}
