//! A connection belongs to the principal that created it: requests for it authenticated as
//! someone else are refused with 403 and leave it untouched.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use signalr::{HubOptions, ServerMessage};
use tokio_tungstenite::tungstenite;

use crate::common::*;

async fn negotiate_as(s: &Server, user: &str, query: &str) -> String {
    let resp = reqwest::Client::new()
        .post(s.http(&format!("/hubs/test/negotiate{query}")))
        .bearer_auth(user)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let n: serde_json::Value = resp.json().await.unwrap();
    n["connectionToken"].as_str().unwrap().to_owned()
}

async fn request(
    s: &Server,
    method: reqwest::Method,
    token: &str,
    user: &str,
    body: &str,
) -> (u16, String) {
    let r = reqwest::Client::new()
        .request(method, s.http(&format!("/hubs/test?id={token}")))
        .bearer_auth(user)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Status of a WebSocket upgrade (101 when accepted; the socket is returned).
async fn ws_status(url: &str) -> (u16, Option<Client>) {
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, resp)) => (resp.status().as_u16(), Some(Client::from_ws(ws))),
        Err(tungstenite::Error::Http(resp)) => (resp.status().as_u16(), None),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

#[tokio::test]
async fn long_polling_refuses_another_principal() {
    let s = start(HubOptions {
        long_poll_timeout: Duration::from_millis(300),
        ..HubOptions::default()
    })
    .await;
    let token = negotiate_as(&s, "alice", "?negotiateVersion=1").await;
    let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
    use reqwest::Method;

    // Before the owner's first poll: refused, and the connection stays untouched.
    for user in ["bob", "user"] {
        let (status, body) = request(&s, Method::GET, &token, user, "").await;
        assert_eq!(
            (status, body.as_str()),
            (403, "The connection belongs to another user.")
        );
    }
    // Bob's refused polls did not activate it: the owner's first poll is the first.
    assert_eq!(request(&s, Method::GET, &token, "alice", "").await.0, 200);

    // Send, poll and delete as bob: all refused.
    assert_eq!(
        request(&s, Method::POST, &token, "bob", &handshake).await.0,
        403
    );
    assert_eq!(request(&s, Method::GET, &token, "bob", "").await.0, 403);
    assert_eq!(request(&s, Method::DELETE, &token, "bob", "").await.0, 403);
    let no_token = reqwest::Client::new()
        .delete(s.http(&format!("/hubs/test?id={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    assert_eq!(s.hub.connection_count(), 0, "no handshake happened");

    // Alice's connection works and bob's messages never reached it.
    assert_eq!(
        request(&s, Method::POST, &token, "alice", &handshake)
            .await
            .0,
        200
    );
    let (status, body) = request(&s, Method::GET, &token, "alice", "").await;
    assert_eq!((status, body), (200, format!("{{}}{RS}")));
    let invoke = json!({"type":1,"invocationId":"1","target":"whoami","arguments":[]});
    assert_eq!(
        request(&s, Method::POST, &token, "bob", &format!("{invoke}{RS}"))
            .await
            .0,
        403
    );
    assert_eq!(
        request(&s, Method::POST, &token, "alice", &format!("{invoke}{RS}"))
            .await
            .0,
        200
    );
    let (status, body) = request(&s, Method::GET, &token, "alice", "").await;
    assert_eq!(status, 200);
    let msgs: Vec<serde_json::Value> = body
        .split(RS)
        .filter(|p| !p.is_empty())
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["invocationId"], "1");
    assert_eq!(msgs[0]["result"]["principal"], "alice");

    // Messages queued for alice are not handed to bob's poll.
    s.hub.send_to_all(&ServerMessage::invocation(
        "secret",
        vec![json!("for alice")],
    ));
    assert_eq!(request(&s, Method::GET, &token, "bob", "").await.0, 403);
    let (status, body) = request(&s, Method::GET, &token, "alice", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("for alice"), "{body}");

    assert_eq!(request(&s, Method::DELETE, &token, "bob", "").await.0, 403);
    assert_eq!(s.hub.connection_count(), 1);
    assert_eq!(
        request(&s, Method::DELETE, &token, "alice", "").await.0,
        202
    );
}

#[tokio::test]
async fn sse_refuses_another_principal() {
    let s = start(HubOptions::default()).await;
    let token = negotiate_as(&s, "alice", "?negotiateVersion=1").await;
    let sse = |user: &'static str| {
        reqwest::Client::new()
            .get(s.http(&format!("/hubs/test?id={token}")))
            .header("accept", "text/event-stream")
            .bearer_auth(user)
            .send()
    };
    let r = sse("bob").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        "The connection belongs to another user."
    );
    // A poll by bob would have fixed the transport to long polling; it is refused instead.
    assert_eq!(
        request(&s, reqwest::Method::GET, &token, "bob", "").await.0,
        403
    );

    let r = sse("alice").await.unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b":\r\n");
    // Sends for the stream: bob refused, alice accepted.
    let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
    assert_eq!(
        request(&s, reqwest::Method::POST, &token, "bob", &handshake)
            .await
            .0,
        403
    );
    assert_eq!(
        request(&s, reqwest::Method::POST, &token, "alice", &handshake)
            .await
            .0,
        200
    );
    // A second SSE stream by bob is refused for his identity, not as a conflict.
    assert_eq!(sse("bob").await.unwrap().status(), 403);
    assert_eq!(sse("alice").await.unwrap().status(), 409);
}

#[tokio::test]
async fn websocket_refuses_another_principal() {
    let s = start(HubOptions::default()).await;
    let token = negotiate_as(&s, "alice", "?negotiateVersion=1").await;
    let url = |user: &str| s.ws(&format!("?id={token}&access_token={user}"));
    assert_eq!(ws_status(&url("bob")).await.0, 403);
    let (status, c) = ws_status(&url("alice")).await;
    assert_eq!(status, 101);
    let mut c = c.unwrap();
    c.send(&format!("{{\"protocol\":\"json\",\"version\":1}}{RS}"))
        .await;
    assert_eq!(c.recv().await, json!({}));
    let r = c.invoke("1", "whoami", json!([])).await;
    assert_eq!(r["result"]["principal"], "alice");

    // skipNegotiation: the upgrading principal owns the connection (nothing to compare).
    let mut c = Client::json(&s.ws("?access_token=carol"), 1).await;
    let r = c.invoke("1", "whoami", json!([])).await;
    assert_eq!(r["result"]["principal"], "carol");
}

#[tokio::test]
async fn stateful_reconnect_refuses_another_principal() {
    let s = start(HubOptions::default()).await;
    let token = negotiate_as(&s, "alice", "?negotiateVersion=1&useStatefulReconnect=true").await;
    let url = |user: &str| s.ws(&format!("?id={token}&access_token={user}"));
    let mut c = Client::json(&url("alice"), 2).await;
    assert_eq!(c.invoke("1", "Echo", json!(["a"])).await["result"], "a");

    // The socket drops (no close frame); the connection waits for a reconnect.
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.hub.connection_count(), 1);
    s.hub.send_to_all(&ServerMessage::invocation(
        "secret",
        vec![json!("for alice")],
    ));

    // Bob holding the token cannot resume it (and gets no replay).
    assert_eq!(ws_status(&url("bob")).await.0, 403);
    assert_eq!(ws_status(&s.ws(&format!("?id={token}"))).await.0, 403);

    // Alice can: Sequence, then the replay including the message sent meanwhile.
    let (status, c) = ws_status(&url("alice")).await;
    assert_eq!(status, 101);
    let mut c = c.unwrap();
    assert_eq!(c.recv().await["type"], 9);
    assert_eq!(c.recv_no_ping().await["result"], "a");
    assert_eq!(c.recv_no_ping().await["arguments"], json!(["for alice"]));
    assert!(s.handler.disconnected.lock().is_empty());
}
