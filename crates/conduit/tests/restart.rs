//! Recovery across restarts of the real binary: tasks accepted before a SIGKILL
//! (or a graceful stop) mid-flight all finish after the next start on the same
//! data directory, with their event sequences unbroken.

mod common;

use std::time::Duration;

use common::{ChildServer, free_port};
use serde_json::{Value, json};

/// A client of one child process.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    async fn get(&self, path: &str) -> Value {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        let res = res.send().await.expect("request");
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    async fn submit(&self, path: &str, body: Value) -> String {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        let res = res.json(&body).send().await.expect("request");
        assert_eq!(res.status(), 202);
        res.json::<Value>().await.unwrap()["task_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Long-polls until the task's status is one of `statuses`.
    async fn wait_for(&self, id: &str, statuses: &[&str]) -> Value {
        for _ in 0..60 {
            let task = self.get(&format!("/v1/tasks/{id}?wait=2")).await;
            if statuses.contains(&task["status"].as_str().unwrap()) {
                return task;
            }
        }
        panic!("task {id} never reached {statuses:?}");
    }
}

const WORK_MS: &str = "400";

/// Starts the binary on `dir` with slow local work.
async fn start(dir: &std::path::Path) -> ChildServer {
    ChildServer::start(dir, free_port(), &[("CONDUIT_LOCAL_WORK_MS", WORK_MS)]).await
}

/// Submits images and videos that each take a second or more; returns their ids.
async fn submit_mixed(client: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = json!({"prompt": "slow", "model": "dall-e-2", "n": 3, "size": "256x256", "async": true});
        ids.push(client.submit("/v1/images/generations", body).await);
    }
    for _ in 0..2 {
        let body = json!({"prompt": "slow", "duration": 3, "size": "480x480", "fps": 2});
        ids.push(client.submit("/v1/videos/generations", body).await);
    }
    ids
}

/// Every task ends well and its events count 1..n with one terminal event last.
async fn assert_all_recovered(client: &Client, ids: &[String]) {
    for id in ids {
        let task = client
            .wait_for(id, &["completed", "failed", "timedout", "cancelled"])
            .await;
        let ok = task["status"] == "completed"
            || (task["status"] == "failed" && task["error"]["retryable"] == true);
        assert!(ok, "{task}");
        let events = client.get(&format!("/v1/tasks/{id}/events")).await;
        let events = events["data"].as_array().unwrap();
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event["sequence"], (i + 1) as i64, "gap in {events:#?}");
        }
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(types[0].ends_with(".started"), "{types:?}");
        let terminal = |t: &str| t.ends_with(".completed") || t.ends_with(".failed");
        assert_eq!(types.iter().filter(|t| terminal(t)).count(), 1, "{types:?}");
        assert!(terminal(types.last().unwrap()), "{types:?}");
    }

    // None was lost: the list holds exactly what was accepted.
    let list = client.get("/v1/tasks?limit=100").await;
    let mut listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut accepted: Vec<&str> = ids.iter().map(String::as_str).collect();
    accepted.sort();
    assert_eq!(listed, accepted);
}

#[tokio::test]
async fn tasks_in_flight_at_sigkill_finish_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path()).await;
    let (key, _) = first.first_start_credentials();
    let client = Client {
        http: reqwest::Client::new(),
        base: first.base.clone(),
        key,
    };
    let ids = submit_mixed(&client).await;
    client.wait_for(&ids[3], &["processing"]).await;
    client.wait_for(&ids[0], &["processing"]).await;
    first.kill9();

    let second = start(dir.path()).await;
    let client = Client {
        base: second.base.clone(),
        ..client
    };
    assert_all_recovered(&client, &ids).await;
}

#[tokio::test]
async fn tasks_in_flight_at_a_graceful_stop_finish_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path()).await;
    let (key, _) = first.first_start_credentials();
    let client = Client {
        http: reqwest::Client::new(),
        base: first.base.clone(),
        key,
    };
    let ids = submit_mixed(&client).await;
    client.wait_for(&ids[3], &["processing"]).await;

    // SIGTERM, then the process exits by itself, cleanly and promptly.
    let pid = first.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut exit = None;
    for _ in 0..100 {
        exit = first.child.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(exit.expect("stopped within 10 s").success(), "{exit:?}");

    let second = start(dir.path()).await;
    let client = Client {
        base: second.base.clone(),
        ..client
    };
    assert_all_recovered(&client, &ids).await;
}
