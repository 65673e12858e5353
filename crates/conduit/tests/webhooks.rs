//! Webhook delivery end to end: a real gateway on port 0 sends to real receivers
//! on 127.0.0.1. Signatures (ours, the `standardwebhooks` package's and the
//! guide's), body bytes, headers, secret rotation and admin endpoints.

mod common;
mod webhooks_receiver;
mod webhooks_support;

use std::collections::HashSet;

use common::{MASTER_KEY, TestServer};
use conduit::webhooks::signing::{verify_conduit, verify_standard};
use serde_json::{Value, json};
use webhooks_receiver::{Received, Receiver, node_verify};
use webhooks_support::{PATIENCE, assert_signed, emit, key_id, register};

#[tokio::test]
async fn task_webhooks_carry_every_header_and_verify_both_ways() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let task_id = server
        .submit_image(
            &server.key,
            json!({"webhook_url": receiver.url("/hook"), "webhook_headers": {"X-Tenant": "acme"}}),
        )
        .await;
    let log = receiver
        .wait("image.completed", PATIENCE, |log| {
            log.iter()
                .any(|r| r.header("x-conduit-event") == "image.completed")
        })
        .await;

    // 1. Every header, on every request.
    let mut attempt_ids = HashSet::new();
    for r in &log {
        let body = r.json();
        assert_eq!(body["data"]["taskId"], task_id);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("x-conduit-event"), body["type"]);
        assert_eq!(r.header("webhook-id"), body["id"]);
        assert!(
            r.header("user-agent").starts_with("Conduit/"),
            "{:?}",
            r.headers
        );
        assert_eq!(r.header("x-tenant"), "acme");
        let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
        assert!(attempt_ids.insert(r.header("x-conduit-delivery").to_string()));
        assert_signed(r, &server.webhook_secret);
    }

    // 2. The events of the task, in order from sequence 1.
    let sequences: Vec<i64> = log
        .iter()
        .map(|r| r.json()["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>());

    // 3. The reference library and the guide's own check agree.
    match node_verify(&log, &server.webhook_secret, &server.webhook_secret) {
        None => eprintln!("SKIPPED: standardwebhooks check (node missing)"),
        Some(verdicts) => {
            for (r, v) in log.iter().zip(verdicts) {
                assert_eq!(v.standard, Ok(()), "standardwebhooks refused {}", r.body);
                assert!(v.seed_signature, "the guide's check refused {}", r.body);
                assert!(v.round_trips, "body does not round-trip: {}", r.body);
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn bodies_with_unicode_escapes_and_numbers_round_trip_through_javascript() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let key_id = key_id(&server);
    let (_, secret) = register(&server, &server.key, json!({"url": receiver.url("/all")})).await;

    // Data a JavaScript receiver re-serialises differently unless we wrote it its way.
    let tricky: Vec<Value> = vec![
        json!({"text": "snow ☃, emoji 🦀, e\u{301} combining, RTL \u{202e}abc", "sep": "\u{2028}\u{2029}"}),
        json!({"quote": "say \"hi\"", "backslash": "C:\\path", "control": "\u{1}\u{1f}\t\n", "html": "</script><!--"}),
        serde_json::from_str(r#"{"one":1.0,"big":1e21,"small":1e-7,"neg":-0.0,"third":0.30000000000000004,"int":123456789012,"exp":2.5e+30}"#).unwrap(),
        serde_json::from_str(r#"{"metadata":{"b":"2","2":"x","a":"1","1":"y","10":"z"},"empty":{},"list":[],"nil":null,"deep":[[{"k":[1,2.5,"3"]}]]}"#).unwrap(),
    ];
    let mut ids = Vec::new();
    for data in &tricky {
        ids.push(emit(&server, &key_id, "key.rate_limited", data.clone()).await);
    }
    let log = receiver
        .wait("every tricky event", PATIENCE, |log| log.len() >= ids.len())
        .await;
    for r in &log {
        assert_signed(r, &secret);
    }
    match node_verify(&log, &secret, &secret) {
        None => eprintln!("SKIPPED: JSON round-trip check (node missing)"),
        Some(verdicts) => {
            for (r, v) in log.iter().zip(verdicts) {
                assert!(
                    v.round_trips,
                    "JSON.stringify(JSON.parse(body)) !== body for {}",
                    r.body
                );
                assert_eq!(v.standard, Ok(()), "standardwebhooks refused {}", r.body);
                assert!(v.seed_signature, "the guide's check refused {}", r.body);
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn rotated_secrets_sign_side_by_side_during_the_grace_period() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let key_id = key_id(&server);
    let (endpoint, old) = register(&server, &server.key, json!({"url": receiver.url("/ep")})).await;

    // 1. An endpoint's secret.
    let rotated: Value = server
        .post(
            &format!("/v1/webhooks/{endpoint}/rotate-secret"),
            &server.key,
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    let shown: Value = server
        .get(&format!("/v1/webhooks/{endpoint}/secret"), &server.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["secret"], new.as_str());
    emit(&server, &key_id, "key.rate_limited", json!({})).await;
    let log = receiver
        .wait("a delivery", PATIENCE, |log| !log.is_empty())
        .await;
    let r = &log[0];
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    assert_signed(r, &new);
    assert_signed_standard_only(r, &old);
    assert!(verify_conduit(&old, r.header("x-conduit-signature"), r.body.as_bytes()).is_err());

    // 2. A key's task-webhook secret, rotated through the admin API.
    let rotated: Value = server
        .post(
            &format!("/admin/v1/keys/{key_id}/rotate-webhook-secret"),
            MASTER_KEY,
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_key_secret = rotated["webhook_secret"].as_str().unwrap().to_string();
    server
        .submit_image(&server.key, json!({"webhook_url": receiver.url("/task")}))
        .await;
    let log = receiver
        .wait("a task delivery", PATIENCE, |log| {
            log.iter().any(|r| r.path == "/task")
        })
        .await;
    let r = log.iter().find(|r| r.path == "/task").unwrap();
    assert_signed(r, &new_key_secret);
    assert_signed_standard_only(r, &server.webhook_secret);
    server.stop().await;
}

/// Only the Standard Webhooks signature verifies with `secret` (an old one).
fn assert_signed_standard_only(r: &Received, secret: &str) {
    verify_standard(
        secret,
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
        r.body.as_bytes(),
        chrono::Utc::now().timestamp(),
        300,
    )
    .expect("the previous secret still verifies during the grace period");
}

#[tokio::test]
async fn admin_endpoints_receive_system_events() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let res = server
        .post(
            "/admin/v1/webhooks",
            MASTER_KEY,
            json!({"url": receiver.url("/ops"), "events": ["system.*"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let res = server
        .post(
            "/admin/v1/maintenance",
            MASTER_KEY,
            json!({"status": "scheduled", "message": "upgrade"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let log = receiver
        .wait("system.maintenance", PATIENCE, |log| !log.is_empty())
        .await;
    assert_eq!(log[0].json()["type"], "system.maintenance");
    assert_signed(&log[0], &secret);
    let listed: Value = server
        .get("/admin/v1/webhooks/deliveries", MASTER_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    server.stop().await;
}
