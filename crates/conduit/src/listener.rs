//! The HTTP listener: hyper's connection builder with a header-read timeout.
//!
//! axum's own `serve` gives a client unlimited time to send its request headers,
//! so a client that opens connections and never finishes them would hold file
//! descriptors forever. This accept loop serves the same router over HTTP/1.1
//! (with upgrades, for WebSockets) and HTTP/2, and closes a connection whose
//! request headers do not arrive within `header_read_timeout`
//! (`CONDUIT_HEADER_READ_TIMEOUT_MS`, default 30 s). On shutdown it
//! stops accepting, lets in-flight requests finish (up to [`DRAIN_TIMEOUT`]),
//! and returns.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Longest wait for in-flight requests once shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `stop` is cancelled and requests drain.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    loop {
        // 1. Accept, or stop accepting.
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(cause = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);

        // 2. Serve the connection, watched for graceful shutdown.
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|request: http::Request<Incoming>| request.map(Body::new)),
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(cause = %err, "connection ended with an error");
            }
        });
    }

    // 3. Drain.
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open when the drain time ran out");
    }
    Ok(())
}
