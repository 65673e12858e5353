//! What keeps one webhook from harming others: a delivery may not call the
//! gateway's API (no delivery loops), and one key's endpoint settings never
//! slow another key's deliveries to the same receiver URL.

mod common;
mod webhooks_receiver;
mod webhooks_support;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{Value, json};
use webhooks_receiver::Receiver;
use webhooks_support::{PATIENCE, deliveries_of, emit, key_id, register, wait_status};

#[tokio::test]
async fn a_webhook_pointed_at_the_gateway_is_refused_and_starts_no_loop() {
    let server = TestServer::start().await;
    let key = server.key.clone();

    // 1. Any API request carrying a delivery's signature is refused.
    let res = server
        .http
        .get(server.url("/v1/tasks"))
        .bearer_auth(&key)
        .header("webhook-signature", "v1,AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "webhook_loop", "{err}");
    let res = server
        .http
        .post(server.url("/hubs/tasks/negotiate?negotiateVersion=1"))
        .bearer_auth(&key)
        .header("x-conduit-signature", "t=1,v1=00")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "the hubs refuse deliveries too");

    // 2. The gateway's own address is refused when the endpoint is created.
    let event = emit(&server, &key_id(&server), "key.rate_limited", json!({})).await;
    let path = format!("/v1/events/{event}/redeliver");
    let res = server
        .post("/v1/webhooks", &key, json!({"url": server.url(&path)}))
        .await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gateway itself"),
        "{err}"
    );

    // 3. Another name for it gets through (this server chose its port at start,
    //    so the guard knows only its public URL). An endpoint that replays its own
    //    event through the API would make each delivery create the next one. The
    //    call is refused, so the one delivery fails, is retried on its schedule
    //    and dies; nothing multiplies.
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let loop_url = format!("http://localhost:{port}{path}");
    register(
        &server,
        &key,
        json!({"url": loop_url, "events": ["key.*"], "headers": {"Authorization": format!("Bearer {key}")}}),
    )
    .await;
    let res = server
        .post(&format!("/v1/events/{event}/redeliver"), &key, json!({}))
        .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let dead = wait_status(&server, &key, &event, "dead").await;
    assert_eq!(dead["last_status_code"], 403, "{dead}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(deliveries_of(&server, &key, &event).await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn one_keys_rate_limit_never_slows_another_keys_deliveries_to_the_same_url() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let shared = receiver.url("/shared");

    // Key B: an endpoint limited to one delivery a second, with a backlog.
    let (b_key, b_id, _) = server.create_key(json!({"name": "b"})).await;
    register(
        &server,
        &b_key,
        json!({"url": shared, "events": ["key.*"], "rate_limit": 1}),
    )
    .await;
    for n in 0..6 {
        emit(&server, &b_id, "key.rate_limited", json!({"n": n})).await;
    }
    receiver
        .wait("B's first delivery", PATIENCE, |log| !log.is_empty())
        .await;

    // Key A: the same URL, no limit. Its event must not queue behind B's.
    register(
        &server,
        &server.key,
        json!({"url": shared, "events": ["key.*"]}),
    )
    .await;
    let sent = Instant::now();
    let a_event = emit(&server, &key_id(&server), "key.rate_limited", json!({})).await;
    receiver
        .wait("A's delivery", PATIENCE, |log| {
            log.iter().any(|r| r.json()["id"] == a_event.as_str())
        })
        .await;
    let waited = sent.elapsed();
    let b_done = receiver
        .requests()
        .iter()
        .filter(|r| r.json()["data"]["n"].is_number())
        .count();
    assert!(
        waited < Duration::from_millis(900),
        "A waited {waited:?} behind B's rate limit"
    );
    assert!(b_done < 6, "B's backlog was already delivered ({b_done})");
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_keys_endpoints_and_secrets_go_with_it() {
    let server = TestServer::start().await;
    let (b_key, b_id, _) = server.create_key(json!({"name": "b"})).await;
    register(&server, &b_key, json!({"url": "http://127.0.0.1:9/hook"})).await;
    let res = server
        .http
        .delete(server.url(&format!("/admin/v1/keys/{b_id}")))
        .bearer_auth(common::MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let app = &server.server.as_ref().unwrap().app;
    assert!(app.webhooks.endpoints.of_owner(Some(&b_id)).is_empty());
    let stored = app.store.endpoints().await.unwrap();
    assert!(stored.iter().all(|e| e.key_id.as_deref() != Some(&b_id)));
    server.stop().await;
}

#[tokio::test]
async fn replays_are_capped_per_key() {
    let server = TestServer::start().await;
    let event = emit(&server, &key_id(&server), "key.rate_limited", json!({})).await;
    let path = format!("/v1/events/{event}/redeliver");
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            server
                .post(&path, &server.key, json!({}))
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(statuses[..20].iter().all(|s| *s == 202), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Another key is not affected.
    let (b_key, b_id, _) = server.create_key(json!({"name": "b"})).await;
    let b_event = emit(&server, &b_id, "key.rate_limited", json!({})).await;
    let res = server
        .post(
            &format!("/v1/events/{b_event}/redeliver"),
            &b_key,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    server.stop().await;
}
