//! Isolation between virtual keys: another key's task answers 404 exactly as an
//! unknown id does, on every route, and never shows up in a list or the feed.

mod common;
mod support;

use common::TestServer;
use serde_json::{Value, json};
use support::{expect_error, feed, json_of, wait_status};

#[tokio::test]
async fn another_keys_task_is_not_found_on_every_route() {
    let server = TestServer::start_with(|raw| raw.local_work_ms = 300).await;
    let (other, _, _) = server.create_key(json!({"name": "b"})).await;
    let video = json!({"prompt": "mine", "duration": 30, "size": "480x480", "fps": 1});
    let res = server
        .post("/v1/videos/generations", &server.key, video)
        .await;
    let id = json_of(res, 202).await["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let unknown = "task_0000000000000000000000000000000a";

    for task in [id.as_str(), unknown] {
        for path in [
            format!("/v1/tasks/{task}"),
            format!("/v1/tasks/{task}?wait=1"),
            format!("/v1/tasks/{task}/events"),
            format!("/v1/tasks/{task}/poll?timeout=1"),
            format!("/v1/images/generations/{task}/status"),
            format!("/v1/videos/generations/tasks/{task}"),
        ] {
            let error = expect_error(server.get(&path, &other).await, 404, None).await;
            assert_eq!(error["message"], "No task found with that id.", "{path}");
        }
        let res = server
            .post(&format!("/v1/tasks/{task}/cancel"), &other, json!({}))
            .await;
        expect_error(res, 404, None).await;
        let res = server.http.delete(server.url(&format!("/v1/tasks/{task}")));
        expect_error(res.bearer_auth(&other).send().await.unwrap(), 404, None).await;
    }

    // The owner's task was not touched by any of that.
    let task = json_of(
        server.get(&format!("/v1/tasks/{id}"), &server.key).await,
        200,
    )
    .await;
    assert!(
        matches!(task["status"].as_str(), Some("pending" | "processing")),
        "{task}"
    );
}

#[tokio::test]
async fn lists_and_feeds_hold_only_the_keys_own_tasks() {
    let server = TestServer::start().await;
    let (other, _, _) = server.create_key(json!({"name": "b"})).await;
    let mine = server.submit_image(&server.key, json!({})).await;
    let theirs = server.submit_image(&other, json!({})).await;
    wait_status(&server, &server.key, &mine, &["completed"]).await;
    wait_status(&server, &other, &theirs, &["completed"]).await;

    for (key, own, foreign) in [(&server.key, &mine, &theirs), (&other, &theirs, &mine)] {
        let list = json_of(server.get("/v1/tasks", key).await, 200).await;
        let ids: Vec<&Value> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["task_id"])
            .collect();
        assert_eq!(ids, vec![own.as_str()]);
        let events = feed(&server, key, "").await;
        let events = events["data"].as_array().unwrap();
        assert!(!events.is_empty());
        for event in events {
            assert_ne!(event["data"]["taskId"], foreign.as_str(), "{event}");
        }
        // A foreign event id is not a cursor this key may use.
        let foreign_events = json_of(
            server.get(&format!("/v1/tasks/{own}/events"), key).await,
            200,
        )
        .await;
        let own_event = foreign_events["data"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let other_key = if key == &server.key {
            &other
        } else {
            &server.key
        };
        let res = server
            .get(&format!("/v1/events?after={own_event}"), other_key)
            .await;
        expect_error(res, 400, Some("after")).await;
    }
}
