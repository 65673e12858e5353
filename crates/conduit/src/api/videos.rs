//! `POST /v1/videos/generations` (and `/async`): video generation, always a task.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value};

use super::fields::{Fields, JsonBody};
use super::schema::requests::VideoGenerationRequest;
use super::schema::responses::TaskAccepted;
use super::submit::{accepted, admit, common, new_task, parse_size, resolve};
use crate::app::App;
use crate::error::ApiError;
use crate::keys::auth::ClientKey;
use crate::keys::model::VirtualKey;
use crate::tasks;
use crate::tasks::model::TaskType;
use crate::tasks::requests::VideoJob;

/// `POST /v1/videos/generations`: always a task.
#[utoipa::path(
    post,
    path = "/v1/videos/generations",
    tag = "videos",
    description = "Generates a video as a task.",
    request_body = VideoGenerationRequest,
    responses(
        (status = 202, description = "Accepted as a task.", body = TaskAccepted),
        super::schema::errors::SubmitErrors
    ),
    security(("virtual_key" = []))
)]
pub async fn videos(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    submit_video(app, key, body).await
}

/// `POST /v1/videos/generations/async`: the same as without `/async`.
#[utoipa::path(
    post,
    path = "/v1/videos/generations/async",
    tag = "videos",
    description = "Generates a video as a task.",
    request_body = VideoGenerationRequest,
    responses(
        (status = 202, description = "Accepted as a task.", body = TaskAccepted),
        super::schema::errors::SubmitErrors
    ),
    security(("virtual_key" = []))
)]
pub async fn videos_async(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    submit_video(app, key, body).await
}

async fn submit_video(
    app: Arc<App>,
    key: Arc<VirtualKey>,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
    let fields = Fields(&body);
    let prompt = fields.required_string("prompt", 4000)?;
    let common = common(&app, &fields, true).await?;
    let model = resolve(&app, TaskType::Video, common.model.as_deref())?;
    let duration = fields.integer("duration", 1..=60)?.unwrap_or(5) as u32;
    let fps = fields.integer("fps", 1..=60)?.unwrap_or(24) as u32;
    let (size, width, height) = parse_size(model, fields.string("size", 32)?)?;
    let job = VideoJob {
        prompt,
        duration,
        width,
        height,
        size,
        fps,
    };
    admit(&app, &key, model).await?;
    let task = tasks::submit(
        &app,
        &key,
        new_task(TaskType::Video, model, &job, common.clone_parts()),
    )
    .await?;
    Ok(accepted(&task))
}
