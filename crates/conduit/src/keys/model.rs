//! The virtual key record.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Limits on a key's settings, the same for the admin API and the command line.
pub mod bounds {
    /// Characters in a key's name at most.
    pub const NAME_CHARS: usize = 128;
    pub const RPM: std::ops::RangeInclusive<i64> = 1..=1_000_000;
    pub const RPD: std::ops::RangeInclusive<i64> = 1..=100_000_000;
    /// USD.
    pub const BUDGET: std::ops::RangeInclusive<f64> = 0.0..=1e12;
}

/// A client's credential with its limits. The key's value is never stored; only
/// its SHA-256 hash is.
#[derive(Debug, Clone)]
pub struct VirtualKey {
    pub id: String,
    pub name: String,
    pub key_hash: [u8; 32],
    /// The first characters of the value (`condt_AbCd`), to tell keys apart in lists.
    pub key_prefix: String,
    pub enabled: bool,
    /// Why the key was disabled: `manual`, `expired` or `budget`.
    pub disabled_reason: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Model names this key may use; empty means every model.
    pub allowed_models: Vec<String>,
    pub rate_limit_rpm: Option<u32>,
    pub rate_limit_rpd: Option<u32>,
    /// Budget in USD; `None` means unlimited.
    pub budget: Option<f64>,
    pub spend: f64,
    pub metadata: Map<String, Value>,
    /// `whsec_…`: signs the webhooks of this key's tasks.
    pub webhook_secret: String,
    /// The secret before the last rotation, still signing until it expires.
    pub previous_webhook_secret: Option<(String, DateTime<Utc>)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl VirtualKey {
    /// Why this key cannot be used right now, if it cannot: `(code, message)`.
    /// A key that upkeep disabled because it expired still says it expired.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<(&'static str, &'static str)> {
        let expired = self.expires_at.is_some_and(|at| at <= now)
            || self.disabled_reason.as_deref() == Some("expired");
        if expired {
            return Some(("key_expired", "This virtual key has expired."));
        }
        if !self.enabled {
            return Some(("key_disabled", "This virtual key is disabled."));
        }
        None
    }

    /// Whether the budget is used up.
    pub fn budget_exhausted(&self) -> bool {
        self.budget.is_some_and(|budget| self.spend >= budget)
    }

    /// Whether `model` may be used with this key.
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|m| m == model)
    }

    /// The record as the admin API shows it (never the value or the secret).
    pub fn record(&self) -> KeyRecord {
        KeyRecord {
            id: self.id.clone(),
            object: "virtual_key",
            name: self.name.clone(),
            key_prefix: self.key_prefix.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            expires_at: self.expires_at.map(crate::ids::format_time),
            allowed_models: self.allowed_models.clone(),
            rate_limit_rpm: self.rate_limit_rpm,
            rate_limit_rpd: self.rate_limit_rpd,
            budget: self.budget,
            spend: self.spend,
            metadata: self.metadata.clone(),
            created_at: crate::ids::format_time(self.created_at),
            updated_at: crate::ids::format_time(self.updated_at),
        }
    }
}

/// A key as listed by the admin API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyRecord {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub key_prefix: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub expires_at: Option<String>,
    pub allowed_models: Vec<String>,
    pub rate_limit_rpm: Option<u32>,
    pub rate_limit_rpd: Option<u32>,
    pub budget: Option<f64>,
    pub spend: f64,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}
