//! Observing tasks by polling: the task record, long polls that answer when the
//! task changes, ETags and 304, the compatibility aliases, and the task list with
//! its cursor paging.

mod common;
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{Value, json};
use support::{json_of, wait_status};

#[tokio::test]
async fn a_task_shows_every_documented_field() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    for field in [
        "task_id",
        "type",
        "status",
        "progress",
        "progress_message",
        "result",
        "model",
        "provider",
        "created_at",
        "updated_at",
        "completed_at",
        "metadata",
    ] {
        assert!(done.get(field).is_some(), "`{field}` missing in {done}");
    }
    assert_eq!(done["task_id"], id.as_str());
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_the_task_changes() {
    let server = TestServer::start_with(|raw| raw.local_work_ms = 300).await;
    let id = server.submit_image(&server.key, json!({})).await;
    let started = Instant::now();
    let res = server
        .get(&format!("/v1/tasks/{id}?wait=30"), &server.key)
        .await;
    let body = json_of(res, 200).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(body["status"], "pending", "{body}");
}

#[tokio::test]
async fn a_long_poll_on_an_unchanged_task_answers_304_after_the_wait() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    wait_status(&server, &server.key, &id, &["completed"]).await;

    // A finished task with no ETag answers at once: it cannot change any more.
    let started = Instant::now();
    let res = server
        .get(&format!("/v1/tasks/{id}?wait=5"), &server.key)
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(res.status(), 200);

    let started = Instant::now();
    let res = server
        .http
        .get(server.url(&format!("/v1/tasks/{id}?wait=1")))
        .bearer_auth(&server.key)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(res.headers()["etag"], etag.as_str());
}

#[tokio::test]
async fn an_unchanged_etag_answers_304_and_a_stale_one_the_task() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    let res = server.get(&format!("/v1/tasks/{id}"), &server.key).await;
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(res.json::<Value>().await.unwrap(), done);

    let conditional = |tag: String| {
        server
            .http
            .get(server.url(&format!("/v1/tasks/{id}")))
            .bearer_auth(&server.key)
            .header("if-none-match", tag)
            .send()
    };
    let res = conditional(etag.clone()).await.unwrap();
    assert_eq!(res.status(), 304);
    assert!(res.bytes().await.unwrap().is_empty());
    // A proxy may weaken the tag; If-None-Match compares weakly.
    let res = conditional(format!("W/{etag}")).await.unwrap();
    assert_eq!(res.status(), 304);
    let res = conditional("\"stale-1\"".into()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], etag.as_str());
}

#[tokio::test]
async fn the_aliases_answer_like_the_task_route() {
    let server = TestServer::start().await;
    let id = server.submit_image(&server.key, json!({})).await;
    let done = wait_status(&server, &server.key, &id, &["completed"]).await;
    for path in [
        format!("/v1/images/generations/{id}/status"),
        format!("/v1/videos/generations/tasks/{id}"),
        format!("/v1/tasks/{id}/poll?timeout=1"),
    ] {
        let body = json_of(server.get(&path, &server.key).await, 200).await;
        assert_eq!(body, done, "{path}");
    }
}

#[tokio::test]
async fn poll_with_timeout_waits_for_a_change() {
    let server = TestServer::start_with(|raw| raw.local_work_ms = 300).await;
    let id = server.submit_image(&server.key, json!({})).await;
    let res = server
        .get(&format!("/v1/tasks/{id}/poll?timeout=20"), &server.key)
        .await;
    assert_ne!(json_of(res, 200).await["status"], "pending");
}

/// Reads every page of `GET /v1/tasks?{query}` with `limit=10`.
async fn all_pages(server: &TestServer, query: &str) -> Vec<Value> {
    let mut tasks = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor
            .as_deref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        let path = format!("/v1/tasks?limit=10{query}{after}");
        let page = json_of(server.get(&path, &server.key).await, 200).await;
        assert_eq!(page["object"], "list");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 10);
        tasks.extend(data.iter().cloned());
        if page["has_more"] == false {
            assert!(page["next_cursor"].is_null(), "{page}");
            return tasks;
        }
        cursor = Some(
            page["next_cursor"]
                .as_str()
                .expect("next_cursor")
                .to_string(),
        );
    }
}

#[tokio::test]
async fn listing_pages_through_every_task_newest_first_without_skips_or_repeats() {
    let server = TestServer::start().await;
    let mut submitted = Vec::new();
    for _ in 0..27 {
        submitted.push(server.submit_image(&server.key, json!({})).await);
    }
    let video = json!({"prompt": "v", "duration": 1, "size": "480x480", "fps": 1});
    let res = server
        .post("/v1/videos/generations", &server.key, video)
        .await;
    let video_id = json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();

    let listed = all_pages(&server, "").await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 28);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        28,
        "a task repeated"
    );
    assert_eq!(ids[0], video_id, "newest first");
    let expected: Vec<&str> = submitted.iter().rev().map(String::as_str).collect();
    assert_eq!(
        &ids[1..],
        expected.as_slice(),
        "submission order, newest first"
    );
    let keys: Vec<(&str, &str)> = listed
        .iter()
        .map(|t| {
            (
                t["created_at"].as_str().unwrap(),
                t["task_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "total order by (created_at, id)"
    );

    let default_page = json_of(server.get("/v1/tasks", &server.key).await, 200).await;
    assert_eq!(default_page["data"].as_array().unwrap().len(), 20);
    let videos = all_pages(&server, "&type=video").await;
    assert_eq!(videos.len(), 1);
    assert_eq!(videos[0]["task_id"], video_id.as_str());
}

#[tokio::test]
async fn listing_filters_by_status() {
    let server = TestServer::start().await;
    let done = server.submit_image(&server.key, json!({})).await;
    wait_status(&server, &server.key, &done, &["completed"]).await;
    let slow = json!({"prompt": "v", "duration": 60, "size": "480x480", "fps": 1});
    let res = server
        .post("/v1/videos/generations", &server.key, slow)
        .await;
    let cancelled = json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .post(
            &format!("/v1/tasks/{cancelled}/cancel"),
            &server.key,
            json!({}),
        )
        .await;

    let page = json_of(
        server.get("/v1/tasks?status=cancelled", &server.key).await,
        200,
    )
    .await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![cancelled.as_str()]);
    let page = json_of(
        server.get("/v1/tasks?status=completed", &server.key).await,
        200,
    )
    .await;
    assert_eq!(page["data"][0]["task_id"], done.as_str());
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_long_poll_ends_401_when_its_key_is_disabled_meanwhile() {
    let server = TestServer::start().await;
    let (key, key_id, _) = server.create_key(json!({"name": "soon-off"})).await;
    let id = server.submit_image(&key, json!({})).await;
    // A finished task with its current ETag: the poll would wait the full 20 s.
    wait_status(&server, &key, &id, &["completed"]).await;
    let res = server.get(&format!("/v1/tasks/{id}"), &key).await;
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let poll = server
        .http
        .get(server.url(&format!("/v1/tasks/{id}?wait=20")))
        .bearer_auth(&key)
        .header("if-none-match", &etag)
        .send();
    let disable = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.disable_key(&key_id).await;
    };
    let started = Instant::now();
    let (res, ()) = tokio::join!(poll, disable);
    let res = res.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "key_disabled", "{err}");
}

#[tokio::test]
async fn a_page_of_large_results_ends_early_and_the_cursor_continues() {
    let server = TestServer::start().await;
    // Ten 1024x1024 PNGs as base64: an answer of about 5 MiB.
    let body =
        json!({"model": "dall-e-2", "n": 10, "size": "1024x1024", "response_format": "b64_json"});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = server.submit_image(&server.key, body.clone()).await;
        wait_status(&server, &server.key, &id, &["completed"]).await;
        ids.push(id);
    }
    // Two answers pass 8 MiB, so the page ends there although 10 were asked for.
    let first = json_of(server.get("/v1/tasks?limit=10", &server.key).await, 200).await;
    assert_eq!(
        first["data"].as_array().unwrap().len(),
        2,
        "{}",
        first["has_more"]
    );
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = json_of(
        server
            .get(&format!("/v1/tasks?limit=10&after={cursor}"), &server.key)
            .await,
        200,
    )
    .await;
    assert_eq!(second["has_more"], false);
    let seen: HashSet<&str> = [&first, &second]
        .iter()
        .flat_map(|p| p["data"].as_array().unwrap())
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ids.iter().map(String::as_str).collect());
}
