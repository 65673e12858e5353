use std::time::{Duration, Instant};

use serde_json::json;
use signalr::{HubOptions, ServerMessage};

use crate::common::*;

struct Lp {
    client: reqwest::Client,
    url: String,
}

impl Lp {
    async fn poll(&self) -> (u16, String) {
        let r = self.client.get(&self.url).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }
    async fn post(&self, body: String) -> u16 {
        self.client
            .post(&self.url)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
    /// Polls until a non-ping message batch arrives.
    async fn messages(&self) -> Vec<serde_json::Value> {
        loop {
            let (status, body) = self.poll().await;
            assert_eq!(status, 200);
            let msgs: Vec<serde_json::Value> = body
                .split(RS)
                .filter(|p| !p.is_empty())
                .map(|p| serde_json::from_str(p).unwrap())
                .collect();
            if !msgs.is_empty() {
                return msgs;
            }
        }
    }
}

#[tokio::test]
async fn long_polling_transport() {
    let s = start(HubOptions {
        long_poll_timeout: Duration::from_millis(400),
        ..HubOptions::default()
    })
    .await;
    let n = negotiate(&s, "?negotiateVersion=1").await;
    let token = n["connectionToken"].as_str().unwrap();
    let lp = Lp {
        client: reqwest::Client::new(),
        url: s.http(&format!("/hubs/test?id={token}")),
    };

    // First poll returns at once, empty.
    let started = Instant::now();
    assert_eq!(lp.poll().await, (200, String::new()));
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(
        lp.post(format!("{{\"protocol\":\"json\",\"version\":1}}{RS}"))
            .await,
        200
    );
    assert_eq!(lp.messages().await, vec![json!({})]);
    assert_eq!(
        lp.post(format!(
            "{{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[5]}}{RS}"
        ))
        .await,
        200
    );
    assert_eq!(
        lp.messages().await,
        vec![json!({"type":3,"invocationId":"1","result":5})]
    );

    // No pings over long polling; an idle poll ends after the poll timeout with 200 empty.
    let started = Instant::now();
    assert_eq!(lp.poll().await, (200, String::new()));
    assert!(started.elapsed() >= Duration::from_millis(350));

    // Server-to-client messages are batched into the next poll.
    let id = s.hub.connections()[0].id().to_owned();
    assert_eq!(s.hub.connections()[0].transport().as_str(), "LongPolling");
    s.hub
        .send_to_connection(&id, &ServerMessage::invocation("a", vec![]));
    s.hub
        .send_to_connection(&id, &ServerMessage::invocation("b", vec![]));
    let msgs = lp.messages().await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["target"], "b");

    // A second poll replaces the first, which ends with 204.
    let first = tokio::spawn({
        let (client, url) = (lp.client.clone(), lp.url.clone());
        async move { client.get(&url).send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn({
        let (client, url) = (lp.client.clone(), lp.url.clone());
        async move { client.get(&url).send().await.unwrap().status().as_u16() }
    });
    assert_eq!(first.await.unwrap(), 204);
    assert_eq!(second.await.unwrap(), 200);

    // DELETE ends the connection: 202, a waiting poll gets 204, later requests 404.
    let waiting = tokio::spawn({
        let (client, url) = (lp.client.clone(), lp.url.clone());
        async move { client.get(&url).send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let del = lp.client.delete(&lp.url).send().await.unwrap();
    assert_eq!(del.status(), 202);
    assert_eq!(waiting.await.unwrap(), 204);
    assert_eq!(lp.poll().await.0, 404);
    assert_eq!(s.hub.connection_count(), 0);
    eventually("on_disconnected", || {
        s.handler.disconnected.lock().contains(&id)
    })
    .await;
}

#[tokio::test]
async fn long_polling_errors_and_close() {
    let s = start(HubOptions {
        long_poll_timeout: Duration::from_millis(400),
        ..HubOptions::default()
    })
    .await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(s.http("/hubs/test"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        client
            .get(s.http("/hubs/test?id=nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .post(s.http("/hubs/test?id=nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .delete(s.http("/hubs/test"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    // MessagePack over long polling, then a server close: Close message, then 204.
    let n = negotiate(&s, "?negotiateVersion=1").await;
    let token = n["connectionToken"].as_str().unwrap();
    let lp = Lp {
        client: client.clone(),
        url: s.http(&format!("/hubs/test?id={token}")),
    };
    assert_eq!(lp.poll().await.0, 200);
    assert_eq!(
        lp.post(format!(
            "{{\"protocol\":\"messagepack\",\"version\":1}}{RS}"
        ))
        .await,
        200
    );
    let r = client.get(&lp.url).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"{}\x1e");
    let id = s.hub.connections()[0].id().to_owned();
    assert_eq!(s.hub.connections()[0].protocol(), "messagepack");
    s.hub.close_connection(&id, None, true);
    let r = client.get(&lp.url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        [0x04, 0x93, 0x07, 0xc0, 0xc3]
    );
    assert_eq!(lp.poll().await.0, 204);
    assert_eq!(s.hub.connection_count(), 0);
}

#[tokio::test]
async fn inactive_long_polling_connection_expires() {
    let s = start(HubOptions {
        disconnect_timeout: Duration::from_millis(300),
        ..HubOptions::default()
    })
    .await;
    // Negotiated but never connected.
    let n = negotiate(&s, "?negotiateVersion=1").await;
    let token = n["connectionToken"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = reqwest::get(s.http(&format!("/hubs/test?id={token}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
