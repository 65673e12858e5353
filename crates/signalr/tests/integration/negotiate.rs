use serde_json::json;
use signalr::{HubOptions, Transports};

use crate::common::*;

#[tokio::test]
async fn negotiate_versions_and_transports() {
    let s = start(HubOptions::default()).await;
    let v1 = negotiate(&s, "?negotiateVersion=1").await;
    assert_eq!(v1["negotiateVersion"], 1);
    let id = v1["connectionId"].as_str().unwrap();
    let token = v1["connectionToken"].as_str().unwrap();
    assert_ne!(id, token);
    assert_eq!(id.len(), 22);
    assert_eq!(
        v1["availableTransports"],
        json!([
            {"transport":"WebSockets","transferFormats":["Text","Binary"]},
            {"transport":"ServerSentEvents","transferFormats":["Text"]},
            {"transport":"LongPolling","transferFormats":["Text","Binary"]}
        ])
    );
    assert!(v1.get("useStatefulReconnect").is_none());

    let v0 = negotiate(&s, "").await;
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(v0.get("connectionToken").is_none());

    let high = negotiate(&s, "?negotiateVersion=7&useStatefulReconnect=true").await;
    assert_eq!(high["negotiateVersion"], 1);
    assert_eq!(high["useStatefulReconnect"], true);

    let bad = negotiate(&s, "?negotiateVersion=abc").await;
    assert_eq!(
        bad["error"],
        "The client requested a non-integer protocol version."
    );
}

#[tokio::test]
async fn negotiate_errors_and_options() {
    let s = start(HubOptions {
        stateful_reconnect: false,
        transports: Transports {
            websockets: false,
            sse: true,
            long_polling: true,
        },
        ..HubOptions::default()
    })
    .await;
    let r = negotiate(&s, "?negotiateVersion=1&useStatefulReconnect=true").await;
    assert!(r.get("useStatefulReconnect").is_none());
    assert_eq!(r["availableTransports"].as_array().unwrap().len(), 2);
    assert_eq!(r["availableTransports"][0]["transport"], "ServerSentEvents");

    let client = reqwest::Client::new();
    let get = client
        .get(s.http("/hubs/test/negotiate"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    let denied = client
        .post(s.http("/hubs/test/negotiate?negotiateVersion=1&access_token=deny"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.text().await.unwrap(), "go away");
    let put = client.put(s.http("/hubs/test")).send().await.unwrap();
    assert_eq!(put.status(), 405);
}
