//! The model table: which names clients may ask for, what they resolve to
//! (provider and provider model), what sizes and counts they allow, and what
//! they cost.

use std::collections::HashMap;

use crate::tasks::model::TaskType;

/// One model name a client may use.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub task_type: TaskType,
    pub provider: String,
    pub provider_model: String,
    /// Allowed `size` values (`WIDTHxHEIGHT`); the first is the default.
    pub sizes: Vec<String>,
    /// Largest `n` for images.
    pub max_n: u32,
    /// USD per image, per second of video, per 1,000 characters of speech, or
    /// per minute of transcribed audio.
    pub unit_cost: f64,
}

impl ModelInfo {
    /// What a job of this model costs for `request` (a validated request of
    /// `tasks::requests`): images, seconds of video, thousands of characters, or
    /// minutes of audio, times the unit cost, in USD to a millionth.
    pub fn estimate(&self, request: &serde_json::Value) -> f64 {
        let number = |name: &str| request.get(name).and_then(serde_json::Value::as_f64);
        let units = match self.task_type {
            TaskType::Image => number("n").unwrap_or(1.0),
            TaskType::Video => number("duration").unwrap_or(5.0),
            TaskType::Speech => request
                .get("input")
                .and_then(serde_json::Value::as_str)
                .map_or(0.0, |text| text.chars().count() as f64 / 1000.0),
            TaskType::Transcription => number("duration_seconds").unwrap_or(0.0) / 60.0,
        };
        (self.unit_cost * units * 1_000_000.0).round() / 1_000_000.0
    }
}

/// Alias → model, with a default per task type.
#[derive(Debug, Clone)]
pub struct ModelTable {
    models: HashMap<String, ModelInfo>,
    defaults: HashMap<TaskType, String>,
}

fn model(name: &str, task_type: TaskType, sizes: &[&str], max_n: u32, unit_cost: f64) -> ModelInfo {
    ModelInfo {
        name: name.into(),
        task_type,
        provider: "local".into(),
        provider_model: name.into(),
        sizes: sizes.iter().map(|s| s.to_string()).collect(),
        max_n,
        unit_cost,
    }
}

// LIMITATION: the table is built in; reading aliases and remote providers from
// `conduit.toml` would let operators map names to other providers.
impl Default for ModelTable {
    /// The embedded default: common OpenAI names served by the `local` provider.
    fn default() -> Self {
        let list = vec![
            model(
                "dall-e-3",
                TaskType::Image,
                &["1024x1024", "1792x1024", "1024x1792"],
                1,
                0.04,
            ),
            model(
                "dall-e-2",
                TaskType::Image,
                &["1024x1024", "512x512", "256x256"],
                10,
                0.02,
            ),
            model(
                "gpt-image-1",
                TaskType::Image,
                &["1024x1024", "1536x1024", "1024x1536", "auto"],
                10,
                0.04,
            ),
            model(
                "sora-2",
                TaskType::Video,
                &["1280x720", "720x1280", "1920x1080", "1080x1920", "480x480"],
                1,
                0.10,
            ),
            model("tts-1", TaskType::Speech, &[], 1, 0.015),
            model("tts-1-hd", TaskType::Speech, &[], 1, 0.03),
            model("gpt-4o-mini-tts", TaskType::Speech, &[], 1, 0.015),
            model("whisper-1", TaskType::Transcription, &[], 1, 0.006),
            model("gpt-4o-transcribe", TaskType::Transcription, &[], 1, 0.006),
        ];
        let defaults = HashMap::from([
            (TaskType::Image, "dall-e-3".to_string()),
            (TaskType::Video, "sora-2".to_string()),
            (TaskType::Speech, "tts-1".to_string()),
            (TaskType::Transcription, "whisper-1".to_string()),
        ]);
        ModelTable {
            models: list.into_iter().map(|m| (m.name.clone(), m)).collect(),
            defaults,
        }
    }
}

impl ModelTable {
    /// The model for `name`, or the type's default when `name` is `None`.
    pub fn resolve(&self, task_type: TaskType, name: Option<&str>) -> Result<&ModelInfo, String> {
        let name = match name {
            Some(name) => name,
            None => self
                .defaults
                .get(&task_type)
                .map(String::as_str)
                .unwrap_or(""),
        };
        match self.models.get(name) {
            Some(info) if info.task_type == task_type => Ok(info),
            Some(info) => Err(format!(
                "The model `{name}` is a {} model and cannot be used for {}.",
                info.task_type.as_str(),
                task_type.as_str()
            )),
            None => {
                let mut known: Vec<&str> = self
                    .models
                    .values()
                    .filter(|m| m.task_type == task_type)
                    .map(|m| m.name.as_str())
                    .collect();
                known.sort();
                Err(format!(
                    "The model `{name}` does not exist. Available {} models: {}.",
                    task_type.as_str(),
                    known.join(", ")
                ))
            }
        }
    }

    /// Whether `name` is one of the table's models.
    pub fn is_known(&self, name: &str) -> bool {
        self.models.contains_key(name)
    }

    /// Every model, sorted by name.
    pub fn all(&self) -> Vec<&ModelInfo> {
        let mut list: Vec<&ModelInfo> = self.models.values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_defaults_and_refuses_wrong_types() {
        let table = ModelTable::default();
        assert_eq!(
            table.resolve(TaskType::Image, None).unwrap().name,
            "dall-e-3"
        );
        assert_eq!(
            table
                .resolve(TaskType::Video, Some("sora-2"))
                .unwrap()
                .provider,
            "local"
        );
        let err = table
            .resolve(TaskType::Image, Some("whisper-1"))
            .unwrap_err();
        assert!(err.contains("transcription model"), "{err}");
        let err = table.resolve(TaskType::Image, Some("nope")).unwrap_err();
        assert!(err.contains("dall-e-2"), "{err}");
    }
}
