//! A hub connection belongs to the virtual key that negotiated it: another key holding
//! the connection token cannot poll, send on, close or (re)connect to it.

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

const RS: char = '\u{1e}';
const HUB: &str = "/hubs/tasks";

async fn negotiate(server: &TestServer, key: &str) -> String {
    let res = server
        .http
        .post(server.url(&format!("{HUB}/negotiate?negotiateVersion=1")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v["connectionToken"].as_str().unwrap().to_string()
}

/// A long-polling transport request (GET poll, POST send, DELETE) as `key`.
async fn transport(
    server: &TestServer,
    method: Method,
    token: &str,
    key: &str,
    body: String,
) -> (u16, String) {
    let res = server
        .http
        .request(method, server.url(&format!("{HUB}?id={token}")))
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

fn messages(body: &str) -> Vec<Value> {
    body.split(RS)
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

#[tokio::test]
async fn another_key_cannot_use_a_hub_connection() {
    let server = TestServer::start().await;
    let key_a = server.key.clone();
    let (key_b, _, _) = server.create_key(json!({"name": "b"})).await;
    let token = negotiate(&server, &key_a).await;
    let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
    let ping = format!(
        "{}{RS}",
        json!({"type":1,"invocationId":"1","target":"Ping","arguments":[]})
    );

    // Key B holds the token but is refused everywhere.
    let refused = transport(&server, Method::GET, &token, &key_b, String::new()).await;
    assert_eq!(refused.0, 403, "{refused:?}");
    assert_eq!(
        transport(&server, Method::POST, &token, &key_b, handshake.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        transport(&server, Method::DELETE, &token, &key_b, String::new())
            .await
            .0,
        403
    );
    let sse = server
        .http
        .get(server.url(&format!("{HUB}?id={token}")))
        .header("accept", "text/event-stream")
        .bearer_auth(&key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 403);
    let ws = tokio_tungstenite::connect_async(format!(
        "{}{HUB}?id={token}&access_token={key_b}",
        server.base.replacen("http", "ws", 1)
    ))
    .await;
    match ws {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }

    // Key A uses its connection normally: none of B's requests touched it.
    let (status, body) = transport(&server, Method::GET, &token, &key_a, String::new()).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(
        transport(&server, Method::POST, &token, &key_a, handshake)
            .await
            .0,
        200
    );
    let (status, body) = transport(&server, Method::GET, &token, &key_a, String::new()).await;
    assert_eq!((status, messages(&body)), (200, vec![json!({})]));

    // B's invocation is refused, A's is answered, and only to A.
    assert_eq!(
        transport(&server, Method::POST, &token, &key_b, ping.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        transport(&server, Method::POST, &token, &key_a, ping)
            .await
            .0,
        200
    );
    assert_eq!(
        transport(&server, Method::GET, &token, &key_b, String::new())
            .await
            .0,
        403
    );
    let (status, body) = transport(&server, Method::GET, &token, &key_a, String::new()).await;
    assert_eq!(status, 200);
    let completion = messages(&body)
        .into_iter()
        .find(|m| m["type"] == 3)
        .expect("completion");
    assert_eq!(completion["invocationId"], "1");
    assert_eq!(completion["result"], "pong");

    // Only A can close it.
    assert_eq!(
        transport(&server, Method::DELETE, &token, &key_b, String::new())
            .await
            .0,
        403
    );
    assert_eq!(
        transport(&server, Method::DELETE, &token, &key_a, String::new())
            .await
            .0,
        202
    );
    server.stop().await;
}
