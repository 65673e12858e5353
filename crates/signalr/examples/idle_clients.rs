//! Load helper for measuring the server's memory per idle WebSocket connection: opens N
//! JSON-protocol connections (skipNegotiation) to a local hub, pings each every 10 s, and
//! prints `READY <n>` once all are connected. Runs until killed.
//!
//! Usage: `idle_clients <port> <count> [path]` (path defaults to `/hubs/echo`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).expect("port");
    let count: usize = args.next().and_then(|a| a.parse().ok()).expect("count");
    let path = args.next().unwrap_or_else(|| "/hubs/echo".to_owned());
    let url = format!("ws://127.0.0.1:{port}{path}");
    let connected = Arc::new(AtomicUsize::new(0));
    for spawned in 1..=count {
        let url = url.clone();
        let counter = connected.clone();
        tokio::spawn(async move {
            let (mut ws, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok(ws) => ws,
                Err(e) => {
                    eprintln!("connect failed: {e}");
                    return;
                }
            };
            if ws
                .send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}"))
                .await
                .is_err()
            {
                return;
            }
            let _ = ws.next().await;
            counter.fetch_add(1, Ordering::SeqCst);
            let mut ping = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = ping.tick() => {
                        if ws.send(Message::text("{\"type\":6}\u{1e}")).await.is_err() { return; }
                    }
                    msg = ws.next() => if !matches!(msg, Some(Ok(_))) { return; },
                }
            }
        });
        // At most 200 handshakes in flight, so the listener's backlog is not overrun.
        while connected.load(Ordering::SeqCst) + 200 < spawned {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut last = 0;
    for _ in 0..600 {
        let n = connected.load(Ordering::SeqCst);
        if n >= count || (n == last && n > 0 && n + 100 >= count) {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("READY {}", connected.load(Ordering::SeqCst));
    futures::future::pending::<()>().await;
}
