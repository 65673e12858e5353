//! The event bus: tells live consumers that events were committed.
//!
//! In one process it is a `tokio::sync::broadcast` channel. A receiver that lags
//! behind loses messages (`RecvError::Lagged`) and must re-read the log from its
//! cursor; that is the contract for every consumer, so the bus never blocks a
//! commit and never holds memory for a slow reader.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Event;

/// Capacity of the broadcast ring; a consumer this far behind re-reads the log.
const CAPACITY: usize = 65_536;

/// Fans committed events out to the channels of this process.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let (sender, _) = broadcast::channel(CAPACITY);
        EventBus { sender }
    }

    /// Publishes a committed event; never blocks.
    pub fn publish(&self, event: Arc<Event>) {
        metrics::counter!("conduit_events_total", "type" => event.event_type.clone()).increment(1);
        let _ = self.sender.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}
