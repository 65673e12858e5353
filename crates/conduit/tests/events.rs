//! The event log as clients read it: one task's events, the key's feed with its
//! cursor, type filter, limit and `has_more`, system events, and the live
//! Server-Sent Events stream with resumption by `Last-Event-ID`.

mod common;
mod support;

use std::collections::HashSet;

use common::{MASTER_KEY, TestServer};
use serde_json::{Value, json};
use support::{SseReader, assert_well_ordered, feed, json_of, task_events, wait_status};

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_tasks_events_count_from_one_and_carry_the_envelope() {
    let server = TestServer::start().await;
    let id = server
        .submit_image(&server.key, json!({"model": "dall-e-2", "n": 2}))
        .await;
    wait_status(&server, &server.key, &id, &["completed"]).await;
    let events = task_events(&server, &server.key, &id).await;
    assert_well_ordered(&events, "image.completed");
    assert_eq!(events.len(), 4, "started, two progress, completed");
    for event in &events {
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        let ts = event["timestamp"].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && ts.len() == 24,
            "UTC with milliseconds: {ts}"
        );
        assert_eq!(event["data"]["taskId"], id.as_str());
    }
}

#[tokio::test]
async fn the_feed_pages_by_cursor_and_filters_by_type() {
    let server = TestServer::start().await;
    let image = server.submit_image(&server.key, json!({})).await;
    wait_status(&server, &server.key, &image, &["completed"]).await;
    let body = json!({"input": "hi", "async": true});
    let res = server.post("/v1/audio/speech", &server.key, body).await;
    let speech = json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&server, &server.key, &speech, &["completed"]).await;

    // Everything, then the same events one page of two at a time.
    let all = feed(&server, &server.key, "").await;
    assert_eq!(all["object"], "list");
    assert_eq!(all["has_more"], false);
    let all = all["data"].as_array().unwrap().clone();
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page = feed(&server, &server.key, &format!("limit=2&after={after}")).await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        paged.extend(data.iter().cloned());
        if page["has_more"] == false {
            break;
        }
        after = data.last().unwrap()["id"].as_str().unwrap().to_string();
    }
    assert_eq!(ids(&paged), ids(&all));
    assert_eq!(
        ids(&all).into_iter().collect::<HashSet<_>>().len(),
        all.len()
    );

    // `types` narrows to image events only, in the same order.
    let images = feed(&server, &server.key, "types=image.*").await;
    let images = images["data"].as_array().unwrap();
    assert!(
        images
            .iter()
            .all(|e| e["type"].as_str().unwrap().starts_with("image."))
    );
    let expected: Vec<String> = all
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("image."))
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(images), expected);
    let exact = feed(
        &server,
        &server.key,
        "types=audio.synthesis.completed,image.started",
    )
    .await;
    assert_eq!(exact["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn system_events_reach_every_key_and_other_keys_events_do_not() {
    let server = TestServer::start().await;
    let (other, _, _) = server.create_key(json!({"name": "other"})).await;
    let theirs = server.submit_image(&other, json!({})).await;
    wait_status(&server, &other, &theirs, &["completed"]).await;

    let notice =
        json!({"status": "scheduled", "message": "upgrade", "starts_at": "2030-01-01T00:00:00Z"});
    let res = server
        .post("/admin/v1/maintenance", MASTER_KEY, notice)
        .await;
    let maintenance = json_of(res, 201).await;
    assert_eq!(maintenance["type"], "system.maintenance");
    assert!(
        maintenance.get("sequence").is_none_or(Value::is_null),
        "{maintenance}"
    );
    assert_eq!(maintenance["data"]["startsAt"], "2030-01-01T00:00:00.000Z");
    let health = json!({"status": "degraded", "previous_status": "healthy", "latency_ms": 900});
    let res = server
        .post("/admin/v1/providers/local/health", MASTER_KEY, health)
        .await;
    let health = json_of(res, 201).await;
    assert_eq!(health["type"], "provider.health_changed");
    assert_eq!(health["data"]["previousStatus"], "healthy");

    for key in [&server.key, &other] {
        let page = feed(&server, key, "types=system.*,provider.*").await;
        let types: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["system.maintenance", "provider.health_changed"]);
    }
    let mine = feed(&server, &server.key, "").await;
    assert!(
        mine["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["data"]["taskId"] != theirs.as_str()),
        "another key's task events leaked: {mine}"
    );
}

#[tokio::test]
async fn the_stream_delivers_live_events_and_resumes_without_loss_or_repeats() {
    let server = TestServer::start().await;
    let mut stream = SseReader::open(&server, &server.key, "types=image.*", None).await;
    let first = server.submit_image(&server.key, json!({})).await;
    let mut seen = Vec::new();
    loop {
        let event = stream.next().await;
        assert_eq!(event.id, event.data["id"].as_str().unwrap());
        assert_eq!(event.event, event.data["type"].as_str().unwrap());
        let done = event.event == "image.completed";
        seen.push(event);
        if done {
            break;
        }
    }
    assert!(
        seen.iter()
            .all(|e| e.data["data"]["taskId"] == first.as_str())
    );
    assert_eq!(seen[0].event, "image.started");
    drop(stream);

    // While disconnected, another task runs; resuming replays exactly its events.
    let second = server
        .submit_image(&server.key, json!({"model": "dall-e-2", "n": 2}))
        .await;
    wait_status(&server, &server.key, &second, &["completed"]).await;
    let last_id = seen.last().unwrap().id.clone();
    let mut resumed = SseReader::open(&server, &server.key, "types=image.*", Some(&last_id)).await;
    let expected = ids(&task_events(&server, &server.key, &second).await);
    let mut replayed = Vec::new();
    for _ in 0..expected.len() {
        replayed.push(resumed.next().await.id);
    }
    assert_eq!(replayed, expected);

    // And it keeps following live events afterwards.
    let third = server.submit_image(&server.key, json!({})).await;
    let next = resumed.next().await;
    assert_eq!(next.event, "image.started");
    assert_eq!(next.data["data"]["taskId"], third.as_str());
}

#[tokio::test]
async fn a_type_that_matches_no_event_is_a_400() {
    let server = TestServer::start().await;
    for types in ["image", "image.complete", "audio.speech.*"] {
        let res = server
            .get(&format!("/v1/events?types={types}"), &server.key)
            .await;
        let err = json_of(res, 400).await;
        assert_eq!(err["error"]["param"], "types", "{types}: {err}");
    }
    for types in [
        "image.*",
        "audio.*",
        "key.disabled",
        "system.*,video.progress",
    ] {
        let res = server
            .get(&format!("/v1/events?types={types}"), &server.key)
            .await;
        assert_eq!(res.status(), 200, "{types}");
    }
}

#[tokio::test]
async fn a_filtered_stream_ends_when_its_key_is_disabled() {
    let server = TestServer::start().await;
    let (key, key_id, _) = server.create_key(json!({"name": "soon-off"})).await;
    let stream = server
        .http
        .get(server.url("/v1/events?types=image.*"))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    server.disable_key(&key_id).await;
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), stream.text())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(!body.contains("event: image."), "{body}");
}
