//! The `conduit keys` command line against a running gateway on the same data
//! directory: a key it disables is refused by the gateway, and the key's live
//! channels hear `key.disabled` as they would from the admin API.

mod common;
mod webhooks_receiver;

use std::process::Command;
use std::time::Duration;

use common::{ChildServer, free_port};
use serde_json::{Value, json};
use webhooks_receiver::Receiver;

#[tokio::test]
async fn a_key_disabled_from_the_command_line_is_announced_on_every_channel() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path(), free_port(), &[]).await;
    let (key, _) = server.first_start_credentials();
    let http = reqwest::Client::new();

    // 1. A webhook endpoint for key events and a live event stream.
    let receiver = Receiver::start().await;
    let res = http
        .post(format!("{}/v1/webhooks", server.base))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url("/keys"), "events": ["key.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let stream = http
        .get(format!("{}/v1/events", server.base))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // 2. Another process disables the key.
    let out = Command::new(env!("CARGO_BIN_EXE_conduit"))
        .args(["keys", "disable", "default"])
        .env("CONDUIT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An admin change made at once, before the gateway reloaded its keys,
    // does not undo the disable.
    let keys: Value = http
        .get(format!("{}/admin/v1/keys", server.base))
        .bearer_auth(common::MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "default")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patched: Value = http
        .patch(format!("{}/admin/v1/keys/{id}", server.base))
        .bearer_auth(common::MASTER_KEY)
        .json(&json!({"rate_limit_rpm": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["enabled"], false, "{patched}");
    assert_eq!(patched["rate_limit_rpm"], 60, "{patched}");

    // 3. The stream delivers key.disabled and ends; the webhook arrives; the key
    //    is refused.
    let body = tokio::time::timeout(Duration::from_secs(15), stream.text())
        .await
        .expect("the event stream ends after key.disabled")
        .unwrap();
    assert!(body.contains("event: key.disabled"), "{body}");
    let log = receiver
        .wait("the key.disabled webhook", Duration::from_secs(15), |log| {
            !log.is_empty()
        })
        .await;
    let event: Value = log[0].json();
    assert_eq!(event["type"], "key.disabled");
    assert_eq!(event["data"]["reason"], "manual");
    let res = http
        .get(format!("{}/v1/tasks", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[test]
fn keys_create_refuses_what_the_admin_api_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let create = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_conduit"))
            .args(["keys", "create"])
            .args(args)
            .env("CONDUIT_DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    for bad in [
        &["--name", ""][..],
        &["--name", "n", "--rpm", "0"],
        &["--name", "n", "--rpm", "5000000"],
        &["--name", "n", "--budget", "NaN"],
        &["--name", "n", "--budget=-5"],
    ] {
        let out = create(bad);
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
    let out = create(&["--name", "ok", "--rpm", "60", "--budget", "2.5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condt_"));
}
