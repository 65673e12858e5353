//! The built-in `local` provider: runs offline and produces real files.
//!
//! Images are PNGs rendered from the prompt, videos animated GIFs rendered frame
//! by frame, speech a WAV of synthetic syllables, and transcription reads the
//! uploaded audio's real format and duration. It cannot understand prompts or
//! recognise speech; it exists so that the whole gateway runs and can be tested
//! with no network and no model. Work time is simulated (`CONDUIT_LOCAL_WORK_MS`
//! per image and per second of video) so that progress can be watched.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::{Job, JobOutput, MediaStore, Progress, Provider, ProviderError};
use crate::tasks::model::TaskType;
use crate::tasks::requests::{ImageJob, SpeechJob, TranscriptionJob, VideoJob};

/// The offline provider.
pub struct LocalProvider {
    media: MediaStore,
    uploads: PathBuf,
    work: Duration,
    models: super::models::ModelTable,
}

impl LocalProvider {
    pub fn new(media: MediaStore, uploads: PathBuf, work: Duration) -> LocalProvider {
        LocalProvider {
            media,
            uploads,
            work,
            models: super::models::ModelTable::default(),
        }
    }

    /// The job's price: the same estimate the budget reserved at submit.
    fn cost(&self, job: &Job) -> f64 {
        self.models
            .resolve(job.task_type, Some(&job.provider_model))
            .map(|m| m.estimate(&job.request))
            .unwrap_or(0.0)
    }

    async fn image(&self, job: &Job, progress: &dyn Progress) -> Result<JobOutput, ProviderError> {
        let request: ImageJob = parse(&job.request)?;
        let mut urls = Vec::new();
        let mut images = Vec::new();
        for index in 0..request.n {
            work(self.work, &job.cancel).await?;
            let (prompt, w, h) = (request.prompt.clone(), request.width, request.height);
            let png =
                blocking(move || conduit_media::render_image_png(&prompt, w, h, index)).await?;
            let b64 = (request.response_format == "b64_json")
                .then(|| base64::engine::general_purpose::STANDARD.encode(&png));
            let url = self.media.save(png, "png").await.map_err(storage_error)?;
            images.push(match b64 {
                Some(b64) => json!({"b64_json": b64, "revised_prompt": request.prompt}),
                None => json!({"url": url, "revised_prompt": request.prompt}),
            });
            urls.push(url);
            let done = index + 1;
            let mut fields = Map::new();
            fields.insert("imagesCompleted".into(), done.into());
            fields.insert("totalImages".into(), request.n.into());
            let percent = (done * 100 / request.n).min(99) as u8;
            progress
                .report(
                    percent,
                    &format!("image {done} of {} rendered", request.n),
                    fields,
                )
                .await;
        }
        let first = urls.first().cloned().unwrap_or_default();
        let mut fields = Map::new();
        fields.insert("imageUrl".into(), first.clone().into());
        fields.insert("imageUrls".into(), urls.clone().into());
        Ok(JobOutput {
            result: json!({"created": chrono::Utc::now().timestamp(), "images": images, "image_url": first}),
            event_fields: fields,
            cost: self.cost(job),
        })
    }

    async fn video(&self, job: &Job, progress: &dyn Progress) -> Result<JobOutput, ProviderError> {
        let request: VideoJob = parse(&job.request)?;
        let mut renderer = conduit_media::VideoRenderer::new(
            &request.prompt,
            request.width,
            request.height,
            request.fps,
            request.duration,
        );
        let total = renderer.total_frames();
        let per_second = total.div_ceil(request.duration.max(1)).max(1);
        let mut done = 0;
        while done < total {
            work(self.work, &job.cancel).await?;
            let target = (done + per_second).min(total);
            let (r, d) = blocking(move || {
                let mut done = 0;
                while done < target {
                    done = renderer.render_next_frame();
                }
                (renderer, done)
            })
            .await?;
            renderer = r;
            done = d;
            let mut fields = Map::new();
            fields.insert("framesCompleted".into(), done.into());
            fields.insert("totalFrames".into(), total.into());
            let percent = ((done as u64 * 100) / total as u64).min(99) as u8;
            progress
                .report(
                    percent,
                    &format!("{done} of {total} frames rendered"),
                    fields,
                )
                .await;
        }
        let (width, height) = renderer.output_size();
        let gif = blocking(move || renderer.finish()).await?;
        let url = self.media.save(gif, "gif").await.map_err(storage_error)?;
        let mut fields = Map::new();
        fields.insert("videoUrl".into(), url.clone().into());
        fields.insert("durationSeconds".into(), request.duration.into());
        fields.insert("size".into(), request.size.clone().into());
        Ok(JobOutput {
            result: json!({
                "video_url": url,
                "duration_seconds": request.duration,
                "size": request.size,
                "fps": request.fps,
                "format": "gif",
                "width": width,
                "height": height,
            }),
            event_fields: fields,
            cost: self.cost(job),
        })
    }

    async fn speech(&self, job: &Job) -> Result<JobOutput, ProviderError> {
        let request: SpeechJob = parse(&job.request)?;
        work(self.work, &job.cancel).await?;
        let (input, voice, speed) = (request.input.clone(), request.voice.clone(), request.speed);
        let speech =
            blocking(move || conduit_media::synthesize_speech(&input, &voice, speed)).await?;
        let duration = (speech.duration_seconds * 1000.0).round() / 1000.0;
        let url = self
            .media
            .save(speech.wav, "wav")
            .await
            .map_err(storage_error)?;
        let mut fields = Map::new();
        fields.insert("audioUrl".into(), url.clone().into());
        fields.insert("format".into(), "wav".into());
        fields.insert("durationSeconds".into(), duration.into());
        Ok(JobOutput {
            result: json!({"audio_url": url, "format": "wav", "duration_seconds": duration}),
            event_fields: fields,
            cost: self.cost(job),
        })
    }

    async fn transcription(&self, job: &Job) -> Result<JobOutput, ProviderError> {
        let request: TranscriptionJob = parse(&job.request)?;
        let path = self.uploads.join(&request.upload);
        let bytes = tokio::fs::read(&path).await.map_err(|_| {
            ProviderError::new(
                "upload_missing",
                "The uploaded audio is no longer available.",
                false,
            )
        })?;
        work(self.work, &job.cancel).await?;
        let info = blocking(move || conduit_media::probe_audio(&bytes))
            .await?
            .map_err(|e| ProviderError::new("invalid_audio", e.to_string(), false))?;
        let _ = tokio::fs::remove_file(&path).await;
        let duration = (info.duration_seconds * 1000.0).round() / 1000.0;
        let language = request.language.clone().unwrap_or_else(|| "unknown".into());
        let text = format!(
            "[The local provider cannot recognise speech. It received {duration} seconds of {} audio ({} Hz, {} channel{}).]",
            info.format.as_str(),
            info.sample_rate,
            info.channels,
            if info.channels == 1 { "" } else { "s" }
        );
        let mut fields = Map::new();
        fields.insert("text".into(), text.clone().into());
        fields.insert("language".into(), language.clone().into());
        fields.insert("durationSeconds".into(), duration.into());
        Ok(JobOutput {
            result: json!({
                "text": text,
                "language": language,
                "duration_seconds": duration,
                "format": info.format.as_str(),
                "sample_rate": info.sample_rate,
                "channels": info.channels,
                "recognized": false,
            }),
            event_fields: fields,
            cost: self.cost(job),
        })
    }
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    async fn run(&self, job: Job, progress: &dyn Progress) -> Result<JobOutput, ProviderError> {
        let started = Instant::now();
        let output = match job.task_type {
            TaskType::Image => self.image(&job, progress).await,
            TaskType::Video => self.video(&job, progress).await,
            TaskType::Speech => self.speech(&job).await,
            TaskType::Transcription => self.transcription(&job).await,
        };
        tracing::debug!(task_id = %job.task_id, elapsed_ms = started.elapsed().as_millis() as u64, ok = output.is_ok(), "local job finished");
        output
    }
}

fn parse<T: serde::de::DeserializeOwned>(request: &Value) -> Result<T, ProviderError> {
    serde_json::from_value(request.clone()).map_err(|e| {
        ProviderError::new(
            "invalid_request",
            format!("stored request is unreadable: {e}"),
            false,
        )
    })
}

/// Simulated work that stops at once when the task is cancelled.
async fn work(duration: Duration, cancel: &CancellationToken) -> Result<(), ProviderError> {
    tokio::select! {
        _ = tokio::time::sleep(duration) => Ok(()),
        _ = cancel.cancelled() => Err(ProviderError::new("cancelled", "The task was cancelled.", false)),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ProviderError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ProviderError::new("provider_error", "The local renderer failed.", true))
}

fn storage_error(err: std::io::Error) -> ProviderError {
    tracing::error!(cause = %err, "cannot store media");
    ProviderError::new(
        "storage_error",
        "The generated media could not be stored.",
        true,
    )
}
