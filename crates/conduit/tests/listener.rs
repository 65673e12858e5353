//! The HTTP listener closes connections whose request headers never arrive, and
//! still serves ordinary requests and WebSocket upgrades.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = TestServer::start_with(|c| c.header_read_timeout_ms = 500).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the server closes the connection instead of waiting forever");
    // Closed (0 bytes) or answered 408; either way not held open.
    if let Ok(n) = read
        && n > 0
    {
        assert!(
            String::from_utf8_lossy(&buf[..n]).contains("408"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    // A complete request on a fresh connection is still served.
    let res = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    server.stop().await;
}
