//! The OpenAPI document served at `/openapi.json`.
//!
//! Paths come from the `#[utoipa::path]` annotation on each handler, bodies from
//! the types in `api::schema`. The `openapi` integration test checks the
//! document against `api::routes()`, the table the router is built from, so a
//! route cannot be added without being documented, nor documented without
//! being served. The SignalR hubs are not REST routes and are described in the
//! README instead.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{admin, announce, events, images, ops, speech, tasks, transcribe, videos};
use crate::webhooks::api as webhooks;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conduit",
        description = "Asynchronous AI media jobs with webhooks, SignalR and polling."
    ),
    paths(
        images::images,
        images::images_async,
        videos::videos,
        videos::videos_async,
        speech::speech,
        transcribe::transcriptions,
        tasks::get,
        tasks::list,
        tasks::cancel,
        tasks::delete,
        tasks::poll,
        tasks::events,
        tasks::image_status,
        tasks::video_status,
        events::feed,
        admin::create_key,
        admin::list_keys,
        admin::get_key,
        admin::update_key,
        admin::delete_key,
        admin::rotate_key_secret,
        announce::maintenance,
        announce::provider_health,
        ops::health,
        ops::ready,
        ops::metrics,
        media,
        document,
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::error::ErrorDetail,
        crate::keys::model::KeyRecord,
        crate::tasks::model::TaskStatus,
        crate::tasks::model::TaskType,
        crate::tasks::model::TaskError,
        crate::webhooks::model::Delivery,
        crate::webhooks::model::Attempt,
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// Adds the two credentials: a virtual key (Bearer or `X-API-Key`) and the
/// master key of the admin API.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "virtual_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("condt_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "virtual_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "master_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The webhook routes of `webhooks::api`: a key's endpoints and deliveries,
/// event replay, and the operator's system-event endpoints.
#[derive(OpenApi)]
#[openapi(paths(
    webhooks::key::create_webhook_endpoint,
    webhooks::key::list_webhook_endpoints,
    webhooks::key::get_webhook_endpoint,
    webhooks::key::update_webhook_endpoint,
    webhooks::key::delete_webhook_endpoint,
    webhooks::key::get_webhook_endpoint_secret,
    webhooks::key::rotate_webhook_endpoint_secret,
    webhooks::key::list_webhook_deliveries,
    webhooks::key::get_webhook_delivery,
    webhooks::key::list_webhook_delivery_attempts,
    webhooks::key::retry_webhook_delivery,
    webhooks::deliveries::redeliver,
    webhooks::admin::create_system_webhook_endpoint,
    webhooks::admin::list_system_webhook_endpoints,
    webhooks::admin::get_system_webhook_endpoint,
    webhooks::admin::update_system_webhook_endpoint,
    webhooks::admin::delete_system_webhook_endpoint,
    webhooks::admin::get_system_webhook_endpoint_secret,
    webhooks::admin::rotate_system_webhook_endpoint_secret,
    webhooks::admin::list_system_webhook_deliveries,
    webhooks::admin::get_system_webhook_delivery,
    webhooks::admin::list_system_webhook_delivery_attempts,
    webhooks::admin::retry_system_webhook_delivery,
))]
struct WebhooksDoc;

/// The whole document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(WebhooksDoc::openapi());
    doc
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document.", content_type = "application/json"))
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// `GET /v1/media/{file}`: generated media, served by a file service (this
/// function only documents it).
#[utoipa::path(
    get,
    path = "/v1/media/{file}",
    tag = "media",
    description = "A generated file. The name is an unguessable capability, so no credentials are needed. Video and audio answer range requests.",
    params(
        ("file" = String, Path, description = "The file name from a result URL."),
        ("Range" = Option<String>, Header, description = "`bytes=start-end`.")
    ),
    responses(
        (status = 200, description = "The file, cacheable for a year.", content(
            (Vec<u8> = "image/png"),
            (Vec<u8> = "image/gif"),
            (Vec<u8> = "audio/wav")
        )),
        (status = 206, description = "The requested range.", body = Vec<u8>),
        (status = 404, description = "No such file.")
    )
)]
#[allow(dead_code)]
fn media() {}
