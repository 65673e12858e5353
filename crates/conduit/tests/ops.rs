//! Operations and media: liveness, readiness, Prometheus metrics, and generated
//! files served as capability URLs (no credentials, right headers, ranges).

mod common;
mod support;

use common::TestServer;
use serde_json::json;
use support::{json_of, wait_status};

#[tokio::test]
async fn health_and_ready_answer_without_credentials() {
    let server = TestServer::start().await;
    let health = json_of(
        server.http.get(server.url("/health")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(health["status"], "ok");
    let ready = json_of(
        server.http.get(server.url("/ready")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["store"], "ok");
}

#[tokio::test]
async fn metrics_are_prometheus_text_counting_requests() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    wait_status(&server, &server.key, &id, &["completed"]).await;
    let res = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    let counted = text.lines().any(|l| {
        l.starts_with("conduit_http_requests_total{")
            && l.contains("route=\"/v1/tasks/{id}\"")
            && l.contains("status=\"200\"")
    });
    assert!(counted, "{text}");
    assert!(
        text.contains("# TYPE conduit_http_requests_total counter"),
        "{text}"
    );
    assert!(text.contains("conduit_tasks_submitted_total"), "{text}");
}

#[tokio::test]
async fn media_is_served_without_credentials_with_caching_headers() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    let url = done["result"]["image_url"].as_str().unwrap();
    let name = url.rsplit('/').next().unwrap();
    assert!(name.len() >= 32 + 4, "at least 128 random bits in {name}");

    let res = server.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let length: usize = res.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let cache = res.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cache.contains("max-age"), "{cache}");
    assert_eq!(res.bytes().await.unwrap().len(), length);

    let missing = server
        .http
        .get(server.url("/v1/media/no-such-file.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let escape = server
        .http
        .get(server.url("/v1/media/..%2F..%2Fconduit.db"))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);
}

#[tokio::test]
async fn audio_and_video_media_answer_range_requests() {
    let server = TestServer::start().await;
    let res = server
        .post(
            "/v1/audio/speech",
            &server.key,
            json!({"input": "hello", "async": true}),
        )
        .await;
    let speech = json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let video = json!({"prompt": "v", "duration": 1, "size": "480x480", "fps": 2});
    let res = server
        .post("/v1/videos/generations", &server.key, video)
        .await;
    let video = json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();

    for (id, field, content_type) in [
        (speech, "audio_url", "audio/"),
        (video, "video_url", "image/gif"),
    ] {
        let done = wait_status(&server, &server.key, &id, &["completed"]).await;
        let url = done["result"][field].as_str().unwrap();
        let whole = server
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let res = server
            .http
            .get(url)
            .header("range", "bytes=4-11")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 206);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type)
        );
        assert_eq!(res.headers()["content-length"], "8");
        let range = res.headers()["content-range"].to_str().unwrap().to_string();
        assert_eq!(range, format!("bytes 4-11/{}", whole.len()));
        assert_eq!(res.bytes().await.unwrap(), whole.slice(4..12));

        // Past the end: 416 as an OpenAI-shaped error, with the file's length.
        let res = server
            .http
            .get(url)
            .header("range", format!("bytes={}-", whole.len() + 10))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 416);
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes */{}", whole.len()).as_str()
        );
        let err: serde_json::Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "range_not_satisfiable");

        // A malformed or multi-part range is ignored: the whole file.
        for range in ["garbage", "bytes=0-1,3-4"] {
            let res = server
                .http
                .get(url)
                .header("range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{range}");
            assert_eq!(res.bytes().await.unwrap(), whole);
        }
    }
}

#[tokio::test]
async fn a_second_gateway_on_the_same_data_directory_refuses_to_start() {
    let mut server = TestServer::start().await;
    let config = conduit::config::Config::from_raw(common::raw_config(server.dir.path())).unwrap();
    let err = match conduit::server::start(config.clone()).await {
        Ok(_) => panic!("a second gateway started on the same directory"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("another Conduit gateway"), "{err}");
    // Once the first has stopped, the directory is free again.
    let first = server.server.take().unwrap();
    first.shutdown().await.unwrap();
    let again = conduit::server::start(config)
        .await
        .expect("starts after the first stopped");
    again.shutdown().await.unwrap();
}
