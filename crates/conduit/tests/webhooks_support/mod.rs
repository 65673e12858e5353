//! Helpers the webhook tests share: the default key's id, emitting events
//! straight into the store, registering endpoints, reading the delivery log,
//! and checking both signature schemes of a received request.

#![allow(dead_code)]

use std::time::Duration;

use conduit::store::Change;
use conduit::webhooks::signing::{verify_conduit, verify_standard};
use serde_json::Value;

use crate::common::TestServer;
use crate::webhooks_receiver::{Received, eventually};

/// Generous for a loaded two-core machine; the happy path takes milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The default key's id.
pub fn key_id(server: &TestServer) -> String {
    let app = &server.server.as_ref().unwrap().app;
    app.keys
        .all()
        .iter()
        .find(|k| k.name == "default")
        .unwrap()
        .id
        .clone()
}

/// Emits a key event straight into the store (as the gateway itself would).
pub async fn emit(server: &TestServer, key_id: &str, event_type: &str, data: Value) -> String {
    let app = &server.server.as_ref().unwrap().app;
    let applied = app
        .store
        .apply(Change::Emit {
            key_id: Some(key_id.to_string()),
            event_type: event_type.into(),
            data,
        })
        .await
        .unwrap();
    applied.events[0].id.clone()
}

/// Registers an endpoint for `key`; returns (id, secret).
pub async fn register(server: &TestServer, key: &str, body: Value) -> (String, String) {
    let res = server.post("/v1/webhooks", key, body).await;
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    (
        v["id"].as_str().unwrap().into(),
        v["secret"].as_str().unwrap().into(),
    )
}

/// The key's deliveries of one event.
pub async fn deliveries_of(server: &TestServer, key: &str, event_id: &str) -> Vec<Value> {
    let v: Value = server
        .get(&format!("/v1/webhooks/deliveries?event_id={event_id}"), key)
        .await
        .json()
        .await
        .unwrap();
    v["data"].as_array().cloned().unwrap_or_default()
}

/// Waits until the only delivery of `event_id` has `status`.
pub async fn wait_status(server: &TestServer, key: &str, event_id: &str, status: &str) -> Value {
    eventually(
        &format!("delivery of {event_id} to become {status}"),
        PATIENCE,
        || async {
            deliveries_of(server, key, event_id)
                .await
                .into_iter()
                .find(|d| d["status"] == status)
        },
    )
    .await
}

/// Checks both signature schemes of `r` with our own verifier.
pub fn assert_signed(r: &Received, secret: &str) {
    let now = chrono::Utc::now().timestamp();
    verify_conduit(secret, r.header("x-conduit-signature"), r.body.as_bytes())
        .unwrap_or_else(|e| panic!("X-Conduit-Signature: {e}"));
    verify_standard(
        secret,
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
        r.body.as_bytes(),
        now,
        300,
    )
    .unwrap_or_else(|e| panic!("webhook-signature: {e}"));
}
