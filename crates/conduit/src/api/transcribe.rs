//! `POST /v1/audio/transcriptions`: OpenAI's multipart form, answered in the
//! requested format or accepted as a task.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::fields::Fields;
use super::schema::requests::TranscriptionForm;
use super::schema::responses::{TaskAccepted, TranscriptionResponse};
use super::submit::{accepted, admit, common, finish_sync, new_task, resolve};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::keys::auth::ClientKey;
use crate::tasks;
use crate::tasks::model::TaskType;
use crate::tasks::requests::TranscriptionJob;

/// `POST /v1/audio/transcriptions` (multipart, as OpenAI's).
#[utoipa::path(
    post,
    path = "/v1/audio/transcriptions",
    tag = "audio",
    description = "Transcribes an uploaded audio file; `async=true` answers 202 with a task.",
    request_body(content = TranscriptionForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The transcription (`text`, `srt` and `vtt` answer text/plain).", body = TranscriptionResponse),
        (status = 202, description = "Accepted as a task.", body = TaskAccepted),
        (status = 409, description = "The synchronous task was cancelled (`task_cancelled`).", body = ErrorBody),
        (status = 502, description = "The synchronous task failed.", body = ErrorBody),
        super::schema::errors::SubmitErrors
    ),
    security(("virtual_key" = []))
)]
pub async fn transcriptions(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    // 1. Read the form: the file's bytes and the other fields as strings.
    let mut body = Map::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or("audio").to_string();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            file = Some((filename, bytes.to_vec()));
        } else {
            let text = field.text().await.map_err(multipart_error)?;
            body.insert(name, Value::String(text));
        }
    }
    let (filename, bytes) = file.ok_or_else(|| {
        ApiError::invalid(
            "file",
            "missing_field",
            "`file` is required: upload the audio as a multipart file field.",
        )
    })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "file",
            "empty_file",
            "The uploaded file is empty.",
        ));
    }

    // 2. Check the fields and the audio itself before accepting anything.
    let fields = Fields(&body);
    let common = common(&app, &fields, false).await?;
    let model = resolve(&app, TaskType::Transcription, common.model.as_deref())?;
    let response_format = fields
        .choice(
            "response_format",
            &["json", "text", "verbose_json", "srt", "vtt"],
        )?
        .unwrap_or_else(|| "json".into());
    let language = fields.string("language", 16)?;
    let prompt = fields.string("prompt", 4000)?;
    let audio = conduit_media::probe_audio(&bytes)
        .map_err(|err| ApiError::invalid("file", "invalid_audio", err.to_string()))?;
    admit(&app, &key, model).await?;

    // 3. Keep the upload until the task has read it.
    let upload = crate::ids::random_token(24);
    let dir = app.config.data_dir.join("uploads");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::write(dir.join(&upload), &bytes)
        .await
        .map_err(ApiError::internal)?;
    let job = TranscriptionJob {
        upload,
        filename,
        language,
        prompt,
        response_format: response_format.clone(),
        duration_seconds: audio.duration_seconds,
    };
    let upload_path = dir.join(&job.upload);
    let submitted = tasks::submit(
        &app,
        &key,
        new_task(TaskType::Transcription, model, &job, common.clone_parts()),
    )
    .await;
    let task = match submitted {
        Ok(task) => task,
        Err(err) => {
            // Refused (budget, limits): nothing will read the upload.
            let _ = tokio::fs::remove_file(&upload_path).await;
            return Err(err);
        }
    };
    if common.is_async {
        return Ok(accepted(&task));
    }

    // 4. Synchronous: OpenAI's answer in the requested format.
    let view = finish_sync(&app, &key, &task.id).await?;
    let result = view.task.result.clone().unwrap_or_default();
    let text = result
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(match response_format.as_str() {
        "text" | "srt" | "vtt" => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        "verbose_json" => Json(json!({
            "task": "transcribe",
            "language": result.get("language"),
            "duration": result.get("duration_seconds"),
            "text": text,
            "segments": [],
        }))
        .into_response(),
        _ => Json(json!({"text": text})).into_response(),
    })
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    crate::error::from_rejection(
        err.status(),
        format!("The multipart form could not be read: {}", err.body_text()),
    )
}
