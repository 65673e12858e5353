//! Integration tests: a real axum server on 127.0.0.1 and raw protocol clients.

mod common;
mod identity;
mod long_polling;
mod metrics;
mod negotiate;
mod sse;
mod stateful;
mod websocket;
