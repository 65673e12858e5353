//! Durability of webhook delivery across a SIGKILL of the real binary: with
//! thousands of deliveries pending or in flight, the process is killed and
//! started again on the same data directory. Every event still reaches every
//! receiver, each task's events in order, and a repeat only ever carries the
//! same `webhook-id` and body as the original.

mod common;
mod webhooks_receiver;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{ChildServer, free_port};
use serde_json::{Value, json};
use webhooks_receiver::{Answer, Received, Receiver};

const TASKS: usize = 300;
const PATHS: [&str; 3] = ["/task", "/ep1", "/ep2"];

async fn start(dir: &std::path::Path) -> ChildServer {
    // A long timeout: the receiver holds its first answers back for a while.
    let env = [
        ("CONDUIT_LOCAL_WORK_MS", "20"),
        ("CONDUIT_WEBHOOK_TIMEOUT_MS", "120000"),
    ];
    ChildServer::start(dir, free_port(), &env).await
}

/// Every event of the key, in log order.
async fn all_events(http: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after = String::new();
    loop {
        let url = format!("{base}/v1/events?limit=1000{after}");
        let page: Value = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().cloned().unwrap_or_default();
        if let Some(last) = data.last() {
            after = format!("&after={}", last["id"].as_str().unwrap());
        }
        out.extend(data);
        if page["has_more"] != true {
            return out;
        }
    }
}

/// How many of the key's tasks are pending or processing.
async fn unfinished(http: &reqwest::Client, base: &str, key: &str) -> usize {
    let mut count = 0;
    for status in ["pending", "processing"] {
        let url = format!("{base}/v1/tasks?status={status}&limit=100");
        let page: Value = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        count += page["data"].as_array().map_or(0, Vec::len);
    }
    count
}

#[tokio::test]
async fn a_sigkill_loses_no_delivery_and_breaks_no_order() {
    let dir = tempfile::tempdir().unwrap();
    // A receiver that holds every answer back until released, so that the
    // outbox fills up whatever the machine's speed.
    let released = Arc::new(AtomicBool::new(false));
    let gate = released.clone();
    let receiver = Receiver::with(move |_, _| {
        Answer::ok()
            .after(Duration::from_millis(2))
            .held_until(gate.clone())
    })
    .await;
    let http = reqwest::Client::new();

    // 1. First run: two endpoints, and tasks with their own webhook_url.
    let mut server = start(dir.path()).await;
    let (key, _) = server.first_start_credentials();
    for path in &PATHS[1..] {
        let body = json!({"url": receiver.url(path), "events": ["image.*"]});
        let url = format!("{}/v1/webhooks", server.base);
        let res = http
            .post(url)
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    for _ in 0..TASKS {
        let body = json!({"prompt": "p", "async": true, "webhook_url": receiver.url("/task")});
        let url = format!("{}/v1/images/generations", server.base);
        let res = http
            .post(url)
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    released.store(true, Ordering::SeqCst);

    // 2. Once the receiver answers, SIGKILL with thousands of deliveries
    //    pending or in flight (and tasks perhaps still running).
    let ok = |log: &[Received]| log.iter().filter(|r| r.status == 200).count();
    receiver
        .wait("the first successes", Duration::from_secs(60), |log| {
            ok(log) >= 200
        })
        .await;
    server.kill9();
    let before = ok(&receiver.requests());

    // 3. Second run on the same data: wait for every event at every receiver.
    let server = start(dir.path()).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (events, log) = loop {
        let finished = unfinished(&http, &server.base, &key).await == 0;
        let events = all_events(&http, &server.base, &key).await;
        let log = receiver.requests();
        let delivered = |e: &Value, path: &str| {
            log.iter()
                .any(|r| r.path == path && r.header("webhook-id") == e["id"] && r.status == 200)
        };
        if finished
            && PATHS
                .iter()
                .all(|path| events.iter().all(|e| delivered(e, path)))
        {
            break (events, log);
        }
        assert!(
            Instant::now() < deadline,
            "not everything delivered after the restart: {} events, {} requests ({before} successes before the kill)",
            events.len(),
            log.len(),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let tasks = events
        .iter()
        .filter(|e| e["type"] == "image.completed")
        .count();
    let pending_at_kill = events.len() * PATHS.len() - before;
    assert!(
        pending_at_kill >= 1000,
        "only {pending_at_kill} deliveries were left at the kill"
    );

    // 4. Per receiver and task: first arrivals in sequence order; repeats identical.
    let mut repeats = 0;
    for path in PATHS {
        let mut first_seen: HashMap<String, &str> = HashMap::new();
        let mut order: HashMap<String, Vec<i64>> = HashMap::new();
        for r in log.iter().filter(|r| r.path == path && r.status == 200) {
            let body = r.json();
            let id = r.header("webhook-id");
            assert_eq!(body["id"], id, "webhook-id differs from the body's id");
            if let Some(original) = first_seen.get(id) {
                assert_eq!(
                    *original,
                    r.body.as_str(),
                    "a repeat of {id} with another body"
                );
                repeats += 1;
                continue;
            }
            first_seen.insert(id.to_string(), r.body.as_str());
            let task = body["data"]["taskId"].as_str().unwrap().to_string();
            order
                .entry(task)
                .or_default()
                .push(body["sequence"].as_i64().unwrap());
        }
        for (task, sequences) in order {
            let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
            assert_eq!(sequences, expected, "{path}: events of {task} out of order");
        }
    }
    eprintln!(
        "{tasks} tasks, {} events, {} requests, {pending_at_kill} deliveries left at the kill, {repeats} repeats",
        events.len(),
        log.len(),
    );
    drop(server);
}
