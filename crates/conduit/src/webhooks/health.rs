//! Endpoint health: when a registered endpoint is disabled automatically.
//!
//! - A `410 Gone` answer disables it at once (reason `gone`).
//! - Failing without a single success for `webhook_disable_after` (default five
//!   days) disables it too (reason `failing`). The start of the current run of
//!   failures is kept in the endpoint's `failing_since`; a success clears it.
//!
//! Disabling cancels the endpoint's pending deliveries in the same transaction
//! and emits `webhook.endpoint_disabled` to the endpoint's key, so the key
//! hears of it on its other channels (and its other endpoints).
//!
//! Endpoint records are only written under [`super::EndpointDirectory::edit`], by this
//! module and by the API, so a health update never undoes a concurrent edit.

use serde_json::json;

use crate::app::App;
use crate::ids::{format_time, now, parse_time};
use crate::store::Change;

/// `last_success_at` is refreshed at most this often (seconds).
const SUCCESS_STAMP_SECS: i64 = 60;

/// Takes note of one attempt's outcome for a registered endpoint.
pub(super) async fn observe(
    app: &App,
    endpoint_id: &str,
    ok: bool,
    gone: bool,
    status: Option<u16>,
) {
    let Some(endpoint) = app.webhooks.endpoints.get(endpoint_id) else {
        return;
    };
    if endpoint.status != "active" {
        return;
    }
    let at = now();

    // 1. Decide from the in-memory record whether anything must be written.
    let since = |t: &Option<String>| t.as_deref().and_then(parse_time).map(|t| at - t);
    let write = if ok {
        endpoint.failing_since.is_some()
            || since(&endpoint.last_success_at)
                .is_none_or(|age| age.num_seconds() >= SUCCESS_STAMP_SECS)
    } else {
        gone || endpoint.failing_since.is_none() || disable_due(app, &endpoint.failing_since)
    };
    if !write {
        return;
    }

    // 2. Re-read under the edit lock and write.
    let _edit = app.webhooks.endpoints.edit().await;
    let Some(current) = app.webhooks.endpoints.get(endpoint_id) else {
        return;
    };
    if current.status != "active" {
        return;
    }
    let mut next = (*current).clone();
    next.updated_at = format_time(at);
    let reason = if ok {
        next.failing_since = None;
        next.last_success_at = Some(format_time(at));
        None
    } else if gone {
        Some("gone")
    } else if next.failing_since.is_none() {
        next.failing_since = Some(format_time(at));
        None
    } else if disable_due(app, &next.failing_since) {
        Some("failing")
    } else {
        return;
    };
    if let Some(reason) = reason {
        next.status = "disabled".into();
        next.disabled_reason = Some(reason.into());
    }
    if let Err(err) = app
        .store
        .apply(Change::PutEndpoint(Box::new(next.clone())))
        .await
    {
        tracing::error!(endpoint_id, cause = %err, "cannot update webhook endpoint health");
        return;
    }

    // 3. Tell the key.
    if let Some(reason) = reason {
        announce_disabled(app, &next, reason, status).await;
    }
}

/// Whether a failure run that began at `failing_since` has lasted long enough.
fn disable_due(app: &App, failing_since: &Option<String>) -> bool {
    let window = chrono::Duration::from_std(app.config.webhook_disable_after).unwrap_or_default();
    failing_since
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|t| now() - t >= window)
}

/// Emits `webhook.endpoint_disabled` for the endpoint's key.
async fn announce_disabled(
    app: &App,
    endpoint: &super::model::Endpoint,
    reason: &str,
    status: Option<u16>,
) {
    tracing::warn!(endpoint_id = %endpoint.id, reason, last_status = status, "webhook endpoint disabled");
    // LIMITATION: an admin endpoint (system events) has no key to tell; its
    // disabling is only logged. A notification channel for operators would lift this.
    let Some(key_id) = &endpoint.key_id else {
        return;
    };
    let data = json!({
        "endpointId": endpoint.id,
        "url": endpoint.url,
        "reason": reason,
        "lastStatus": status,
    });
    let change = Change::Emit {
        key_id: Some(key_id.clone()),
        event_type: "webhook.endpoint_disabled".into(),
        data,
    };
    if let Err(err) = app.store.apply(change).await {
        tracing::error!(endpoint_id = %endpoint.id, cause = %err, "cannot emit webhook.endpoint_disabled");
    }
}
