//! Bad input of every kind answers a 4xx with the OpenAI error shape, naming the
//! offending field in `param`; never a 500, a dropped connection or a
//! half-created task.

mod common;
mod support;

use common::{MASTER_KEY, TestServer};
use serde_json::{Value, json};
use support::{expect_error, json_of, post_form};

/// Posts raw bytes with a content type.
async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: &str,
) -> reqwest::Response {
    server
        .http
        .post(server.url(path))
        .bearer_auth(&server.key)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Checks that no task was created by the refused requests.
async fn assert_no_tasks(server: &TestServer) {
    let list = json_of(server.get("/v1/tasks", &server.key).await, 200).await;
    assert_eq!(list["data"], json!([]), "a refused request created a task");
}

#[tokio::test]
async fn malformed_bodies_are_refused_as_a_whole() {
    let server = TestServer::start().await;
    let path = "/v1/images/generations";
    for body in ["{\"prompt\": ", "[1, 2]", "\"prompt\"", "", "   "] {
        let error = expect_error(
            post_raw(&server, path, "application/json", body).await,
            400,
            None,
        )
        .await;
        assert_eq!(error["code"], "invalid_json", "{body:?}");
    }
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let res = post_raw(&server, path, content_type, "{\"prompt\": \"a fox\"}").await;
        let error = expect_error(res, 415, None).await;
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{error}"
        );
    }
    assert_no_tasks(&server).await;
}

#[tokio::test]
async fn each_bad_image_field_is_named_in_param() {
    let server = TestServer::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "prompt"),
        (json!({"prompt": 7}), "prompt"),
        (json!({"prompt": "  "}), "prompt"),
        (json!({"prompt": "x".repeat(4001)}), "prompt"),
        (json!({"prompt": "a", "model": "no-such-model"}), "model"),
        (json!({"prompt": "a", "model": "whisper-1"}), "model"),
        (json!({"prompt": "a", "model": "dall-e-2", "n": 0}), "n"),
        (json!({"prompt": "a", "model": "dall-e-2", "n": 11}), "n"),
        (json!({"prompt": "a", "model": "dall-e-3", "n": 2}), "n"),
        (json!({"prompt": "a", "model": "dall-e-2", "n": 1.5}), "n"),
        (json!({"prompt": "a", "model": "dall-e-2", "n": "x"}), "n"),
        (json!({"prompt": "a", "size": "999x999"}), "size"),
        (json!({"prompt": "a", "size": 1024}), "size"),
        (json!({"prompt": "a", "quality": "ultra"}), "quality"),
        (json!({"prompt": "a", "style": "gothic"}), "style"),
        (
            json!({"prompt": "a", "response_format": "jpeg"}),
            "response_format",
        ),
        (json!({"prompt": "a", "async": "maybe"}), "async"),
    ];
    for (body, param) in cases {
        for path in ["/v1/images/generations", "/v1/images/generations/async"] {
            let res = server.post(path, &server.key, body.clone()).await;
            expect_error(res, 400, Some(param)).await;
        }
    }
    assert_no_tasks(&server).await;
}

#[tokio::test]
async fn bad_video_and_speech_fields_are_named_in_param() {
    let server = TestServer::start().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v1/videos/generations",
            json!({"prompt": "a", "duration": 0}),
            "duration",
        ),
        (
            "/v1/videos/generations",
            json!({"prompt": "a", "duration": 61}),
            "duration",
        ),
        (
            "/v1/videos/generations/async",
            json!({"prompt": "a", "duration": 2.5}),
            "duration",
        ),
        (
            "/v1/videos/generations",
            json!({"prompt": "a", "model": "dall-e-3"}),
            "model",
        ),
        ("/v1/videos/generations", json!({"duration": 5}), "prompt"),
        ("/v1/audio/speech", json!({"voice": "alloy"}), "input"),
        (
            "/v1/audio/speech",
            json!({"input": "hi", "speed": 9}),
            "speed",
        ),
        (
            "/v1/audio/speech",
            json!({"input": "hi", "response_format": "ogg"}),
            "response_format",
        ),
        (
            "/v1/audio/speech",
            json!({"input": "hi", "model": "sora-2"}),
            "model",
        ),
    ];
    for (path, body, param) in cases {
        expect_error(server.post(path, &server.key, body).await, 400, Some(param)).await;
    }
    assert_no_tasks(&server).await;
}

#[tokio::test]
async fn bad_metadata_and_webhook_settings_are_refused() {
    let server = TestServer::start().await;
    let seventeen: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let unsafe_urls = [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "not a url",
    ];
    let mut cases: Vec<(Value, &str)> = vec![
        (json!({"metadata": seventeen}), "metadata"),
        (json!({"metadata": {"k".repeat(65): "v"}}), "metadata"),
        (json!({"metadata": {"k": "v".repeat(513)}}), "metadata"),
        (json!({"metadata": {"k": 1}}), "metadata"),
        (json!({"metadata": ["k"]}), "metadata"),
        (
            json!({"webhook_headers": {"X-Conduit-Signature": "forged"}}),
            "webhook_headers",
        ),
        (
            json!({"webhook_headers": {"webhook-id": "forged"}}),
            "webhook_headers",
        ),
        (json!({"webhook_headers": {"X-Fine": 3}}), "webhook_headers"),
    ];
    for url in unsafe_urls {
        cases.push((json!({"webhook_url": url}), "webhook_url"));
    }
    for (extra, param) in cases {
        let mut body = json!({"prompt": "a", "async": true});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let res = server
            .post("/v1/images/generations", &server.key, body)
            .await;
        expect_error(res, 400, Some(param)).await;
    }

    // The limits themselves are allowed (counted in characters, not bytes).
    let sixteen: serde_json::Map<String, Value> = (0..16)
        .map(|i| (format!("ключ{i}"), json!("ж".repeat(512))))
        .collect();
    server
        .submit_image(&server.key, json!({"metadata": sixteen}))
        .await;
}

#[tokio::test]
async fn an_oversized_body_is_413_not_a_dropped_connection() {
    let server = TestServer::start_with(|raw| raw.max_body_bytes = 2048).await;
    let body = json!({"prompt": "a", "padding": "x".repeat(4096)});
    let res = server
        .post("/v1/images/generations", &server.key, body)
        .await;
    expect_error(res, 413, None).await;
    let audio = vec![0u8; 8192];
    let res = post_form(&server, &server.key, &[], Some(("file", "a.wav", &audio))).await;
    expect_error(res, 413, None).await;
    assert_no_tasks(&server).await;
}

#[tokio::test]
async fn bad_query_parameters_are_named_in_param() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    let cases = [
        (format!("/v1/tasks/{id}?wait=abc"), "wait"),
        (format!("/v1/tasks/{id}?wait=61"), "wait"),
        (format!("/v1/tasks/{id}?wait=-1"), "wait"),
        (format!("/v1/tasks/{id}/poll?timeout=NaN"), "timeout"),
        ("/v1/tasks?limit=0".into(), "limit"),
        ("/v1/tasks?limit=101".into(), "limit"),
        ("/v1/tasks?limit=ten".into(), "limit"),
        ("/v1/tasks?after=not-a-cursor".into(), "after"),
        ("/v1/tasks?status=done".into(), "status"),
        ("/v1/tasks?type=music".into(), "type"),
        ("/v1/events?limit=1001".into(), "limit"),
        ("/v1/events?after=evt_unknown".into(), "after"),
        ("/v1/events?types=IMAGE".into(), "types"),
        ("/v1/events?types=image.*,%20,bad%20type".into(), "types"),
    ];
    for (path, param) in cases {
        expect_error(server.get(&path, &server.key).await, 400, Some(param)).await;
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = TestServer::start().await;
    let error = expect_error(server.get("/v1/nothing-here", &server.key).await, 404, None).await;
    assert_eq!(error["code"], "unknown_route");
    let res = server
        .http
        .put(server.url("/v1/tasks"))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    expect_error(res, 405, None).await;
    expect_error(
        server.get("/v1/images/generations", &server.key).await,
        405,
        None,
    )
    .await;
}

#[tokio::test]
async fn missing_malformed_and_wrong_keys_are_401() {
    let server = TestServer::start().await;
    let wrong = format!("condt_{}", "A".repeat(43));
    let unauthenticated = server
        .http
        .get(server.url("/v1/tasks"))
        .send()
        .await
        .unwrap();
    let error = expect_error(unauthenticated, 401, None).await;
    assert_eq!(error["code"], "missing_api_key");
    for key in ["not-a-key", "condt_short", wrong.as_str(), MASTER_KEY] {
        let error = expect_error(server.get("/v1/tasks", key).await, 401, None).await;
        assert_eq!(error["code"], "invalid_api_key", "{key}");
        let res = server
            .post("/v1/images/generations", key, json!({"prompt": "a"}))
            .await;
        expect_error(res, 401, None).await;
    }
    let res = server
        .http
        .get(server.url("/v1/tasks"))
        .header("x-api-key", &server.key)
        .send()
        .await;
    assert_eq!(res.unwrap().status(), 200, "X-API-Key is accepted too");

    // A virtual key is not the master key, and no key at all is not either.
    expect_error(server.get("/admin/v1/keys", &server.key).await, 401, None).await;
    expect_error(server.get("/admin/v1/keys", "").await, 401, None).await;
}

#[tokio::test]
async fn bad_transcription_forms_are_refused() {
    let server = TestServer::start().await;
    let res = post_form(&server, &server.key, &[("model", "whisper-1")], None).await;
    expect_error(res, 400, Some("file")).await;
    let text = b"this is plainly not audio, just some words in a file".as_slice();
    let res = post_form(&server, &server.key, &[], Some(("file", "a.wav", text))).await;
    let error = expect_error(res, 400, Some("file")).await;
    assert_eq!(error["code"], "invalid_audio");
    let audio = support::wav(0.2, 8000);
    let file = Some(("file", "a.wav", audio.as_slice()));
    let res = post_form(&server, &server.key, &[("model", "tts-1")], file).await;
    expect_error(res, 400, Some("model")).await;
    let res = post_form(&server, &server.key, &[("response_format", "doc")], file).await;
    expect_error(res, 400, Some("response_format")).await;
    let json_body = server
        .post(
            "/v1/audio/transcriptions",
            &server.key,
            json!({"file": "x"}),
        )
        .await;
    assert!(json_body.status().is_client_error());
    expect_error(json_body, 400, None).await;
    assert_no_tasks(&server).await;
}
