//! Every move of a task's state machine, driven through the real server:
//! pending → processing → completed, → failed, → timedout, pending → cancelled,
//! processing → cancelled; cancelling a finished task is a conflict; and the
//! status observed over time never moves backwards.

mod common;
mod support;

use common::TestServer;
use serde_json::{Value, json};
use support::{
    assert_well_ordered, expect_error, json_of, post_form, task, task_events, wait_status, wav,
};

/// Rank of a status along the state machine.
fn rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "processing" => 1,
        _ => 2,
    }
}

/// A server that runs one task at a time, so a test can hold tasks pending.
async fn single_lane(work_ms: u64) -> TestServer {
    TestServer::start_with(|raw| {
        raw.max_concurrent_tasks = 1;
        raw.local_work_ms = work_ms;
    })
    .await
}

/// Submits a video that keeps the lane busy for `seconds` × the work time.
async fn submit_video(server: &TestServer, seconds: u32) -> String {
    let body = json!({"prompt": "slow", "duration": seconds, "size": "480x480", "fps": 2});
    let res = server
        .post("/v1/videos/generations", &server.key, body)
        .await;
    json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_task_moves_forward_to_completed_and_never_back() {
    let server = TestServer::start_with(|raw| raw.local_work_ms = 150).await;
    let id = submit_video(&server, 4).await;

    // Follow it with long polls chained by ETag: every change is seen in order.
    let mut seen = vec!["pending".to_string()];
    let mut etag: Option<String> = None;
    while seen.last().is_none_or(|s| rank(s) != 2) {
        let mut req = server
            .http
            .get(server.url(&format!("/v1/tasks/{id}?wait=5")));
        req = req.bearer_auth(&server.key);
        if let Some(tag) = &etag {
            req = req.header("if-none-match", tag);
        }
        let res = req.send().await.unwrap();
        if res.status() == 304 {
            continue;
        }
        etag = Some(res.headers()["etag"].to_str().unwrap().to_string());
        let body: Value = res.json().await.unwrap();
        seen.push(body["status"].as_str().unwrap().to_string());
    }
    assert!(
        seen.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "{seen:?}"
    );
    assert!(seen.contains(&"processing".to_string()), "{seen:?}");
    assert_eq!(seen.last().unwrap(), "completed");

    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "video.completed");
    let progress: Vec<i64> = events
        .iter()
        .filter_map(|e| e["data"]["progress"].as_i64())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
}

#[tokio::test]
async fn a_transcription_whose_upload_vanished_fails_without_retry() {
    let server = single_lane(400).await;
    let blocker = submit_video(&server, 20).await;
    wait_status(&server, &server.key, &blocker, &["processing"]).await;

    // Queued behind the blocker; its upload is removed before it can run.
    let audio = wav(0.5, 8000);
    let form = [("async", "true")];
    let res = post_form(&server, &server.key, &form, Some(("file", "a.wav", &audio))).await;
    let id = json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(task(&server, &server.key, &id).await["status"], "pending");
    let uploads = server.dir.path().join("uploads");
    for entry in std::fs::read_dir(&uploads).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let res = server
        .post(
            &format!("/v1/tasks/{blocker}/cancel"),
            &server.key,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);

    let failed = wait_status(&server, &server.key, &id, &["failed", "completed"]).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "upload_missing");
    assert_eq!(failed["error"]["retryable"], false);
    assert!(failed.get("result").is_none(), "{failed}");
    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "audio.transcription.failed");
    assert_eq!(events.last().unwrap()["data"]["code"], "upload_missing");
}

#[tokio::test]
async fn a_task_over_its_time_limit_times_out_as_retryable() {
    let server = TestServer::start_with(|raw| {
        raw.task_timeout_secs = 1;
        raw.local_work_ms = 500;
    })
    .await;
    let id = submit_video(&server, 10).await;
    let ended = wait_status(
        &server,
        &server.key,
        &id,
        &["timedout", "completed", "failed"],
    )
    .await;
    assert_eq!(ended["status"], "timedout", "{ended}");
    assert_eq!(ended["error"]["code"], "timeout");
    assert_eq!(ended["error"]["retryable"], true);
    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "video.failed");
    assert_eq!(events.last().unwrap()["data"]["code"], "timeout");
}

#[tokio::test]
async fn a_pending_task_can_be_cancelled_and_never_starts() {
    let server = single_lane(300).await;
    let blocker = submit_video(&server, 20).await;
    wait_status(&server, &server.key, &blocker, &["processing"]).await;
    let id = server.submit_image(&server.key, json!({})).await;

    let res = server.http.delete(server.url(&format!("/v1/tasks/{id}")));
    let cancelled = json_of(res.bearer_auth(&server.key).send().await.unwrap(), 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    server
        .post(
            &format!("/v1/tasks/{blocker}/cancel"),
            &server.key,
            json!({}),
        )
        .await;
    wait_status(&server, &server.key, &blocker, &["cancelled"]).await;

    // The runner reaches it after the blocker and must leave it alone.
    let later = server.submit_image(&server.key, json!({})).await;
    wait_status(&server, &server.key, &later, &["completed"]).await;
    let events = task_events(&server, &server.key, &id).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["image.cancelled"]);
    assert_eq!(events[0]["sequence"], 1);
    assert_eq!(task(&server, &server.key, &id).await["status"], "cancelled");
}

#[tokio::test]
async fn a_processing_task_can_be_cancelled_and_stops() {
    let server = TestServer::start_with(|raw| raw.local_work_ms = 200).await;
    let id = submit_video(&server, 30).await;
    wait_status(&server, &server.key, &id, &["processing"]).await;
    let res = server
        .post(&format!("/v1/tasks/{id}/cancel"), &server.key, json!({}))
        .await;
    let body = json_of(res, 200).await;
    assert_eq!(body["status"], "cancelled");

    // Nothing follows the cancellation, even after more work time has passed.
    let after = server
        .get(&format!("/v1/tasks/{id}?wait=1"), &server.key)
        .await;
    assert_eq!(json_of(after, 200).await["status"], "cancelled");
    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "video.cancelled");
    assert_eq!(
        events.last().unwrap()["data"]["reason"],
        "cancelled by client"
    );
}

#[tokio::test]
async fn cancelling_a_finished_task_is_a_conflict() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    wait_status(&server, &server.key, &id, &["completed"]).await;
    let res = server
        .post(&format!("/v1/tasks/{id}/cancel"), &server.key, json!({}))
        .await;
    let error = expect_error(res, 409, None).await;
    assert_eq!(error["code"], "task_finished");
    let res = server.http.delete(server.url(&format!("/v1/tasks/{id}")));
    expect_error(
        res.bearer_auth(&server.key).send().await.unwrap(),
        409,
        None,
    )
    .await;
    assert_eq!(task(&server, &server.key, &id).await["status"], "completed");
}

#[tokio::test]
async fn uploads_no_task_will_read_are_removed() {
    let server = single_lane(400).await;
    let uploads = server.dir.path().join("uploads");
    let count = || std::fs::read_dir(&uploads).map_or(0, |d| d.count());
    let audio = wav(0.5, 8000);
    let form = [("async", "true")];

    // 1. Refused for its budget: the upload goes at once.
    let (poor, _, _) = server
        .create_key(json!({"name": "poor", "budget": 0.000001}))
        .await;
    let res = post_form(&server, &poor, &form, Some(("file", "a.wav", &audio))).await;
    assert_eq!(res.status(), 402);
    assert_eq!(count(), 0);

    // 2. Cancelled before it ran: the sweep removes it; a pending task's stays.
    let blocker = submit_video(&server, 20).await;
    wait_status(&server, &server.key, &blocker, &["processing"]).await;
    let submit = || async {
        let res = post_form(&server, &server.key, &form, Some(("file", "a.wav", &audio))).await;
        json_of(res, 202).await["task_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (cancelled, waiting) = (submit().await, submit().await);
    let res = server
        .post(
            &format!("/v1/tasks/{cancelled}/cancel"),
            &server.key,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(count(), 2);
    let app = &server.server.as_ref().unwrap().app;
    let removed = conduit::tasks::uploads::sweep(app, &uploads, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((removed, count()), (1, 1));

    // The waiting one still completes with its upload.
    server
        .post(
            &format!("/v1/tasks/{blocker}/cancel"),
            &server.key,
            json!({}),
        )
        .await;
    let done = wait_status(&server, &server.key, &waiting, &["completed", "failed"]).await;
    assert_eq!(done["status"], "completed", "{done}");
}

#[tokio::test]
async fn a_synchronous_request_whose_task_is_cancelled_answers_409() {
    let server = single_lane(400).await;
    let blocker = submit_video(&server, 20).await;
    wait_status(&server, &server.key, &blocker, &["processing"]).await;

    // The synchronous request waits behind the blocker; the client cancels it.
    let sync = server.post(
        "/v1/images/generations",
        &server.key,
        json!({"prompt": "never mind", "model": "dall-e-2", "size": "256x256"}),
    );
    let cancel = async {
        let pending = loop {
            let list = json_of(
                server.get("/v1/tasks?status=pending", &server.key).await,
                200,
            )
            .await;
            if let Some(id) = list["data"][0]["task_id"].as_str() {
                break id.to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let res = server
            .post(
                &format!("/v1/tasks/{pending}/cancel"),
                &server.key,
                json!({}),
            )
            .await;
        assert_eq!(res.status(), 200);
    };
    let (res, ()) = tokio::join!(sync, cancel);
    let err = expect_error(res, 409, None).await;
    assert_eq!(err["code"], "task_cancelled", "{err}");
}
