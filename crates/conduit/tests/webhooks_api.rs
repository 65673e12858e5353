//! The webhook API over HTTP: endpoint CRUD and validation, the SSRF guard at
//! submit time, and key isolation on every webhook route.

mod common;
mod webhooks_receiver;

use std::time::Duration;

use common::{MASTER_KEY, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use webhooks_receiver::{Receiver, eventually};

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .http
        .request(method, server.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn endpoints_can_be_created_read_changed_rotated_and_deleted() {
    let server = TestServer::start().await;
    let key = server.key.clone();
    let url = "http://127.0.0.1:9/hook";

    // 1. Create: 201 with the secret, every event by default.
    let (status, created) = call(
        &server,
        Method::POST,
        "/v1/webhooks",
        &key,
        Some(json!({"url": url, "description": "main"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["events"], json!(["*"]));
    assert_eq!(created["status"], "active");
    assert_eq!(created["disabled_reason"], Value::Null);

    // 2. List and get never show the secret.
    let (_, list) = call(&server, Method::GET, "/v1/webhooks", &key, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("secret").is_none());
    let (status, got) = call(
        &server,
        Method::GET,
        &format!("/v1/webhooks/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(got.get("secret").is_none());
    let (_, secret) = call(
        &server,
        Method::GET,
        &format!("/v1/webhooks/{id}/secret"),
        &key,
        None,
    )
    .await;
    assert_eq!(secret["secret"], created["secret"]);

    // 3. Patch fields, disable, re-enable.
    let patch = json!({"events": ["image.*", "video.completed"], "description": "images", "rate_limit": 20, "status": "disabled"});
    let (status, changed) = call(
        &server,
        Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        &key,
        Some(patch),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["events"], json!(["image.*", "video.completed"]));
    assert_eq!(changed["rate_limit"], 20);
    assert_eq!(changed["status"], "disabled");
    assert_eq!(changed["disabled_reason"], "manual");
    let (_, enabled) = call(
        &server,
        Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        &key,
        Some(json!({"status": "active", "rate_limit": null})),
    )
    .await;
    assert_eq!(enabled["status"], "active");
    assert_eq!(enabled["disabled_reason"], Value::Null);
    assert_eq!(enabled["rate_limit"], Value::Null);

    // A change of URL meets the same guard.
    let (status, err) = call(
        &server,
        Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        &key,
        Some(json!({"url": "http://169.254.169.254/"})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["param"].clone()),
        (400, json!("url")),
        "{err}"
    );

    // 4. Rotate.
    let (status, rotated) = call(
        &server,
        Method::POST,
        &format!("/v1/webhooks/{id}/rotate-secret"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"], created["secret"]);
    assert!(rotated["previous_secret_expires_at"].is_string());

    // 5. Delete.
    let (status, deleted) = call(
        &server,
        Method::DELETE,
        &format!("/v1/webhooks/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!((status, deleted["deleted"].clone()), (200, json!(true)));
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/v1/webhooks/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn bad_endpoint_input_is_a_400_naming_the_field() {
    let server = TestServer::start().await;
    let cases = [
        (json!({}), "url"),
        (json!({"url": 5}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "http://10.0.0.1/"}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/", "events": "image.*"}),
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": []}),
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["Image.Completed"]}),
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["image.complete"]}),
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["system.*"]}),
            "events",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "status": "paused"}),
            "status",
        ),
        (json!({"url": "http://127.0.0.1:0/"}), "url"),
        (
            json!({"url": "http://127.0.0.1:9/", "rate_limit": 0}),
            "rate_limit",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "rate_limit": "fast"}),
            "rate_limit",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "headers": {"Webhook-Signature": "x"}}),
            "headers",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "headers": {"X-A": 1}}),
            "headers",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "description": "x".repeat(600)}),
            "description",
        ),
    ];
    for (body, param) in cases {
        let (status, err) = call(
            &server,
            Method::POST,
            "/v1/webhooks",
            &server.key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["param"], param, "{body} -> {err}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
    // Admin endpoints receive system events only: a task pattern is a mistake.
    for events in [json!(["image.*"]), json!(["system.maintenence"])] {
        let body = json!({"url": "http://127.0.0.1:9/", "events": events});
        let (status, err) = call(
            &server,
            Method::POST,
            "/admin/v1/webhooks",
            MASTER_KEY,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["param"], "events", "{err}");
    }
    let (status, _) = call(
        &server,
        Method::GET,
        "/v1/webhooks/deliveries?status=lost",
        &server.key,
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &server,
        Method::GET,
        "/v1/webhooks/deliveries?limit=0",
        &server.key,
        None,
    )
    .await;
    assert_eq!(status, 400);
    server.stop().await;
}

/// URLs that must never be reachable from a webhook.
const HOSTILE: &[&str] = &[
    "http://127.0.0.1/hook",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://localhost/",
    "http://foo.localhost/",
    "http://0.0.0.0/",
    "http://10.1.2.3/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://printer.local/",
    "http://db.internal/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:pass@example.com/",
];

#[tokio::test]
async fn hostile_webhook_urls_are_refused_at_submit() {
    let server = TestServer::start_with(|raw| raw.webhook_allow_cidrs = String::new()).await;
    assert!(HOSTILE.len() >= 20);
    for url in HOSTILE {
        // 1. A task's webhook_url.
        let body = json!({"prompt": "x", "async": true, "webhook_url": url});
        let (status, err) = call(
            &server,
            Method::POST,
            "/v1/images/generations",
            &server.key,
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{url} was accepted as webhook_url: {err}");
        assert_eq!(err["error"]["param"], "webhook_url", "{url}: {err}");

        // 2. A registered endpoint.
        let (status, err) = call(
            &server,
            Method::POST,
            "/v1/webhooks",
            &server.key,
            Some(json!({"url": url})),
        )
        .await;
        assert_eq!(status, 400, "{url} was accepted as an endpoint: {err}");
        assert_eq!(err["error"]["param"], "url", "{url}: {err}");
    }
    let (_, tasks) = call(&server, Method::GET, "/v1/tasks", &server.key, None).await;
    assert_eq!(
        tasks["data"].as_array().map(Vec::len),
        Some(0),
        "no task may be half-created"
    );
    server.stop().await;
}

#[tokio::test]
async fn another_keys_webhook_records_answer_404_like_unknown_ids() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (other, _, _) = server.create_key(json!({"name": "other"})).await;
    let owner = server.key.clone();

    // 1. The owner's endpoint, task, event and delivery.
    let (_, endpoint) = call(
        &server,
        Method::POST,
        "/v1/webhooks",
        &owner,
        Some(json!({"url": receiver.url("/ep")})),
    )
    .await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    let task_id = server
        .submit_image(&owner, json!({"webhook_url": receiver.url("/task")}))
        .await;
    server.wait_done(&owner, &task_id).await;
    let delivery = eventually(
        "a delivery in the owner's log",
        Duration::from_secs(20),
        || async {
            let (_, list) = call(
                &server,
                Method::GET,
                &format!("/v1/webhooks/deliveries?task_id={task_id}"),
                &owner,
                None,
            )
            .await;
            list["data"].as_array().and_then(|d| d.first().cloned())
        },
    )
    .await;
    let delivery_id = delivery["id"].as_str().unwrap().to_string();
    let event_id = delivery["event_id"].as_str().unwrap().to_string();

    // 2. Every route, for another key: the same 404 as an unknown id.
    let routes = [
        (Method::GET, "/v1/webhooks/{ep}"),
        (Method::PATCH, "/v1/webhooks/{ep}"),
        (Method::DELETE, "/v1/webhooks/{ep}"),
        (Method::GET, "/v1/webhooks/{ep}/secret"),
        (Method::POST, "/v1/webhooks/{ep}/rotate-secret"),
        (Method::GET, "/v1/webhooks/deliveries/{dlv}"),
        (Method::GET, "/v1/webhooks/deliveries/{dlv}/attempts"),
        (Method::POST, "/v1/webhooks/deliveries/{dlv}/retry"),
        (Method::POST, "/v1/events/{evt}/redeliver"),
    ];
    for (method, route) in routes {
        let theirs = route
            .replace("{ep}", &endpoint_id)
            .replace("{dlv}", &delivery_id)
            .replace("{evt}", &event_id);
        let unknown = route
            .replace("{ep}", "ep_unknown")
            .replace("{dlv}", "dlv_unknown")
            .replace("{evt}", "evt_unknown");
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let (status, err) = call(&server, method.clone(), &theirs, &other, body.clone()).await;
        let (unknown_status, unknown_err) =
            call(&server, method.clone(), &unknown, &other, body).await;
        assert_eq!(status, 404, "{method} {theirs}: {err}");
        assert_eq!(
            (status, &err),
            (unknown_status, &unknown_err),
            "{method} {route}"
        );
    }

    // 3. Lists show nothing of the owner's, whatever the filter.
    let (_, list) = call(&server, Method::GET, "/v1/webhooks", &other, None).await;
    assert_eq!(list["data"], json!([]));
    for query in [
        "",
        "?task_id={task}",
        "?event_id={evt}",
        "?endpoint_id={ep}",
    ] {
        let query = query
            .replace("{task}", &task_id)
            .replace("{evt}", &event_id)
            .replace("{ep}", &endpoint_id);
        let (_, list) = call(
            &server,
            Method::GET,
            &format!("/v1/webhooks/deliveries{query}"),
            &other,
            None,
        )
        .await;
        assert_eq!(list["data"], json!([]), "{query}");
    }

    // 4. Admin and key scopes do not see each other's endpoints.
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/admin/v1/webhooks/{endpoint_id}"),
        MASTER_KEY,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, admin_ep) = call(
        &server,
        Method::POST,
        "/admin/v1/webhooks",
        MASTER_KEY,
        Some(json!({"url": receiver.url("/ops")})),
    )
    .await;
    let admin_id = admin_ep["id"].as_str().unwrap();
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/v1/webhooks/{admin_id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, Method::GET, "/admin/v1/webhooks", &owner, None).await;
    assert_eq!(status, 401);

    // 5. The owner still has everything.
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/v1/webhooks/{endpoint_id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200);
    server.stop().await;
}
