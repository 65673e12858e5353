//! Webhook retries and their limits end to end: the retry schedule, dead
//! deliveries, `Retry-After`, 410 Gone, ordering within a task while its first
//! event fails, cancellation by deleting or disabling an endpoint, replay, and
//! an endpoint's rate limit.

mod common;
mod webhooks_receiver;
mod webhooks_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};
use webhooks_receiver::{Answer, Received, Receiver, eventually};
use webhooks_support::{PATIENCE, deliveries_of, emit, key_id, register, wait_status};

#[tokio::test]
async fn failures_follow_the_retry_schedule_then_the_delivery_is_dead() {
    let server = TestServer::start().await;
    let receiver = Receiver::with(|_, _| Answer::status(500)).await;
    let key_id = key_id(&server);
    register(&server, &server.key, json!({"url": receiver.url("/down")})).await;
    let event_id = emit(&server, &key_id, "key.rate_limited", json!({"n": 1})).await;

    // Schedule 0.2, 0.4, 0.8 s: four attempts, then dead.
    let dead = wait_status(&server, &server.key, &event_id, "dead").await;
    assert_eq!(dead["attempts"], 4);
    assert_eq!(dead["last_status_code"], 500);
    let log = receiver.at("/down");
    assert_eq!(log.len(), 4);
    for (pair, planned) in log.windows(2).zip([0.2, 0.4, 0.8]) {
        let gap = pair[1].at.duration_since(pair[0].at).as_secs_f64();
        assert!(
            gap >= planned * 0.9 - 0.01,
            "gap {gap} before a retry planned at {planned}"
        );
        assert!(gap < planned + 5.0, "gap {gap} far beyond {planned}");
        assert_eq!(pair[0].header("webhook-id"), pair[1].header("webhook-id"));
        assert_ne!(
            pair[0].header("x-conduit-delivery"),
            pair[1].header("x-conduit-delivery")
        );
    }

    // The attempt log has each one.
    let id = dead["id"].as_str().unwrap();
    let attempts: Value = server
        .get(
            &format!("/v1/webhooks/deliveries/{id}/attempts"),
            &server.key,
        )
        .await
        .json()
        .await
        .unwrap();
    let attempts = attempts["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    assert!(
        attempts
            .iter()
            .all(|a| a["status_code"] == 500 && a["response_excerpt"] == "ok")
    );
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["attempt"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    server.stop().await;
}

#[tokio::test]
async fn retry_after_sets_the_next_delay() {
    let server = TestServer::start().await;
    let receiver = Receiver::with(|_, seen| match seen {
        0 => Answer::status(503).with_header("retry-after", "1"),
        _ => Answer::ok(),
    })
    .await;
    let key_id = key_id(&server);
    register(&server, &server.key, json!({"url": receiver.url("/busy")})).await;
    let event_id = emit(&server, &key_id, "key.rate_limited", json!({})).await;
    wait_status(&server, &server.key, &event_id, "succeeded").await;
    let log = receiver.at("/busy");
    assert_eq!(log.len(), 2);
    let gap = log[1].at.duration_since(log[0].at).as_secs_f64();
    // The schedule alone would retry after 0.2 s.
    assert!(gap >= 0.95, "retried after {gap} s despite Retry-After: 1");
    server.stop().await;
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_the_key_hears_of_it() {
    let server = TestServer::start().await;
    let receiver = Receiver::with(|r, _| match r.path.as_str() {
        "/gone" => Answer::status(410),
        _ => Answer::ok(),
    })
    .await;
    let key_id = key_id(&server);
    let (gone_id, _) = register(
        &server,
        &server.key,
        json!({"url": receiver.url("/gone"), "events": ["key.*"]}),
    )
    .await;
    register(
        &server,
        &server.key,
        json!({"url": receiver.url("/watch"), "events": ["webhook.*"]}),
    )
    .await;
    emit(&server, &key_id, "key.rate_limited", json!({})).await;

    // 1. The other endpoint gets webhook.endpoint_disabled.
    let log = receiver
        .wait("webhook.endpoint_disabled", PATIENCE, |log| {
            log.iter().any(|r| r.path == "/watch")
        })
        .await;
    let notice = log.iter().find(|r| r.path == "/watch").unwrap().json();
    assert_eq!(notice["type"], "webhook.endpoint_disabled");
    assert_eq!(notice["data"]["endpointId"], gone_id);
    assert_eq!(notice["data"]["url"], receiver.url("/gone"));
    assert_eq!(notice["data"]["reason"], "gone");
    assert_eq!(notice["data"]["lastStatus"], 410);

    // 2. The endpoint shows why; the key's event log has the notice too.
    let endpoint: Value = server
        .get(&format!("/v1/webhooks/{gone_id}"), &server.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(endpoint["status"], "disabled");
    assert_eq!(endpoint["disabled_reason"], "gone");
    let events: Value = server
        .get("/v1/events?types=webhook.*", &server.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["data"].as_array().unwrap().len(), 1);

    // 3. Nothing more goes to it.
    emit(&server, &key_id, "key.rate_limited", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.at("/gone").len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_first_event_holds_back_its_task_but_not_other_tasks() {
    let server = TestServer::start().await;
    let first_of_a = Arc::new(std::sync::Mutex::new(None::<String>));
    let slot = first_of_a.clone();
    let receiver = Receiver::with(move |r, seen| {
        if r.path != "/a" {
            return Answer::ok();
        }
        let id = r.header("webhook-id").to_string();
        let mut first = slot.lock().unwrap();
        let first = first.get_or_insert(id.clone());
        if *first == id && seen < 3 {
            Answer::status(500)
        } else {
            Answer::ok()
        }
    })
    .await;
    let task_a = server
        .submit_image(&server.key, json!({"webhook_url": receiver.url("/a")}))
        .await;
    let task_b = server
        .submit_image(&server.key, json!({"webhook_url": receiver.url("/b")}))
        .await;
    let done = |log: &[Received], path: &str| {
        log.iter().any(|r| {
            r.path == path && r.header("x-conduit-event") == "image.completed" && r.status == 200
        })
    };
    let log = receiver
        .wait("both tasks' image.completed", PATIENCE, |log| {
            done(log, "/a") && done(log, "/b")
        })
        .await;

    // 1. Task A: its first event three times, then the rest in order.
    let a: Vec<&Received> = log.iter().filter(|r| r.path == "/a").collect();
    let first = first_of_a.lock().unwrap().clone().unwrap();
    assert!(
        a[..4].iter().all(|r| r.header("webhook-id") == first),
        "{a:#?}"
    );
    assert_eq!(
        a[..4].iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 500, 500, 200]
    );
    let sequences: Vec<i64> = a
        .iter()
        .skip(3)
        .map(|r| r.json()["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>());
    assert!(a.iter().all(|r| r.json()["data"]["taskId"] == task_a));

    // 2. Task B did not wait for A's retries.
    let b_done = log
        .iter()
        .position(|r| r.path == "/b" && r.header("x-conduit-event") == "image.completed")
        .unwrap();
    let a_ok = log
        .iter()
        .position(|r| r.path == "/a" && r.status == 200)
        .unwrap();
    assert!(
        b_done < a_ok,
        "task B's completion waited for task A's retries"
    );
    assert!(
        log.iter()
            .filter(|r| r.path == "/b")
            .all(|r| r.json()["data"]["taskId"] == task_b)
    );
    server.stop().await;
}

#[tokio::test]
async fn deleting_or_disabling_an_endpoint_cancels_its_retries_even_in_flight() {
    let server =
        TestServer::start_with(|raw| raw.webhook_retry_schedule = "1.5,1.5,1.5".into()).await;
    let arrivals = Arc::new(AtomicUsize::new(0));
    let counter = arrivals.clone();
    let receiver = Receiver::with(move |r, _| {
        if r.path == "/slow" {
            counter.fetch_add(1, Ordering::SeqCst);
            return Answer::status(500).after(Duration::from_millis(800));
        }
        Answer::status(500)
    })
    .await;
    let key_id = key_id(&server);
    let (deleted, _) = register(
        &server,
        &server.key,
        json!({"url": receiver.url("/deleted")}),
    )
    .await;
    let (disabled, _) = register(
        &server,
        &server.key,
        json!({"url": receiver.url("/disabled")}),
    )
    .await;
    let (in_flight, _) =
        register(&server, &server.key, json!({"url": receiver.url("/slow")})).await;
    let event_id = emit(&server, &key_id, "key.rate_limited", json!({})).await;

    // 1. First attempts: two failed, one still waiting for its answer.
    receiver
        .wait("first attempts", PATIENCE, |log| {
            log.iter().any(|r| r.path == "/deleted") && log.iter().any(|r| r.path == "/disabled")
        })
        .await;
    eventually("the slow attempt to arrive", PATIENCE, || async {
        (arrivals.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;

    // 2. Delete one, disable another, delete the one in flight.
    let res = server
        .http
        .delete(server.url(&format!("/v1/webhooks/{deleted}")))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = server
        .http
        .patch(server.url(&format!("/v1/webhooks/{disabled}")))
        .bearer_auth(&server.key)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "disabled");
    assert_eq!(body["disabled_reason"], "manual");
    let res = server
        .http
        .delete(server.url(&format!("/v1/webhooks/{in_flight}")))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // 3. All three deliveries are cancelled, and stay so past their retry time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let deliveries = deliveries_of(&server, &server.key, &event_id).await;
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries.iter().all(|d| d["status"] == "cancelled"),
        "{deliveries:#?}"
    );
    assert_eq!(receiver.requests().len(), 3, "no retry may be sent");
    server.stop().await;
}

#[tokio::test]
async fn redeliver_and_retry_send_again_with_the_same_webhook_id() {
    let server = TestServer::start().await;
    let receiver = Receiver::with(|r, _| match r.path.as_str() {
        "/flaky" => Answer::status(500),
        _ => Answer::ok(),
    })
    .await;
    let key_id = key_id(&server);
    register(
        &server,
        &server.key,
        json!({"url": receiver.url("/ok"), "events": ["key.rate_limited"]}),
    )
    .await;
    let event_id = emit(&server, &key_id, "key.rate_limited", json!({"n": 1})).await;
    wait_status(&server, &server.key, &event_id, "succeeded").await;

    // 1. Redeliver: a fresh delivery, the same event.
    let res = server
        .post(
            &format!("/v1/events/{event_id}/redeliver"),
            &server.key,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let replay: Value = res.json().await.unwrap();
    assert_eq!(replay["data"].as_array().unwrap().len(), 1);
    let log = receiver
        .wait("the replay", PATIENCE, |log| log.len() >= 2)
        .await;
    assert_eq!(log[0].header("webhook-id"), log[1].header("webhook-id"));
    assert_eq!(log[0].body, log[1].body);
    assert_ne!(
        log[0].header("x-conduit-delivery"),
        log[1].header("x-conduit-delivery")
    );
    assert_eq!(
        deliveries_of(&server, &server.key, &event_id).await.len(),
        2
    );

    // 2. Retry a dead delivery once the receiver works again.
    let (flaky, _) = register(
        &server,
        &server.key,
        json!({"url": receiver.url("/flaky"), "events": ["key.budget.exceeded"]}),
    )
    .await;
    let event_id = emit(&server, &key_id, "key.budget.exceeded", json!({})).await;
    let dead = wait_status(&server, &server.key, &event_id, "dead").await;
    receiver.set(|_, _| Answer::ok());
    let id = dead["id"].as_str().unwrap();
    let res = server
        .post(
            &format!("/v1/webhooks/deliveries/{id}/retry"),
            &server.key,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let done = wait_status(&server, &server.key, &event_id, "succeeded").await;
    assert_eq!(done["attempts"], 5);
    assert_eq!(done["endpoint_id"], flaky);
    server.stop().await;
}

#[tokio::test]
async fn an_endpoint_rate_limit_spaces_deliveries() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let key_id = key_id(&server);
    register(
        &server,
        &server.key,
        json!({"url": receiver.url("/slow"), "rate_limit": 5}),
    )
    .await;
    for n in 0..8 {
        emit(&server, &key_id, "key.rate_limited", json!({"n": n})).await;
    }
    let log = receiver
        .wait("eight deliveries", PATIENCE, |log| log.len() >= 8)
        .await;
    let span = log[7].at.duration_since(log[0].at).as_secs_f64();
    // Five a second: seven gaps of 0.2 s at least.
    assert!(
        span >= 1.35,
        "eight deliveries within {span} s despite rate_limit 5"
    );
    let order: Vec<i64> = log
        .iter()
        .map(|r| r.json()["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, (0..8).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_window_is_disabled() {
    let server = TestServer::start_with(|raw| raw.webhook_disable_after_secs = 1).await;
    let receiver = Receiver::with(|r, _| match r.path.as_str() {
        "/down" => Answer::status(500),
        _ => Answer::ok(),
    })
    .await;
    let key_id = key_id(&server);
    let (down, _) = register(
        &server,
        &server.key,
        json!({"url": receiver.url("/down"), "events": ["key.*"]}),
    )
    .await;
    register(
        &server,
        &server.key,
        json!({"url": receiver.url("/watch"), "events": ["webhook.*"]}),
    )
    .await;
    emit(&server, &key_id, "key.rate_limited", json!({})).await;

    // Attempts at about 0, 0.2, 0.6 and 1.4 s: the last comes after a second of failures.
    let log = receiver
        .wait("webhook.endpoint_disabled", PATIENCE, |log| {
            log.iter().any(|r| r.path == "/watch")
        })
        .await;
    let notice = log.iter().find(|r| r.path == "/watch").unwrap().json();
    assert_eq!(notice["data"]["endpointId"], down);
    assert_eq!(notice["data"]["reason"], "failing");
    assert_eq!(notice["data"]["lastStatus"], 500);
    let endpoint: Value = server
        .get(&format!("/v1/webhooks/{down}"), &server.key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(endpoint["status"], "disabled");
    assert_eq!(endpoint["disabled_reason"], "failing");
    server.stop().await;
}
