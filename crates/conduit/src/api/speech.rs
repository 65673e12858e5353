//! `POST /v1/audio/speech`: OpenAI's speech synthesis, answered with the audio
//! bytes or accepted as a task.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::fields::{Fields, JsonBody};
use super::schema::requests::SpeechRequest;
use super::schema::responses::TaskAccepted;
use super::submit::{accepted, admit, common, finish_sync, new_task, resolve};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::keys::auth::ClientKey;
use crate::tasks;
use crate::tasks::cache::TaskView;
use crate::tasks::model::TaskType;
use crate::tasks::requests::SpeechJob;

/// `POST /v1/audio/speech`: WAV bytes, or a task with `"async": true`.
#[utoipa::path(
    post,
    path = "/v1/audio/speech",
    tag = "audio",
    description = "Synthesizes speech; with `async: true` answers 202 with a task.",
    request_body = SpeechRequest,
    responses(
        (status = 200, description = "The audio.", content_type = "audio/wav", body = Vec<u8>),
        (status = 202, description = "Accepted as a task.", body = TaskAccepted),
        (status = 409, description = "The synchronous task was cancelled (`task_cancelled`).", body = ErrorBody),
        (status = 502, description = "The synchronous task failed.", body = ErrorBody),
        super::schema::errors::SubmitErrors
    ),
    security(("virtual_key" = []))
)]
pub async fn speech(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let fields = Fields(&body);
    let input = fields.required_string("input", 4096)?;
    let common = common(&app, &fields, false).await?;
    let model = resolve(&app, TaskType::Speech, common.model.as_deref())?;
    let voice = fields.required_string("voice", 64).or_else(|e| {
        if fields.has("voice") {
            Err(e)
        } else {
            Ok("alloy".to_string())
        }
    })?;
    let job = SpeechJob {
        input,
        voice,
        speed: fields.number("speed", 0.25..=4.0)?.unwrap_or(1.0),
        response_format: fields
            .choice(
                "response_format",
                &["mp3", "opus", "aac", "flac", "wav", "pcm"],
            )?
            .unwrap_or_else(|| "wav".into()),
    };
    admit(&app, &key, model).await?;
    let task = tasks::submit(
        &app,
        &key,
        new_task(TaskType::Speech, model, &job, common.clone_parts()),
    )
    .await?;
    if common.is_async {
        return Ok(accepted(&task));
    }
    let view = finish_sync(&app, &key, &task.id).await?;
    media_bytes(&app, &view, "audio_url", "audio/wav").await
}

/// Reads a finished task's media file back for a synchronous answer.
async fn media_bytes(
    app: &App,
    view: &TaskView,
    field: &str,
    content_type: &str,
) -> Result<Response, ApiError> {
    let url = view
        .task
        .result
        .as_ref()
        .and_then(|r| r.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = url.rsplit('/').next().unwrap_or_default();
    let bytes = tokio::fs::read(app.media.dir().join(name))
        .await
        .map_err(ApiError::internal)?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        content_type.parse().expect("static content type"),
    );
    headers.insert(
        "x-conduit-task-id",
        view.task.id.parse().map_err(ApiError::internal)?,
    );
    Ok((headers, bytes).into_response())
}
