//! Submitting work: images, videos, speech and transcriptions, each either as an
//! async task (202 with the task) or answered synchronously in OpenAI's format.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::fields::{Fields, JsonBody, metadata};
use crate::app::App;
use crate::error::ApiError;
use crate::keys::auth::ClientKey;
use crate::keys::model::VirtualKey;
use crate::providers::models::ModelInfo;
use crate::tasks::cache::TaskView;
use crate::tasks::model::{TaskStatus, TaskType};
use crate::tasks::requests::{ImageJob, SpeechJob, TranscriptionJob, VideoJob};
use crate::tasks::{self, NewTask};

/// Header names a client's `webhook_headers` may not set.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "user-agent",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "x-conduit-signature",
    "x-conduit-event",
    "x-conduit-delivery",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The fields every submit route shares.
struct Common {
    model: Option<String>,
    webhook_url: Option<String>,
    webhook_headers: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
    user: Option<String>,
    is_async: bool,
}

async fn common(app: &App, fields: &Fields<'_>, force_async: bool) -> Result<Common, ApiError> {
    let webhook_url = match fields.string("webhook_url", 2048)? {
        Some(url) => Some(crate::webhooks::check_webhook_url(app, &url).await?),
        None => None,
    };
    let webhook_headers = fields.object("webhook_headers")?;
    if let Some(headers) = &webhook_headers {
        check_webhook_headers(headers)?;
    }
    Ok(Common {
        model: fields.string("model", 128)?,
        webhook_url,
        webhook_headers,
        metadata: metadata(fields)?,
        user: fields.string("user", 256)?,
        is_async: force_async || fields.boolean("async")?.unwrap_or(false),
    })
}

fn check_webhook_headers(headers: &Map<String, Value>) -> Result<(), ApiError> {
    let bad =
        |message: String| ApiError::invalid("webhook_headers", "invalid_webhook_headers", message);
    if headers.len() > 20 {
        return Err(bad("`webhook_headers` may hold at most 20 headers.".into()));
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(bad(format!(
                "The header `{name}` is set by Conduit and cannot be replaced."
            )));
        }
        if header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(bad(format!("`{name}` is not a valid header name.")));
        }
        match value {
            Value::String(v) if v.len() <= 1024 && header::HeaderValue::from_str(v).is_ok() => {}
            _ => {
                return Err(bad(format!(
                    "The value of `{name}` must be a header-safe string of at most 1024 bytes."
                )));
            }
        }
    }
    Ok(())
}

/// Checks what the key may do before any work is accepted.
async fn admit(app: &App, key: &VirtualKey, model: &ModelInfo) -> Result<(), ApiError> {
    if !key.allows_model(&model.name) {
        return Err(ApiError::forbidden(
            "model_not_allowed",
            format!("This virtual key may not use the model `{}`.", model.name),
        ));
    }
    if key.budget_exhausted() {
        return Err(ApiError::payment_required(format!(
            "This virtual key has used its budget of ${:.2}.",
            key.budget.unwrap_or_default()
        )));
    }
    if let Err(limited) = app.limits.check(key) {
        let retry_after = limited.retry_after.as_secs_f64().ceil() as u64;
        if app.rate_announcements.should_announce(&key.id) {
            let data = json!({
                "keyId": key.id, "keyName": key.name, "limit": limited.limit,
                "window": limited.window, "retryAfterSeconds": retry_after.max(1),
            });
            let change = crate::store::Change::Emit {
                key_id: Some(key.id.clone()),
                event_type: "key.rate_limited".into(),
                data,
            };
            if let Err(err) = app.store.apply(change).await {
                tracing::warn!(cause = %err, "cannot record key.rate_limited");
            }
        }
        return Err(ApiError::rate_limited(
            retry_after,
            format!(
                "Rate limit reached: {} requests per {}. Retry after {} seconds.",
                limited.limit,
                limited.window,
                retry_after.max(1)
            ),
        ));
    }
    Ok(())
}

fn resolve<'a>(
    app: &'a App,
    task_type: TaskType,
    name: Option<&str>,
) -> Result<&'a ModelInfo, ApiError> {
    app.models.resolve(task_type, name).map_err(|message| {
        ApiError::invalid("model", "model_not_found", message).with_status(StatusCode::BAD_REQUEST)
    })
}

fn parse_size(model: &ModelInfo, size: Option<String>) -> Result<(String, u32, u32), ApiError> {
    let size = size.unwrap_or_else(|| model.sizes[0].clone());
    if !model.sizes.contains(&size) {
        return Err(ApiError::invalid(
            "size",
            "invalid_size",
            format!(
                "`{size}` is not a supported size for {}; use one of: {}.",
                model.name,
                model.sizes.join(", ")
            ),
        ));
    }
    let concrete = if size == "auto" {
        "1024x1024".to_string()
    } else {
        size.clone()
    };
    let (w, h) = concrete
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::invalid("size", "invalid_size", "`size` must look like 1024x1024.")
        })?;
    Ok((size, w, h))
}

/// The 202 answer of an async submit.
fn accepted(task: &crate::tasks::model::Task) -> Response {
    let body = json!({
        "task_id": task.id,
        "object": "task",
        "status": task.status.as_str(),
        "type": task.task_type.as_str(),
        "model": task.model,
        "created_at": task.created_at,
        "check_status_url": format!("/v1/tasks/{}", task.id),
        "metadata": task.metadata,
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Waits for a synchronous request's task to end; failure becomes an error answer.
async fn finish_sync(
    app: &App,
    key: &VirtualKey,
    task_id: &str,
) -> Result<Arc<TaskView>, ApiError> {
    let mut etag: Option<String> = None;
    let limit = tokio::time::Instant::now() + app.config.task_timeout + Duration::from_secs(5);
    loop {
        let wait = limit.saturating_duration_since(tokio::time::Instant::now());
        let view = tasks::wait_for_change(app, key, task_id, etag.as_deref(), wait).await?;
        match view.task.status {
            TaskStatus::Completed => return Ok(view),
            TaskStatus::Pending | TaskStatus::Processing if !wait.is_zero() => {
                etag = Some(view.etag.clone());
            }
            _ => {
                let error = view.task.error.clone();
                let message = error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| format!("The task ended as {}.", view.task.status.as_str()));
                let code = error
                    .map(|e| e.code)
                    .unwrap_or_else(|| "task_failed".into());
                let mut err = ApiError::bad_request(&code, message);
                err.status = StatusCode::BAD_GATEWAY;
                err.kind = "server_error";
                return Err(err);
            }
        }
    }
}

/// `POST /v1/images/generations` (async with `"async": true`).
pub async fn images(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    submit_image(app, key, body, false).await
}

/// `POST /v1/images/generations/async`.
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

/// The task-independent parts of a submission.
struct Parts {
    webhook_url: Option<String>,
    webhook_headers: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
    user: Option<String>,
}

impl Common {
    fn clone_parts(&self) -> Parts {
        Parts {
            webhook_url: self.webhook_url.clone(),
            webhook_headers: self.webhook_headers.clone(),
            metadata: self.metadata.clone(),
            user: self.user.clone(),
        }
    }
}

fn new_task<'a>(
    task_type: TaskType,
    model: &'a ModelInfo,
    job: &impl serde::Serialize,
    parts: Parts,
) -> NewTask<'a> {
    NewTask {
        task_type,
        model,
        request: serde_json::to_value(job).unwrap_or_default(),
        webhook_url: parts.webhook_url,
        webhook_headers: parts.webhook_headers,
        metadata: parts.metadata,
        user_id: parts.user,
    }
}

/// `POST /v1/videos/generations` and `/async`: always a task.
pub async fn videos(
    State(app): State<Arc<App>>,
    ClientKey(key): ClientKey,
    JsonBody(body): JsonBody,
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

/// `POST /v1/audio/speech`: WAV bytes, or a task with `"async": true`.
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

/// `POST /v1/audio/transcriptions` (multipart, as OpenAI's).
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
    if let Err(err) = conduit_media::probe_audio(&bytes) {
        return Err(ApiError::invalid("file", "invalid_audio", err.to_string()));
    }
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
    };
    let task = tasks::submit(
        &app,
        &key,
        new_task(TaskType::Transcription, model, &job, common.clone_parts()),
    )
    .await?;
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
