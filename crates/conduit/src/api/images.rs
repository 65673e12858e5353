//! `POST /v1/images/generations` (and `/async`): OpenAI's image generation,
//! answered synchronously in OpenAI's shape or accepted as a task.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::fields::{Fields, JsonBody};
use super::schema::requests::ImageGenerationRequest;
use super::schema::responses::{ImagesResponse, TaskAccepted};
use super::submit::{accepted, admit, common, finish_sync, new_task, parse_size, resolve};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::keys::auth::ClientKey;
use crate::keys::model::VirtualKey;
use crate::tasks;
use crate::tasks::model::TaskType;
use crate::tasks::requests::ImageJob;

/// `POST /v1/images/generations` (async with `"async": true`).
#[utoipa::path(
    post,
    path = "/v1/images/generations",
    tag = "images",
    description = "Generates images; with `async: true` answers 202 with a task.",
    request_body = ImageGenerationRequest,
    responses(
        (status = 200, description = "The images, as OpenAI answers.", body = ImagesResponse),
        (status = 202, description = "Accepted as a task.", body = TaskAccepted),
        (status = 409, description = "The synchronous task was cancelled (`task_cancelled`).", body = ErrorBody),
        (status = 502, description = "The synchronous task failed.", body = ErrorBody),
        super::schema::errors::SubmitErrors
    ),
    security(("virtual_key" = []))
)]
pub async fn images(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    submit_image(app, key, body, false).await
}

/// `POST /v1/images/generations/async`.
#[utoipa::path(
    post,
    path = "/v1/images/generations/async",
    tag = "images",
    description = "Generates images as a task.",
    request_body = ImageGenerationRequest,
    responses(
        (status = 202, description = "Accepted as a task.", body = TaskAccepted),
        super::schema::errors::SubmitErrors
    ),
    security(("virtual_key" = []))
)]
pub async fn images_async(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    submit_image(app, key, body, true).await
}

async fn submit_image(
    app: Arc<App>,
    key: Arc<VirtualKey>,
    body: Map<String, Value>,
    force_async: bool,
) -> Result<Response, ApiError> {
    let fields = Fields(&body);
    let prompt = fields.required_string("prompt", 4000)?;
    let common = common(&app, &fields, force_async).await?;
    let model = resolve(&app, TaskType::Image, common.model.as_deref())?;
    let n = fields.integer("n", 1..=model.max_n as i64)?.unwrap_or(1) as u32;
    let (size, width, height) = parse_size(model, fields.string("size", 32)?)?;
    let job = ImageJob {
        prompt,
        n,
        width,
        height,
        size,
        quality: fields.choice(
            "quality",
            &["standard", "hd", "low", "medium", "high", "auto"],
        )?,
        style: fields.choice("style", &["vivid", "natural"])?,
        response_format: fields
            .choice("response_format", &["url", "b64_json"])?
            .unwrap_or_else(|| "url".into()),
    };
    admit(&app, &key, model).await?;
    let task = tasks::submit(
        &app,
        &key,
        new_task(TaskType::Image, model, &job, common.clone_parts()),
    )
    .await?;
    if common.is_async {
        return Ok(accepted(&task));
    }

    // Synchronous: OpenAI's answer shape.
    let view = finish_sync(&app, &key, &task.id).await?;
    let result = view.task.result.clone().unwrap_or_default();
    let data = result.get("images").cloned().unwrap_or(json!([]));
    let created = result.get("created").cloned().unwrap_or(json!(0));
    Ok(Json(json!({"created": created, "data": data})).into_response())
}
