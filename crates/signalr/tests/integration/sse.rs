use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use signalr::HubOptions;

use crate::common::*;

struct Sse {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    /// The next event's data (lines joined with \n).
    async fn event(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.find("\r\n\r\n") {
                let event: String = self.buf.drain(..end + 4).collect();
                let data: Vec<&str> = event
                    .split("\r\n")
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    return data.join("\n");
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
                .await
                .expect("sse data")
                .expect("stream open")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn post(s: &Server, token: &str, body: String) -> u16 {
    reqwest::Client::new()
        .post(s.http(&format!("/hubs/test?id={token}")))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sse_transport() {
    let s = start(HubOptions {
        keep_alive: Duration::from_millis(300),
        ..HubOptions::default()
    })
    .await;
    let n = negotiate(&s, "?negotiateVersion=1").await;
    let token = n["connectionToken"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let resp = client
        .get(s.http(&format!("/hubs/test?id={token}")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = Sse {
        stream: Box::pin(resp.bytes_stream()),
        buf: String::new(),
    };

    // A second stream is a conflict; long polling the same connection is a transport change.
    let second = client
        .get(s.http(&format!("/hubs/test?id={token}")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    let poll = client
        .get(s.http(&format!("/hubs/test?id={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 400);

    assert_eq!(
        post(
            &s,
            &token,
            format!("{{\"protocol\":\"json\",\"version\":1}}{RS}")
        )
        .await,
        200
    );
    assert_eq!(sse.event().await, format!("{{}}{RS}"));
    let inv = format!(
        "{{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"a\\nb\"]}}{RS}"
    );
    assert_eq!(post(&s, &token, inv).await, 200);
    let event = loop {
        let e = sse.event().await;
        if !e.contains("\"type\":6") {
            break e;
        }
    };
    let v: serde_json::Value = serde_json::from_str(event.trim_end_matches(RS)).unwrap();
    assert_eq!(v, json!({"type":3,"invocationId":"1","result":"a\nb"}));
    // Keep-alive pings flow over SSE.
    let ping = sse.event().await;
    assert_eq!(ping, format!("{{\"type\":6}}{RS}"));
    assert_eq!(
        s.hub.connections()[0].transport().as_str(),
        "ServerSentEvents"
    );

    // DELETE is only for long polling.
    let del = client
        .delete(s.http(&format!("/hubs/test?id={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 400);
    // Dropping the stream ends the connection.
    drop(sse);
    eventually("sse connection removed", || s.hub.connection_count() == 0).await;
    assert_eq!(post(&s, &token, "x".into()).await, 404);
}

#[tokio::test]
async fn sse_rejects_messagepack() {
    let s = start(HubOptions::default()).await;
    let n = negotiate(&s, "?negotiateVersion=1").await;
    let token = n["connectionToken"].as_str().unwrap().to_owned();
    let resp = reqwest::Client::new()
        .get(s.http(&format!("/hubs/test?id={token}")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut sse = Sse {
        stream: Box::pin(resp.bytes_stream()),
        buf: String::new(),
    };
    post(
        &s,
        &token,
        format!("{{\"protocol\":\"messagepack\",\"version\":1}}{RS}"),
    )
    .await;
    assert_eq!(
        sse.event().await,
        format!(
            "{{\"error\":\"Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.\"}}{RS}"
        )
    );
}
