//! Submitting work on every route and reading what it produced: OpenAI-shaped
//! synchronous answers, the 202 of an async submit, and each task type's result
//! and events.

mod common;
mod support;

use base64::Engine;
use common::TestServer;
use serde_json::{Value, json};
use support::{assert_well_ordered, json_of, post_form, task_events, wait_status, wav};

/// Checks the 202 body of an async submit and returns the task id.
fn check_accepted(body: &Value, task_type: &str) -> String {
    let id = body["task_id"].as_str().expect("task_id").to_string();
    assert!(id.starts_with("task_"), "{body}");
    assert_eq!(body["status"], "pending", "{body}");
    assert_eq!(body["type"], task_type, "{body}");
    assert!(
        body["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    assert_eq!(
        body["check_status_url"],
        format!("/v1/tasks/{id}"),
        "{body}"
    );
    id
}

#[tokio::test]
async fn a_synchronous_image_answers_in_openai_shape_with_a_fetchable_url() {
    let server = TestServer::start().await;
    let res = server
        .post(
            "/v1/images/generations",
            &server.key,
            json!({"prompt": "a red fox"}),
        )
        .await;
    let body = json_of(res, 200).await;
    assert!(
        body["created"].as_i64().is_some_and(|t| t > 1_600_000_000),
        "{body}"
    );
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    let url = data[0]["url"].as_str().expect("url");
    assert!(url.starts_with(&server.base), "absolute URL: {url}");
    let image = server.http.get(url).send().await.unwrap();
    assert_eq!(image.headers()["content-type"], "image/png");
    assert!(image.bytes().await.unwrap().starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn an_async_image_answers_202_and_completes_with_its_result() {
    let server = TestServer::start().await;
    for (path, body) in [
        (
            "/v1/images/generations",
            json!({"prompt": "a fox", "async": true}),
        ),
        ("/v1/images/generations/async", json!({"prompt": "a fox"})),
    ] {
        let accepted = json_of(server.post(path, &server.key, body).await, 202).await;
        let id = check_accepted(&accepted, "image");
        let done = wait_status(&server, &server.key, &id, &["completed"]).await;
        assert_eq!(done["progress"], 100);
        assert_eq!(done["model"], "dall-e-3");
        assert_eq!(done["provider"], "local");
        assert!(done["completed_at"].is_string());
        assert!(done.get("error").is_none(), "{done}");
        let url = done["result"]["image_url"].as_str().expect("image_url");
        assert_eq!(done["result"]["images"][0]["url"], url);
        let events = task_events(&server, &server.key, &id).await;
        assert_well_ordered(&events, "image.completed");
        assert_eq!(events.last().unwrap()["data"]["imageUrl"], url);
    }
}

#[tokio::test]
async fn b64_json_returns_the_png_inline() {
    let server = TestServer::start().await;
    let body = json!({"prompt": "a fox", "response_format": "b64_json"});
    let body = json_of(
        server
            .post("/v1/images/generations", &server.key, body)
            .await,
        200,
    )
    .await;
    let b64 = body["data"][0]["b64_json"].as_str().expect("b64_json");
    assert!(body["data"][0].get("url").is_none(), "{body}");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn several_images_report_progress_and_list_every_url() {
    let server = TestServer::start().await;
    let id = server
        .submit_image(&server.key, json!({"model": "dall-e-2", "n": 3}))
        .await;
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    assert_eq!(done["result"]["images"].as_array().unwrap().len(), 3);

    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "image.completed");
    assert_eq!(events[0]["data"]["n"], 3);
    let counts: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "image.progress")
        .map(|e| {
            assert_eq!(e["data"]["totalImages"], 3);
            e["data"]["imagesCompleted"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(counts, vec![1, 2, 3]);
    let completed = &events.last().unwrap()["data"];
    assert_eq!(completed["imageUrls"].as_array().unwrap().len(), 3);
    assert_eq!(completed["model"], "dall-e-2");
    assert!(completed["cost"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_video_reports_frames_and_completes_on_both_routes() {
    let server = TestServer::start().await;
    for path in ["/v1/videos/generations", "/v1/videos/generations/async"] {
        let body = json!({"prompt": "waves", "duration": 2, "size": "480x480", "fps": 4});
        let accepted = json_of(server.post(path, &server.key, body).await, 202).await;
        let id = check_accepted(&accepted, "video");
        let done = wait_status(&server, &server.key, &id, &["completed"]).await;
        assert_eq!(done["result"]["duration_seconds"], 2);
        assert_eq!(done["result"]["size"], "480x480");
        let video_url = done["result"]["video_url"].as_str().unwrap();

        let events = task_events(&server, &server.key, &id).await;
        assert_well_ordered(&events, "video.completed");
        assert_eq!(events[0]["data"]["estimatedSeconds"], 2);
        let frames: Vec<(i64, i64)> = events
            .iter()
            .filter(|e| e["type"] == "video.progress")
            .map(|e| {
                let d = &e["data"];
                (
                    d["framesCompleted"].as_i64().unwrap(),
                    d["totalFrames"].as_i64().unwrap(),
                )
            })
            .collect();
        assert!(!frames.is_empty());
        assert!(frames.windows(2).all(|w| w[0].0 < w[1].0), "{frames:?}");
        let (last, total) = *frames.last().unwrap();
        assert_eq!(last, total);
        assert_eq!(events.last().unwrap()["data"]["videoUrl"], video_url);
    }
}

/// Reads a RIFF WAVE header: (sample rate, data bytes).
fn parse_wav(bytes: &[u8]) -> (u32, usize) {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let riff_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff_len + 8, bytes.len(), "RIFF length matches the file");
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    (rate, bytes.len() - 44)
}

#[tokio::test]
async fn synchronous_speech_is_a_wav_file() {
    let server = TestServer::start().await;
    let body = json!({"model": "tts-1", "input": "hello there", "voice": "alloy"});
    let res = server.post("/v1/audio/speech", &server.key, body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/wav");
    let bytes = res.bytes().await.unwrap();
    let (rate, data) = parse_wav(&bytes);
    assert!(rate >= 8000, "{rate}");
    assert!(data > 0);
}

#[tokio::test]
async fn async_speech_completes_with_an_audio_url() {
    let server = TestServer::start().await;
    let body = json!({"input": "hello there", "async": true});
    let accepted = json_of(
        server.post("/v1/audio/speech", &server.key, body).await,
        202,
    )
    .await;
    let id = check_accepted(&accepted, "speech");
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    assert_eq!(done["result"]["format"], "wav");
    assert!(done["result"]["duration_seconds"].as_f64().unwrap() > 0.0);
    let audio = server
        .http
        .get(done["result"]["audio_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    parse_wav(&audio.bytes().await.unwrap());
    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "audio.synthesis.completed");
}

#[tokio::test]
async fn a_transcription_gives_the_real_duration_in_every_format() {
    let server = TestServer::start().await;
    let audio = wav(1.5, 16_000);
    let file = Some(("file", "clip.wav", audio.as_slice()));

    let res = post_form(&server, &server.key, &[("model", "whisper-1")], file).await;
    let body = json_of(res, 200).await;
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("cannot recognise speech"), "{text}");
    assert!(text.contains("1.5 seconds"), "{text}");

    let res = post_form(&server, &server.key, &[("response_format", "text")], file).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(res.text().await.unwrap().contains("1.5 seconds"));

    let res = post_form(
        &server,
        &server.key,
        &[("response_format", "verbose_json")],
        file,
    )
    .await;
    let body = json_of(res, 200).await;
    assert_eq!(body["duration"], 1.5);
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("cannot recognise speech")
    );

    let fields = [("async", "true"), ("language", "en")];
    let accepted = json_of(post_form(&server, &server.key, &fields, file).await, 202).await;
    let id = check_accepted(&accepted, "transcription");
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    assert_eq!(done["result"]["duration_seconds"], 1.5);
    assert_eq!(done["result"]["language"], "en");
    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "audio.transcription.completed");
    assert_eq!(events.last().unwrap()["data"]["durationSeconds"], 1.5);
}

#[tokio::test]
async fn metadata_and_user_are_echoed_in_the_task_and_its_events() {
    let server = TestServer::start().await;
    let metadata = json!({"order": "42", "ключ": "значение"});
    let id = server
        .submit_image(&server.key, json!({"metadata": metadata, "user": "u-7"}))
        .await;
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    assert_eq!(done["metadata"], metadata);
    let events = task_events(&server, &server.key, &id).await;
    for event in [&events[0], events.last().unwrap()] {
        assert_eq!(event["data"]["metadata"], metadata, "{event}");
        assert_eq!(event["data"]["userId"], "u-7", "{event}");
    }
}
