use std::time::Duration;

use serde_json::json;
use signalr::{HubOptions, ServerMessage};

use crate::common::*;

#[tokio::test]
async fn stateful_reconnect_replays_unacked_messages() {
    let s = start(HubOptions::default()).await;
    let n = negotiate(&s, "?negotiateVersion=1&useStatefulReconnect=true").await;
    assert_eq!(n["useStatefulReconnect"], true);
    let url = s.ws(&format!("?id={}", n["connectionToken"].as_str().unwrap()));
    let id = n["connectionId"].as_str().unwrap().to_owned();
    let mut c = Client::json(&url, 2).await;

    let r = c.invoke("1", "Echo", json!(["a"])).await;
    assert_eq!(r["result"], "a");
    // The server acknowledges our invocation (sequence 1) within about a second.
    let ack = loop {
        let m = c.recv().await;
        if m["type"] == 8 {
            break m;
        }
    };
    assert_eq!(ack, json!({"type":8,"sequenceId":1}));
    assert!(
        s.hub
            .send_to_connection(&id, &ServerMessage::invocation("m", vec![json!(1)]))
    );
    assert!(
        s.hub
            .send_to_connection(&id, &ServerMessage::invocation("m", vec![json!(2)]))
    );
    assert_eq!(c.recv_no_ping().await["arguments"], json!([1]));
    assert_eq!(c.recv_no_ping().await["arguments"], json!([2]));

    // The network fails: no close frame.
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        s.hub
            .send_to_connection(&id, &ServerMessage::invocation("m", vec![json!(3)]))
    );
    assert_eq!(s.hub.connection_count(), 1);

    // Reconnect with the same token: no handshake, Sequence first, then the replay.
    let mut c = Client::connect(&url).await;
    assert_eq!(c.recv().await, json!({"type":9,"sequenceId":1}));
    assert_eq!(c.recv_no_ping().await["result"], "a");
    assert_eq!(c.recv_no_ping().await["arguments"], json!([1]));
    assert_eq!(c.recv_no_ping().await["arguments"], json!([2]));
    assert_eq!(c.recv_no_ping().await["arguments"], json!([3]));

    // Our side: announce sequence 1 and resend invocation 1 (a duplicate, ignored),
    // then invocation 2 is new.
    c.send_json(json!({"type":9,"sequenceId":1})).await;
    c.send_json(json!({"type":1,"invocationId":"1","target":"Echo","arguments":["dup"]}))
        .await;
    let r = c.invoke("2", "Echo", json!(["b"])).await;
    assert_eq!(r["result"], "b");
    // After acknowledging everything, a further reconnect replays nothing.
    c.send_json(json!({"type":8,"sequenceId":5})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = Client::connect(&url).await;
    assert_eq!(c.recv().await, json!({"type":9,"sequenceId":6}));
    c.send_json(json!({"type":9,"sequenceId":3})).await;
    assert_eq!(c.invoke("3", "Echo", json!([3])).await["result"], 3);
    assert!(s.handler.disconnected.lock().is_empty());
}

#[tokio::test]
async fn stateful_connection_expires_without_reconnect() {
    let s = start(HubOptions {
        disconnect_timeout: Duration::from_millis(300),
        ..HubOptions::default()
    })
    .await;
    let n = negotiate(&s, "?negotiateVersion=1&useStatefulReconnect=true").await;
    let url = s.ws(&format!("?id={}", n["connectionToken"].as_str().unwrap()));
    let c = Client::json(&url, 2).await;
    drop(c);
    eventually("expired", || s.hub.connection_count() == 0).await;
    let err = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // Version 1 of the hub protocol does not enable stateful reconnect.
    let n = negotiate(&s, "?negotiateVersion=1&useStatefulReconnect=true").await;
    let url = s.ws(&format!("?id={}", n["connectionToken"].as_str().unwrap()));
    let c = Client::json(&url, 1).await;
    drop(c);
    eventually("v1 connection removed at once", || {
        s.hub.connection_count() == 0
    })
    .await;
}
