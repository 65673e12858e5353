//! Virtual keys through the admin API, and what each limit does to a client:
//! disabled and expired keys (401 saying so), allowed models (403), rate limits
//! (429 with `Retry-After` and an event), budgets (402 and an event), deletion,
//! and rotating the task-webhook secret.

mod common;
mod support;

use std::time::Duration;

use common::{MASTER_KEY, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use support::{PATIENCE, expect_error, feed, json_of, wait_status};

async fn admin(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = server
        .http
        .request(method, server.url(path))
        .bearer_auth(MASTER_KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn keys_are_created_read_updated_and_deleted() {
    let server = TestServer::start().await;
    let body = json!({"name": "mobile", "allowed_models": ["dall-e-3"], "rate_limit_rpm": 100,
        "rate_limit_rpd": 1000, "budget": 5.5, "expires_at": "2099-01-01T00:00:00Z",
        "metadata": {"team": "app"}});
    let created = json_of(
        admin(&server, Method::POST, "/admin/v1/keys", Some(body)).await,
        201,
    )
    .await;
    let value = created["key"].as_str().unwrap().to_string();
    let secret = created["webhook_secret"].as_str().unwrap();
    assert!(value.starts_with("condt_") && value.len() == 49, "{value}");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "mobile");
    assert_eq!(created["budget"], 5.5);
    assert_eq!(created["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(created["metadata"]["team"], "app");

    // Reads never show the value or the secret again.
    let one = admin(&server, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
    let list = admin(&server, Method::GET, "/admin/v1/keys", None).await;
    for text in [one.text().await.unwrap(), list.text().await.unwrap()] {
        assert!(!text.contains(&value) && !text.contains(secret), "{text}");
        assert!(
            !text.contains("\"key\"") && !text.contains("webhook_secret"),
            "{text}"
        );
        assert!(text.contains(&id));
    }

    let patch = json!({"name": "mobile-2", "rate_limit_rpm": null, "budget": 9});
    let res = admin(
        &server,
        Method::PATCH,
        &format!("/admin/v1/keys/{id}"),
        Some(patch),
    )
    .await;
    let updated = json_of(res, 200).await;
    assert_eq!(updated["name"], "mobile-2");
    assert!(updated["rate_limit_rpm"].is_null());
    assert_eq!(updated["budget"], 9.0);
    assert_eq!(updated["rate_limit_rpd"], 1000);

    let res = admin(
        &server,
        Method::DELETE,
        &format!("/admin/v1/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(json_of(res, 200).await["deleted"], true);
    let res = admin(&server, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
    expect_error(res, 404, None).await;
    let error = expect_error(server.get("/v1/tasks", &value).await, 401, None).await;
    assert_eq!(error["code"], "invalid_api_key");
    let res = admin(&server, Method::POST, "/admin/v1/keys", Some(json!({}))).await;
    expect_error(res, 400, Some("name")).await;
}

#[tokio::test]
async fn a_disabled_key_is_refused_everywhere_at_once() {
    let server = TestServer::start().await;
    let (value, id, _) = server.create_key(json!({"name": "soon-off"})).await;
    let task = server.submit_image(&value, json!({})).await;
    wait_status(&server, &value, &task, &["completed"]).await;

    let res = admin(
        &server,
        Method::PATCH,
        &format!("/admin/v1/keys/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let record = json_of(res, 200).await;
    assert_eq!(record["enabled"], false);
    assert_eq!(record["disabled_reason"], "manual");
    for res in [
        server.get(&format!("/v1/tasks/{task}"), &value).await,
        server.get("/v1/tasks", &value).await,
        server.get("/v1/events", &value).await,
        server
            .post("/v1/images/generations", &value, json!({"prompt": "a"}))
            .await,
    ] {
        let error = expect_error(res, 401, None).await;
        assert!(
            error["message"].as_str().unwrap().contains("disabled"),
            "{error}"
        );
        assert_eq!(error["code"], "key_disabled");
    }

    // Enabling it again restores access.
    let res = admin(
        &server,
        Method::PATCH,
        &format!("/admin/v1/keys/{id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(json_of(res, 200).await["enabled"], true);
    let events = feed(&server, &value, "types=key.*").await;
    assert_eq!(events["data"][0]["type"], "key.disabled");
    assert_eq!(events["data"][0]["data"]["reason"], "manual");
}

#[tokio::test]
async fn an_expired_key_is_refused_saying_it_expired() {
    let server = TestServer::start().await;
    let body = json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"});
    let (value, id, _) = server.create_key(body).await;
    let error = expect_error(server.get("/v1/tasks", &value).await, 401, None).await;
    assert!(
        error["message"].as_str().unwrap().contains("expired"),
        "{error}"
    );

    // Once upkeep has disabled it for expiry, it still says why.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let res = admin(&server, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
        let record = json_of(res, 200).await;
        if record["enabled"] == false {
            assert_eq!(record["disabled_reason"], "expired");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expired key never disabled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let error = expect_error(server.get("/v1/tasks", &value).await, 401, None).await;
    assert!(
        error["message"].as_str().unwrap().contains("expired"),
        "{error}"
    );
    assert_eq!(error["code"], "key_expired");

    // Moving the expiry into the future brings it back.
    let res = admin(
        &server,
        Method::PATCH,
        &format!("/admin/v1/keys/{id}"),
        Some(json!({"expires_at": "2099-01-01T00:00:00Z"})),
    )
    .await;
    let record = json_of(res, 200).await;
    assert_eq!(record["enabled"], true, "{record}");
    assert_eq!(record["disabled_reason"], Value::Null);
    assert_eq!(server.get("/v1/tasks", &value).await.status(), 200);
}

#[tokio::test]
async fn a_model_outside_the_allowed_list_is_403() {
    let server = TestServer::start().await;
    let (value, _, _) = server
        .create_key(json!({"name": "n", "allowed_models": ["dall-e-2"]}))
        .await;
    let res = server
        .post(
            "/v1/images/generations",
            &value,
            json!({"prompt": "a", "async": true}),
        )
        .await;
    let error = expect_error(res, 403, None).await;
    assert!(
        error["message"].as_str().unwrap().contains("dall-e-3"),
        "{error}"
    );
    server
        .submit_image(&value, json!({"model": "dall-e-2"}))
        .await;
}

#[tokio::test]
async fn a_rate_limited_key_gets_429_with_retry_after_and_an_event() {
    let server = TestServer::start().await;
    let (value, id, _) = server
        .create_key(json!({"name": "slow", "rate_limit_rpm": 2}))
        .await;
    server.submit_image(&value, json!({})).await;
    server.submit_image(&value, json!({})).await;
    let res = server
        .post(
            "/v1/images/generations",
            &value,
            json!({"prompt": "a", "async": true}),
        )
        .await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let error = expect_error(res, 429, None).await;
    assert_eq!(error["type"], "rate_limit_error");

    let events = feed(&server, &value, "types=key.rate_limited").await;
    let event = &events["data"][0];
    assert_eq!(event["data"]["keyId"], id.as_str());
    assert_eq!(event["data"]["limit"], 2);
    assert_eq!(event["data"]["window"], "minute");
    assert_eq!(event["data"]["retryAfterSeconds"], retry_after);
    let list = json_of(server.get("/v1/tasks", &value).await, 200).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        2,
        "the refused submit made no task"
    );
}

#[tokio::test]
async fn work_the_budget_cannot_cover_is_refused_with_402_and_an_event() {
    let server = TestServer::start().await;
    // dall-e-3 costs $0.04 an image: one fits in $0.05, a second does not.
    let (value, id, _) = server
        .create_key(json!({"name": "cheap", "budget": 0.05}))
        .await;
    let task = server.submit_image(&value, json!({})).await;
    wait_status(&server, &value, &task, &["completed"]).await;

    let res = server
        .post(
            "/v1/images/generations",
            &value,
            json!({"prompt": "a", "async": true}),
        )
        .await;
    let error = expect_error(res, 402, None).await;
    assert_eq!(error["code"], "budget_exceeded");

    let events = feed(&server, &value, "types=key.budget.exceeded").await;
    let event = &events["data"][0];
    assert_eq!(event["data"]["keyId"], id.as_str());
    assert_eq!(event["data"]["budget"], 0.05);
    let res = admin(&server, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
    assert_eq!(json_of(res, 200).await["spend"].as_f64().unwrap(), 0.04);
}

#[tokio::test]
async fn using_up_the_budget_then_being_refused_is_one_event_a_minute() {
    let server = TestServer::start().await;
    // Exactly one $0.04 image: the spend reaches the budget (an event), and the
    // next submit is refused within the same minute (no second event).
    let (value, _, _) = server
        .create_key(json!({"name": "exact", "budget": 0.04}))
        .await;
    let task = server.submit_image(&value, json!({})).await;
    wait_status(&server, &value, &task, &["completed"]).await;
    let res = server
        .post(
            "/v1/images/generations",
            &value,
            json!({"prompt": "a", "async": true}),
        )
        .await;
    expect_error(res, 402, None).await;
    let events = feed(&server, &value, "types=key.budget.exceeded").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test]
async fn concurrent_submits_never_overspend_the_budget() {
    let server = TestServer::start().await;
    let (value, id, _) = server
        .create_key(json!({"name": "racing", "budget": 0.1}))
        .await;
    let submits = (0..12).map(|_| {
        server.post(
            "/v1/images/generations",
            &value,
            json!({"prompt": "a", "async": true}),
        )
    });
    let statuses: Vec<u16> = futures::future::join_all(submits)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert_eq!(accepted, 2, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 402),
        "{statuses:?}"
    );
    let res = admin(&server, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
    assert!(json_of(res, 200).await["spend"].as_f64().unwrap() <= 0.1);
}

#[tokio::test]
async fn a_cancelled_task_gives_its_reservation_back() {
    let server = TestServer::start_with(|c| c.local_work_ms = 2000).await;
    let (value, id, _) = server
        .create_key(json!({"name": "refund", "budget": 0.05}))
        .await;
    let task = server.submit_image(&value, json!({})).await;
    let path = format!("/admin/v1/keys/{id}");
    let record = json_of(admin(&server, Method::GET, &path, None).await, 200).await;
    assert_eq!(record["spend"].as_f64(), Some(0.04));
    let res = server
        .post(&format!("/v1/tasks/{task}/cancel"), &value, json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let record = json_of(admin(&server, Method::GET, &path, None).await, 200).await;
    assert_eq!(record["spend"].as_f64(), Some(0.0));
}

#[tokio::test]
async fn rotating_the_webhook_secret_returns_a_new_one_once() {
    let server = TestServer::start().await;
    let (_, id, old) = server.create_key(json!({"name": "hooks"})).await;
    let path = format!("/admin/v1/keys/{id}/rotate-webhook-secret");
    let rotated = json_of(admin(&server, Method::POST, &path, None).await, 200).await;
    let new = rotated["webhook_secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );
    let record = admin(&server, Method::GET, &format!("/admin/v1/keys/{id}"), None).await;
    assert!(!record.text().await.unwrap().contains(new));
    let res = admin(
        &server,
        Method::POST,
        "/admin/v1/keys/key_nope/rotate-webhook-secret",
        None,
    )
    .await;
    expect_error(res, 404, None).await;
}

#[tokio::test]
async fn admin_event_routes_refuse_bad_input() {
    let server = TestServer::start().await;
    let res = server
        .post(
            "/admin/v1/maintenance",
            MASTER_KEY,
            json!({"status": "soon"}),
        )
        .await;
    expect_error(res, 400, Some("status")).await;
    let body = json!({"status": "started", "ends_at": "tomorrow"});
    expect_error(
        server.post("/admin/v1/maintenance", MASTER_KEY, body).await,
        400,
        Some("ends_at"),
    )
    .await;
    let res = server
        .post("/admin/v1/providers/local/health", MASTER_KEY, json!({}))
        .await;
    expect_error(res, 400, Some("status")).await;
    let res = server
        .post(
            "/admin/v1/providers/nope/health",
            MASTER_KEY,
            json!({"status": "healthy"}),
        )
        .await;
    expect_error(res, 400, Some("name")).await;
    let res = server
        .post(
            "/admin/v1/maintenance",
            &server.key,
            json!({"status": "started"}),
        )
        .await;
    expect_error(res, 401, None).await;
}
