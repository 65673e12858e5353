//! Helpers the task-core integration tests share on top of `common`: error-shape
//! checks, waiting for a task to reach a status, reading event logs and streams,
//! and building the audio and multipart bodies clients send.

#![allow(dead_code)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::TestServer;

/// Long enough for anything a test waits on, short enough to fail a stuck test.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Checks an OpenAI-shaped error answer and returns its `error` object.
pub async fn expect_error(res: reqwest::Response, status: u16, param: Option<&str>) -> Value {
    let got = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = res.text().await.expect("error body");
    assert_eq!(got.as_u16(), status, "status of {text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let error = body["error"].clone();
    let object = error
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {text}"));
    for field in ["message", "type", "param", "code"] {
        assert!(object.contains_key(field), "`{field}` missing in {text}");
    }
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    assert!(
        error["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{text}"
    );
    assert_eq!(error["param"].as_str(), param, "param of {text}");
    error
}

/// Reads a JSON answer, checking its status first.
pub async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(got.as_u16(), status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Fetches a task as its owner sees it.
pub async fn task(server: &TestServer, key: &str, id: &str) -> Value {
    json_of(server.get(&format!("/v1/tasks/{id}"), key).await, 200).await
}

/// Long-polls until the task's status is one of `statuses`.
pub async fn wait_status(server: &TestServer, key: &str, id: &str, statuses: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let res = server.get(&format!("/v1/tasks/{id}?wait=2"), key).await;
        let task = json_of(res, 200).await;
        let status = task["status"].as_str().unwrap_or_default();
        if statuses.contains(&status) {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task stuck as {status}: {task}"
        );
    }
}

/// One task's events, in order.
pub async fn task_events(server: &TestServer, key: &str, id: &str) -> Vec<Value> {
    let res = server.get(&format!("/v1/tasks/{id}/events"), key).await;
    let body = json_of(res, 200).await;
    body["data"].as_array().cloned().expect("event list")
}

/// Checks that a task's events count 1..n with no gap, start with `started` and
/// end with exactly one terminal event of type `terminal`.
pub fn assert_well_ordered(events: &[Value], terminal: &str) {
    assert!(!events.is_empty(), "no events");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event["sequence"],
            (i + 1) as i64,
            "gap or repeat in {events:#?}"
        );
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types[0].ends_with(".started"), "{types:?}");
    assert!(types.last().unwrap().ends_with(terminal), "{types:?}");
    let ends = types.iter().filter(|t| is_terminal_type(t)).count();
    assert_eq!(ends, 1, "more than one terminal event: {types:?}");
}

fn is_terminal_type(event_type: &str) -> bool {
    [".completed", ".failed", ".cancelled"]
        .iter()
        .any(|s| event_type.ends_with(s))
}

/// The key's feed page from `GET /v1/events?{query}`.
pub async fn feed(server: &TestServer, key: &str, query: &str) -> Value {
    json_of(server.get(&format!("/v1/events?{query}"), key).await, 200).await
}

/// A 16-bit mono PCM WAV of `seconds` of a quiet tone at `rate` Hz.
pub fn wav(seconds: f64, rate: u32) -> Vec<u8> {
    let samples = (seconds * rate as f64).round() as u32;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = i as f64 / rate as f64;
        let sample = ((t * 440.0 * std::f64::consts::TAU).sin() * 3000.0) as i16;
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// A `multipart/form-data` body: `(content type, bytes)`. `file` is
/// `(field name, file name, bytes)`.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "conduit-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, filename, bytes)) = file {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Posts a transcription form.
pub async fn post_form(
    server: &TestServer,
    key: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &str, &[u8])>,
) -> reqwest::Response {
    let (content_type, body) = multipart(fields, file);
    server
        .http
        .post(server.url("/v1/audio/transcriptions"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request")
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

/// Reads a `text/event-stream` answer event by event.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// Opens `GET /v1/events?{query}` as a stream, optionally resuming.
    pub async fn open(
        server: &TestServer,
        key: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> SseReader {
        let mut request = server
            .http
            .get(server.url(&format!("/v1/events?{query}")))
            .bearer_auth(key)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event with data (comments and keep-alives are skipped).
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(PATIENCE, self.next_inner())
            .await
            .expect("an SSE event in time")
    }

    async fn next_inner(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).expect("SSE data is JSON");
                return SseEvent { id, event, data };
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("stream read")
                .expect("stream open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
