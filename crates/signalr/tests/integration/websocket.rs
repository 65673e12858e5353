use std::time::Duration;

use futures::SinkExt;
use serde_json::json;
use signalr::{HubOptions, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[tokio::test]
async fn json_invocations_and_errors() {
    let s = start(HubOptions::default()).await;
    let n = negotiate(&s, "?negotiateVersion=1").await;
    let token = n["connectionToken"].as_str().unwrap();
    let mut c = Client::json(&s.ws(&format!("?id={token}")), 1).await;

    let r = c.invoke("1", "Echo", json!([{"a": [1, 2]}])).await;
    assert_eq!(r, json!({"type":3,"invocationId":"1","result":{"a":[1,2]}}));
    // Null result → completion without result.
    let r = c.invoke("2", "echo", json!([null])).await;
    assert_eq!(r, json!({"type":3,"invocationId":"2"}));
    let r = c.invoke("3", "Throw", json!(["nope!"])).await;
    assert_eq!(r["error"], "nope!");
    let r = c.invoke("4", "Crash", json!([])).await;
    assert_eq!(
        r["error"],
        "An unexpected error occurred invoking 'Crash' on the server."
    );
    let r = c.invoke("5", "Panic", json!([])).await;
    assert_eq!(
        r["error"],
        "An unexpected error occurred invoking 'Panic' on the server."
    );
    let r = c.invoke("6", "missing", json!([])).await;
    assert_eq!(r["error"], "Unknown hub method 'missing'");
    // Non-blocking invocation gets no completion: the next message is the echo's.
    c.send_json(json!({"type":1,"target":"Echo","arguments":[1]}))
        .await;
    let r = c.invoke("7", "Echo", json!([7])).await;
    assert_eq!(r["result"], 7);
    // Streaming invocations are answered with an error completion.
    c.send_json(json!({"type":4,"invocationId":"8","target":"Echo","arguments":[]}))
        .await;
    let r = c.recv_no_ping().await;
    assert_eq!(r["invocationId"], "8");
    assert!(r["error"].as_str().unwrap().contains("streaming"));
    // Pings, cancels and unknown message types are ignored.
    c.send(&format!(
        "{{\"type\":6}}{RS}{{\"type\":5,\"invocationId\":\"x\"}}{RS}{{\"type\":42}}{RS}"
    ))
    .await;
    // Two messages in one frame, and a message split across frames.
    c.send(&format!(
        "{{\"type\":1,\"invocationId\":\"9\",\"target\":\"Echo\",\"arguments\":[9]}}{RS}{{\"type\":1,\"invocationId\":\"10\",\"tar"
    ))
    .await;
    c.send(&format!("get\":\"Echo\",\"arguments\":[10]}}{RS}"))
        .await;
    assert_eq!(c.recv_no_ping().await["result"], 9);
    assert_eq!(c.recv_no_ping().await["result"], 10);
    // Principal and connection info.
    let r = c.invoke("11", "WhoAmI", json!([])).await;
    assert_eq!(r["result"]["id"], n["connectionId"]);
    assert_eq!(r["result"]["transport"], "WebSockets");
    assert_eq!(r["result"]["protocol"], "json");
    assert_eq!(r["result"]["principal"], "user");
}

#[tokio::test]
async fn skip_negotiation_and_status_codes() {
    let s = start(HubOptions::default()).await;
    let mut c = Client::json(&s.ws(""), 1).await;
    assert_eq!(c.invoke("1", "Echo", json!(["x"])).await["result"], "x");
    assert_eq!(s.hub.connection_count(), 1);

    // Unknown id → 404; second socket for a live connection → 409.
    let err = tokio_tungstenite::connect_async(s.ws("?id=nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let n = negotiate(&s, "?negotiateVersion=1").await;
    let url = s.ws(&format!("?id={}", n["connectionToken"].as_str().unwrap()));
    let _first = Client::json(&url, 1).await;
    let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    // The public id is not a token.
    let err = tokio_tungstenite::connect_async(
        s.ws(&format!("?id={}", n["connectionId"].as_str().unwrap())),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    // Unauthenticated upgrade.
    let err = tokio_tungstenite::connect_async(s.ws("?access_token=deny"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // POST to a WebSocket connection → 405.
    let resp = reqwest::Client::new()
        .post(s.http(&format!(
            "/hubs/test?id={}",
            n["connectionToken"].as_str().unwrap()
        )))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn handshake_errors() {
    let s = start(HubOptions::default()).await;
    for (request, error) in [
        (
            "{\"protocol\":\"xml\",\"version\":1}",
            "The protocol 'xml' is not supported.",
        ),
        (
            "{\"protocol\":\"json\",\"version\":3}",
            "The server does not support version 3 of the 'json' protocol.",
        ),
        (
            "not json",
            "An unexpected error occurred during connection handshake.",
        ),
    ] {
        let mut c = Client::connect(&s.ws("")).await;
        c.send(&format!("{request}{RS}")).await;
        assert_eq!(c.recv().await, json!({"error": error}));
        assert!(c.closed_within(Duration::from_secs(3)).await);
    }
    eventually("connections removed", || s.hub.connection_count() == 0).await;
}

#[tokio::test]
async fn messagepack_over_websockets() {
    use signalr::protocol::{HubMessage, HubProtocol, MessagePackProtocol};
    let s = start(HubOptions::default()).await;
    let mut c = Client::connect(&s.ws("")).await;
    c.send(&format!(
        "{{\"protocol\":\"messagepack\",\"version\":1}}{RS}"
    ))
    .await;
    let frame = loop {
        c.try_recv(Duration::from_millis(100)).await;
        if let Some(f) = c.binary_frames.pop() {
            break f;
        }
    };
    assert_eq!(frame, b"{}\x1e");
    let mut out = Vec::new();
    MessagePackProtocol.write_message(
        &HubMessage::Invocation {
            headers: Default::default(),
            invocation_id: Some("1".into()),
            target: "Echo".into(),
            arguments: vec![json!({"n": 5, "s": "x"})],
            stream_ids: vec![],
        },
        &mut out,
    );
    c.ws.send(Message::binary(out)).await.unwrap();
    let completion = loop {
        c.try_recv(Duration::from_millis(100)).await;
        if let Some(f) = c.binary_frames.pop() {
            let (m, _) = MessagePackProtocol
                .parse_message(&f, 1 << 20)
                .unwrap()
                .unwrap();
            if m != HubMessage::Ping {
                break m;
            }
        }
    };
    assert_eq!(
        completion,
        HubMessage::completion(
            "1",
            signalr::protocol::CompletionResult::Value(json!({"n": 5, "s": "x"}))
        )
    );
}

#[tokio::test]
async fn groups_and_broadcast() {
    let s = start(HubOptions::default()).await;
    let mut a = Client::json(&s.ws(""), 1).await;
    let mut b = Client::json(&s.ws(""), 1).await;
    a.invoke("1", "JoinGroup", json!(["g"])).await;
    let r = b
        .invoke("1", "SendToGroup", json!(["g", "hello", {"x": 1}]))
        .await;
    assert_eq!(r["result"], 1);
    assert_eq!(
        a.recv_no_ping().await,
        json!({"type":1,"target":"hello","arguments":[{"x":1}]})
    );
    let r = b.invoke("2", "Broadcast", json!(["all", 2])).await;
    assert_eq!(r["result"], 2);
    assert_eq!(a.recv_no_ping().await["target"], "all");
    assert_eq!(b.recv_no_ping().await["target"], "all");

    let ids: Vec<String> = s
        .hub
        .connections()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    let a_id = ids
        .iter()
        .find(|id| !s.hub.groups_of(id).is_empty())
        .unwrap()
        .clone();
    assert_eq!(s.hub.groups_of(&a_id), vec!["g"]);
    s.hub.add_to_group(&a_id, "h");
    let msg = ServerMessage::invocation("dedup", vec![]);
    assert_eq!(s.hub.send_to_groups(&["g", "h", "none"], &msg), 1);
    assert_eq!(a.recv_no_ping().await["target"], "dedup");
    assert!(
        a.try_recv(Duration::from_millis(200))
            .await
            .is_none_or(|m| m["type"] == 6)
    );
    s.hub.remove_from_group(&a_id, "g");
    assert_eq!(s.hub.send_to_group("g", &msg), 0);
    assert!(s.hub.send_to_connection(&a_id, &msg));
    assert!(!s.hub.send_to_connection("nope", &msg));

    // Closing a connection sends Close and removes it from its groups.
    s.hub.close_connection(&a_id, Some("bye"), false);
    assert_eq!(a.recv_no_ping().await["target"], "dedup");
    assert_eq!(a.recv_no_ping().await, json!({"type":7,"error":"bye"}));
    assert!(a.closed_within(Duration::from_secs(3)).await);
    eventually("a removed", || s.hub.connection_count() == 1).await;
    assert_eq!(s.hub.send_to_group("h", &msg), 0);
    eventually("on_disconnected", || {
        s.handler.disconnected.lock().contains(&a_id)
    })
    .await;
}

#[tokio::test]
async fn keep_alive_and_timeouts() {
    let s = start(HubOptions {
        keep_alive: Duration::from_millis(200),
        client_timeout: Duration::from_millis(800),
        handshake_timeout: Duration::from_millis(300),
        ..HubOptions::default()
    })
    .await;
    // Handshake timeout.
    let mut c = Client::connect(&s.ws("")).await;
    assert_eq!(c.recv().await, json!({"error":"Handshake was canceled."}));
    assert!(c.closed_within(Duration::from_secs(3)).await);

    // Keep-alive pings while idle; the client timeout closes a silent client.
    let mut c = Client::json(&s.ws(""), 1).await;
    let started = tokio::time::Instant::now();
    assert_eq!(c.recv().await, json!({"type":6}));
    assert!(started.elapsed() >= Duration::from_millis(150));
    let close = loop {
        let m = c.recv().await;
        if m["type"] == 7 {
            break m;
        }
    };
    assert!(close["error"].as_str().unwrap().contains("timeout"));
    assert!(c.closed_within(Duration::from_secs(3)).await);

    // A client that keeps sending stays connected past the timeout.
    let mut c = Client::json(&s.ws(""), 1).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.send_json(json!({"type":6})).await;
    }
    assert_eq!(c.invoke("1", "Echo", json!([1])).await["result"], 1);
}

#[tokio::test]
async fn oversized_message_closes_with_error() {
    let s = start(HubOptions::default()).await;
    let mut c = Client::json(&s.ws(""), 1).await;
    let big = "x".repeat(40 * 1024);
    c.send_json(json!({"type":1,"target":"Echo","arguments":[big]}))
        .await;
    assert_eq!(
        c.recv_no_ping().await,
        json!({"type":7,"error":"Connection closed with an error."})
    );
    assert!(c.closed_within(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn slow_consumer_is_dropped_without_blocking() {
    let s = start(HubOptions {
        outbound_queue: 16,
        ..HubOptions::default()
    })
    .await;
    let mut c = Client::json(&s.ws(""), 1).await;
    let id = s.hub.connections()[0].id().to_owned();
    let payload = "y".repeat(64 * 1024);
    let started = std::time::Instant::now();
    let mut refused = false;
    for i in 0..2000 {
        if !s.hub.send_to_connection(
            &id,
            &ServerMessage::invocation("big", vec![json!(i), json!(payload)]),
        ) {
            refused = true;
            break;
        }
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert!(refused, "queue never overflowed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "sender was blocked"
    );
    eventually("slow consumer removed", || s.hub.connection_count() == 0).await;
    drop(c.ws.close(None).await);
}

#[tokio::test]
async fn shutdown_closes_everyone_with_reconnect_allowed() {
    let s = start(HubOptions::default()).await;
    let mut c = Client::json(&s.ws(""), 1).await;
    s.hub.shutdown().await;
    assert_eq!(
        c.recv_no_ping().await,
        json!({"type":7,"allowReconnect":true})
    );
    assert!(c.closed_within(Duration::from_secs(3)).await);
    assert_eq!(s.hub.connection_count(), 0);
    let err = tokio_tungstenite::connect_async(s.ws(""))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn on_connected_can_refuse_a_connection() {
    let s = start(HubOptions::default()).await;
    let mut c = Client::connect(&s.ws("?access_token=refused")).await;
    // The handshake and an invocation in one frame: the invocation is never dispatched.
    c.send(&format!(
        "{{\"protocol\":\"json\",\"version\":1}}{RS}{}{RS}",
        json!({"type":1,"invocationId":"1","target":"Echo","arguments":[1]})
    ))
    .await;
    assert_eq!(c.recv().await, json!({}));
    assert_eq!(
        c.recv().await,
        json!({"type":7,"error":"You were refused."})
    );
    assert!(c.closed_within(Duration::from_secs(5)).await);
    eventually("the connection to go", || {
        s.hub.connection_count() == 0 && s.handler.disconnected.lock().len() == 1
    })
    .await;
    assert!(s.handler.invoked.lock().is_empty());

    // Anyone else is served as usual.
    let mut ok = Client::json(&s.ws("?access_token=alice"), 1).await;
    assert_eq!(ok.invoke("2", "Echo", json!([2])).await["result"], 2);
}
