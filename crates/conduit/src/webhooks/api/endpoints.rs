//! Registered endpoints: create, list, read, update, disable, delete, and their
//! signing secrets (read, rotate with a grace period).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::Scope;
use crate::api::fields::{Fields, JsonBody};
use crate::api::schema::webhooks::{
    CreatedWebhookEndpoint, DeletedWebhookEndpoint, WebhookEndpoint, WebhookEndpointList,
    WebhookSecret,
};
use crate::app::App;
use crate::error::ApiError;
use crate::events::catalog;
use crate::events::filter::TypeFilter;
use crate::ids::{format_time, new_id, now};
use crate::keys::secrets;
use crate::store::Change;
use crate::webhooks::model::Endpoint;

/// Endpoints one owner may register (so the list needs no paging).
const MAX_ENDPOINTS: usize = 500;

/// The endpoint as the API shows it (never its secret).
fn view(e: &Endpoint) -> WebhookEndpoint {
    WebhookEndpoint {
        id: e.id.clone(),
        object: "webhook_endpoint",
        url: e.url.clone(),
        description: e.description.clone(),
        events: e.events.clone(),
        rate_limit: e.rate_limit,
        headers: e.headers.clone(),
        status: e.status.clone(),
        disabled_reason: e.disabled_reason.clone(),
        last_success_at: e.last_success_at.clone(),
        failing_since: e.failing_since.clone(),
        created_at: e.created_at.clone(),
        updated_at: e.updated_at.clone(),
    }
}

/// The endpoint `id` if this scope may see it; 404 otherwise.
fn find<S: Scope>(app: &App, scope: &S, id: &str) -> Result<Arc<Endpoint>, ApiError> {
    app.webhooks
        .endpoints
        .get(id)
        .filter(|e| scope.sees(e.key_id.as_deref()))
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

/// Checks `url` like a task's `webhook_url` (form and SSRF), naming the field `url`.
async fn checked_url(app: &App, url: &str) -> Result<String, ApiError> {
    crate::webhooks::check_webhook_url(app, url)
        .await
        .map_err(|mut err| {
            err.param = Some("url".into());
            err
        })
}

/// `events`: a list of type patterns (`image.*`, `video.progress`, `*`), each of
/// which must match an event this scope receives (a key's task and key events,
/// or system events for admin endpoints).
fn events(fields: &Fields<'_>, key_id: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let bad = |message: String| ApiError::invalid("events", "invalid_events", message);
    let Some(value) = fields.0.get("events").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(bad(
            "`events` must be a list such as [\"image.*\", \"video.completed\"].".into(),
        ));
    };
    if items.is_empty() || items.len() > 100 {
        return Err(bad("`events` must hold from 1 to 100 patterns.".into()));
    }
    let patterns: Vec<&str> = items
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| bad("Every entry of `events` must be a string.".into()))
        })
        .collect::<Result<_, _>>()?;
    let filter =
        TypeFilter::from_patterns(patterns.iter().copied()).map_err(|e| bad(format!("{e}.")))?;
    let receivable = match key_id {
        Some(_) => catalog::key_types(),
        None => catalog::system_types(),
    };
    if let Some(pattern) = catalog::unmatched(&filter, receivable) {
        return Err(bad(format!(
            "`{pattern}` matches no event this endpoint can receive; it can receive: {}.",
            receivable.join(", ")
        )));
    }
    Ok(Some(patterns.into_iter().map(str::to_string).collect()))
}

/// `headers`: extra request headers, none of which may replace Conduit's own.
fn headers(fields: &Fields<'_>) -> Result<Option<Map<String, Value>>, ApiError> {
    let bad = |message: String| ApiError::invalid("headers", "invalid_headers", message);
    let Some(map) = fields.object("headers")? else {
        return Ok(None);
    };
    if let Some(problem) = crate::webhooks::custom_headers_problem("headers", &map) {
        return Err(bad(problem));
    }
    Ok(Some(map))
}

/// `rate_limit`: deliveries per second, or `null` for none.
fn rate_limit(fields: &Fields<'_>) -> Result<Option<Option<u32>>, ApiError> {
    if !fields.0.contains_key("rate_limit") {
        return Ok(None);
    }
    Ok(Some(
        fields.integer("rate_limit", 1..=10_000)?.map(|v| v as u32),
    ))
}

/// Writes the endpoint and returns it as committed.
async fn put(app: &App, endpoint: Endpoint) -> Result<Endpoint, ApiError> {
    app.store
        .apply(Change::PutEndpoint(Box::new(endpoint)))
        .await?
        .endpoint
        .ok_or_else(|| ApiError::internal("endpoint missing after commit"))
}

/// `POST …/webhooks`: 201 with the endpoint and its `secret`.
pub(super) async fn create<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = Fields(&body);
    let url = checked_url(&app, &fields.required_string("url", 2048)?).await?;
    let events = events(&fields, scope.key_id())?.unwrap_or_else(|| vec!["*".into()]);
    let description = fields.string("description", 512)?;
    let rate_limit = rate_limit(&fields)?.flatten();
    let headers = headers(&fields)?.unwrap_or_default();
    // An endpoint may be created disabled, to be switched on later.
    let status = fields
        .choice("status", &["active", "disabled"])?
        .unwrap_or_else(|| "active".into());
    let disabled_reason = (status == "disabled").then(|| "manual".to_string());

    let _edit = app.webhooks.endpoints.edit().await;
    if app.webhooks.endpoints.of_owner(scope.key_id()).len() >= MAX_ENDPOINTS {
        return Err(ApiError::conflict(
            "too_many_endpoints",
            format!(
                "At most {MAX_ENDPOINTS} webhook endpoints may be registered; delete one first."
            ),
        ));
    }
    let ts = format_time(now());
    let endpoint = put(
        &app,
        Endpoint {
            id: new_id("ep"),
            key_id: scope.key_id().map(str::to_string),
            url,
            description,
            events,
            rate_limit,
            secret: secrets::generate_webhook_secret(),
            previous_secret: None,
            status,
            disabled_reason,
            headers,
            last_success_at: None,
            failing_since: None,
            created_at: ts.clone(),
            updated_at: ts,
        },
    )
    .await?;
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
    let created = CreatedWebhookEndpoint {
        endpoint: view(&endpoint),
        secret: endpoint.secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET …/webhooks`: the scope's endpoints, oldest first.
pub(super) async fn list<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
) -> Json<WebhookEndpointList> {
    let data = app
        .webhooks
        .endpoints
        .of_owner(scope.key_id())
        .iter()
        .map(|e| view(e))
        .collect();
    Json(WebhookEndpointList {
        object: "list",
        data,
        has_more: false,
    })
}

/// `GET …/webhooks/{id}`.
pub(super) async fn get<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    let endpoint = find(&app, &scope, &id)?;
    Ok(Json(view(&endpoint)))
}

/// `PATCH …/webhooks/{id}`: `url`, `events`, `description`, `rate_limit`,
/// `headers`, `status` (`active` re-enables and forgets the failure run,
/// `disabled` cancels pending deliveries at once).
pub(super) async fn update<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    let fields = Fields(&body);
    let url = match fields.string("url", 2048)? {
        Some(url) => Some(checked_url(&app, &url).await?),
        None => None,
    };
    let events = events(&fields, scope.key_id())?;
    let rate_limit = rate_limit(&fields)?;
    let headers = headers(&fields)?;
    let status = fields.choice("status", &["active", "disabled"])?;

    let _edit = app.webhooks.endpoints.edit().await;
    let mut endpoint = (*find(&app, &scope, &id)?).clone();
    if let Some(url) = url {
        endpoint.url = url;
    }
    if let Some(events) = events {
        endpoint.events = events;
    }
    if fields.0.contains_key("description") {
        endpoint.description = fields.string("description", 512)?;
    }
    if let Some(rate_limit) = rate_limit {
        endpoint.rate_limit = rate_limit;
    }
    if let Some(headers) = headers {
        endpoint.headers = headers;
    }
    match status.as_deref() {
        Some("active") if endpoint.status != "active" => {
            endpoint.status = "active".into();
            endpoint.disabled_reason = None;
            endpoint.failing_since = None;
        }
        Some("disabled") if endpoint.status != "disabled" => {
            endpoint.status = "disabled".into();
            endpoint.disabled_reason = Some("manual".into());
        }
        _ => {}
    }
    endpoint.updated_at = format_time(now());
    Ok(Json(view(&put(&app, endpoint).await?)))
}

/// `DELETE …/webhooks/{id}`: its pending deliveries are cancelled, never sent.
pub(super) async fn delete<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
) -> Result<Json<DeletedWebhookEndpoint>, ApiError> {
    let _edit = app.webhooks.endpoints.edit().await;
    find(&app, &scope, &id)?;
    app.store
        .apply(Change::DeleteEndpoint { id: id.clone() })
        .await?;
    tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
    Ok(Json(DeletedWebhookEndpoint {
        id,
        object: "webhook_endpoint",
        deleted: true,
    }))
}

/// `GET …/webhooks/{id}/secret`.
pub(super) async fn secret<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
) -> Result<Json<WebhookSecret>, ApiError> {
    let endpoint = find(&app, &scope, &id)?;
    Ok(Json(WebhookSecret {
        object: "webhook_secret",
        secret: endpoint.secret.clone(),
        previous_secret_expires_at: None,
    }))
}

/// `POST …/webhooks/{id}/rotate-secret`: a new secret; the old one keeps
/// signing (as a second `webhook-signature`) for the grace period.
pub(super) async fn rotate_secret<S: Scope>(
    State(app): State<Arc<App>>,
    scope: S,
    Path(id): Path<String>,
) -> Result<Json<WebhookSecret>, ApiError> {
    let _edit = app.webhooks.endpoints.edit().await;
    let mut endpoint = (*find(&app, &scope, &id)?).clone();
    let grace = chrono::Duration::from_std(app.config.webhook_secret_grace).unwrap_or_default();
    let until = format_time(now() + grace);
    let old = std::mem::replace(&mut endpoint.secret, secrets::generate_webhook_secret());
    endpoint.previous_secret = Some((old, until.clone()));
    endpoint.updated_at = format_time(now());
    let endpoint = put(&app, endpoint).await?;
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint secret rotated");
    Ok(Json(WebhookSecret {
        object: "webhook_secret",
        secret: endpoint.secret,
        previous_secret_expires_at: Some(until),
    }))
}
