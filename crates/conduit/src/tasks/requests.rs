//! The validated requests a provider runs, stored in the task's `request` column.

use serde::{Deserialize, Serialize};

/// An image generation after validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageJob {
    pub prompt: String,
    pub n: u32,
    pub width: u32,
    pub height: u32,
    pub size: String,
    pub quality: Option<String>,
    pub style: Option<String>,
    /// `url` or `b64_json`.
    pub response_format: String,
}

/// A video generation after validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoJob {
    pub prompt: String,
    pub duration: u32,
    pub width: u32,
    pub height: u32,
    pub size: String,
    pub fps: u32,
}

/// Speech synthesis after validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeechJob {
    pub input: String,
    pub voice: String,
    pub speed: f64,
    /// What the client asked for; the local provider always produces WAV.
    pub response_format: String,
}

/// A transcription after validation; the upload waits on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscriptionJob {
    /// File name under the uploads directory.
    pub upload: String,
    pub filename: String,
    pub language: Option<String>,
    pub prompt: Option<String>,
    pub response_format: String,
    /// The upload's length, read at submit: what the budget reserves for.
    #[serde(default)]
    pub duration_seconds: f64,
}
