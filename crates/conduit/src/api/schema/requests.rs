//! Request bodies of the submit routes.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `POST /v1/images/generations`: OpenAI's body plus the task fields.
#[derive(Deserialize, ToSchema)]
pub struct ImageGenerationRequest {
    /// What to draw; at most 4,000 characters.
    pub prompt: String,
    /// `dall-e-3` (default), `dall-e-2` or `gpt-image-1`.
    pub model: Option<String>,
    /// How many images: 1–10 (1 for `dall-e-3`).
    #[schema(minimum = 1, maximum = 10)]
    pub n: Option<u32>,
    /// One of the model's sizes, such as `1024x1024`.
    pub size: Option<String>,
    /// `standard`, `hd`, `low`, `medium`, `high` or `auto`.
    pub quality: Option<String>,
    /// `vivid` or `natural`.
    pub style: Option<String>,
    /// `url` (default) or `b64_json`.
    pub response_format: Option<String>,
    /// The end user's id, echoed as `userId` in events.
    pub user: Option<String>,
    /// Answer 202 with a task instead of waiting for the images.
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
    #[serde(flatten)]
    pub task: TaskOptions,
}

/// The fields every submit route accepts besides its own.
#[derive(Deserialize, ToSchema)]
pub struct TaskOptions {
    /// Receives every event of the task, signed with the key's webhook secret.
    pub webhook_url: Option<String>,
    /// Extra headers sent with each webhook; they cannot replace Conduit's own.
    #[schema(value_type = Option<Object>)]
    pub webhook_headers: Option<Map<String, Value>>,
    /// Up to 16 string pairs (keys ≤ 64, values ≤ 512 characters), echoed in
    /// the task and its events.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// `POST /v1/videos/generations`: always a task.
#[derive(Deserialize, ToSchema)]
pub struct VideoGenerationRequest {
    pub prompt: String,
    /// `sora-2` by default.
    pub model: Option<String>,
    /// Whole seconds, 1–60 (default 5).
    #[schema(minimum = 1, maximum = 60)]
    pub duration: Option<u32>,
    /// One of the model's sizes, such as `1280x720`.
    pub size: Option<String>,
    /// Frames per second, 1–60 (default 24).
    #[schema(minimum = 1, maximum = 60)]
    pub fps: Option<u32>,
    pub user: Option<String>,
    #[serde(flatten)]
    pub task: TaskOptions,
}

/// `POST /v1/audio/speech`: OpenAI's body; `async: true` makes it a task.
#[derive(Deserialize, ToSchema)]
pub struct SpeechRequest {
    /// The text to speak; at most 4,096 characters.
    pub input: String,
    /// `tts-1` (default), `tts-1-hd` or `gpt-4o-mini-tts`.
    pub model: Option<String>,
    /// `alloy` by default.
    pub voice: Option<String>,
    /// 0.25–4.0 (default 1.0).
    pub speed: Option<f64>,
    /// `mp3`, `opus`, `aac`, `flac`, `wav` or `pcm`; the local provider answers WAV.
    pub response_format: Option<String>,
    pub user: Option<String>,
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
    #[serde(flatten)]
    pub task: TaskOptions,
}

/// `POST /v1/audio/transcriptions`: OpenAI's multipart form.
#[derive(Deserialize, ToSchema)]
pub struct TranscriptionForm {
    /// The audio file (WAV, MP3, FLAC or Ogg).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// `whisper-1` (default) or `gpt-4o-transcribe`.
    pub model: Option<String>,
    pub language: Option<String>,
    pub prompt: Option<String>,
    /// `json` (default), `text`, `verbose_json`, `srt` or `vtt`.
    pub response_format: Option<String>,
    /// `true` answers 202 with a task.
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
    pub webhook_url: Option<String>,
    /// A JSON object as text.
    pub webhook_headers: Option<String>,
    /// A JSON object as text.
    pub metadata: Option<String>,
    pub user: Option<String>,
}
