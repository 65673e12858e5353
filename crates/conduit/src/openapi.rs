//! The OpenAPI document served at `/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conduit",
        description = "Asynchronous AI media jobs with webhooks, SignalR and polling."
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
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
