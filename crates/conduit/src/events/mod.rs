//! Events: the durable log every channel reads.
//!
//! Every change of a task, a key or the system is written as an [`Event`] in the
//! same transaction as the change itself (see `store::writer`). Only after the
//! commit is the event handed to the [`bus::EventBus`], which wakes the channels:
//! webhook dispatch, SignalR hubs, long polls and event streams. The bus may lose
//! messages (a slow reader, another instance); every consumer can re-read the log
//! from its cursor, so nothing committed is lost.

pub mod bus;
pub mod canonical;
pub mod catalog;
pub mod filter;

use bytes::Bytes;
use serde_json::{Map, Value};

/// One committed event, as stored in the log and delivered on every channel.
#[derive(Debug, Clone)]
pub struct Event {
    /// Position in this store's log: the cursor order of `GET /v1/events`.
    pub position: i64,
    /// `evt_…`, unique and the same on every channel and every retry.
    pub id: String,
    /// The key whose event this is; `None` for system events.
    pub key_id: Option<String>,
    pub task_id: Option<String>,
    pub event_type: String,
    /// Counts one task's events from 1 with no gap; `None` outside tasks.
    pub sequence: Option<i64>,
    /// Commit time, `2026-12-04T10:00:00.123Z`.
    pub timestamp: String,
    pub data: Value,
    /// The envelope as compact JSON in `JSON.stringify` form: the webhook body and
    /// the item of `GET /v1/events`, serialized once.
    pub body: Bytes,
}

impl Event {
    /// Serializes the envelope into `body`; call once the other fields are set.
    pub fn sealed(mut self) -> Event {
        self.body = Bytes::from(envelope_json(
            &self.id,
            &self.event_type,
            &self.timestamp,
            self.sequence,
            &self.data,
        ));
        self
    }

    /// The event's `data` with `eventId` and `sequence` added: the argument of a
    /// SignalR method, so a client can fill a gap from `GET /v1/events?after=`.
    pub fn hub_argument(&self) -> Value {
        let mut data = match &self.data {
            Value::Object(map) => map.clone(),
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other.clone());
                map
            }
        };
        data.insert("eventId".into(), Value::String(self.id.clone()));
        if let Some(sequence) = self.sequence {
            data.insert("sequence".into(), Value::from(sequence));
        }
        data.insert("timestamp".into(), Value::String(self.timestamp.clone()));
        Value::Object(data)
    }

    /// The task type (`image`, `video`, `speech`, `transcription`) of a task event.
    pub fn task_type_name(&self) -> Option<&'static str> {
        self.task_id.as_ref()?;
        let t = &self.event_type;
        if t.starts_with("image.") {
            Some("image")
        } else if t.starts_with("video.") {
            Some("video")
        } else if t.starts_with("audio.synthesis.") {
            Some("speech")
        } else if t.starts_with("audio.transcription.") {
            Some("transcription")
        } else {
            None
        }
    }
}

/// The SPEC envelope: `{"id","type","timestamp","sequence"?,"data"}`.
pub fn envelope_json(
    id: &str,
    event_type: &str,
    timestamp: &str,
    sequence: Option<i64>,
    data: &Value,
) -> String {
    let mut envelope = Map::new();
    envelope.insert("id".into(), Value::String(id.to_string()));
    envelope.insert("type".into(), Value::String(event_type.to_string()));
    envelope.insert("timestamp".into(), Value::String(timestamp.to_string()));
    if let Some(sequence) = sequence {
        envelope.insert("sequence".into(), Value::from(sequence));
    }
    envelope.insert("data".into(), data.clone());
    canonical::to_string(&Value::Object(envelope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_is_compact_and_omits_sequence_outside_tasks() {
        let event = Event {
            position: 1,
            id: "evt_1".into(),
            key_id: Some("key_1".into()),
            task_id: Some("task_1".into()),
            event_type: "image.completed".into(),
            sequence: Some(3),
            timestamp: "2026-12-04T10:00:00.123Z".into(),
            data: json!({"taskId": "task_1", "cost": 0.04, "durationMs": 1500.0}),
            body: Bytes::new(),
        }
        .sealed();
        assert_eq!(
            std::str::from_utf8(&event.body).unwrap(),
            r#"{"id":"evt_1","type":"image.completed","timestamp":"2026-12-04T10:00:00.123Z","sequence":3,"data":{"taskId":"task_1","cost":0.04,"durationMs":1500}}"#
        );
        assert_eq!(event.task_type_name(), Some("image"));
        let arg = event.hub_argument();
        assert_eq!(arg["eventId"], "evt_1");
        assert_eq!(arg["sequence"], 3);

        let system = envelope_json("evt_2", "system.maintenance", "t", None, &json!({}));
        assert!(!system.contains("sequence"));
    }
}
