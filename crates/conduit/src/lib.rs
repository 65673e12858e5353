//! Conduit: a gateway that runs asynchronous AI media jobs and tells each client
//! what happened to them, by webhooks, SignalR or polling.
//!
//! The spine is a durable event log: every change of a task, a key or the system
//! is committed together with its event (and the event's webhook deliveries),
//! and only then fanned out to the channels. See the README for the design.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod events;
pub mod hubs;
pub mod ids;
pub mod keys;
pub mod listener;
pub mod openapi;
pub mod providers;
pub mod server;
pub mod store;
pub mod tasks;
pub mod webhooks;
