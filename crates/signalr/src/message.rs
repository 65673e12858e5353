//! Messages for clients, serialized lazily and at most once per protocol.
//!
//! A broadcast to thousands of connections encodes its message once for JSON and once for
//! MessagePack (only for the protocols some recipient uses); every recipient's queue holds a
//! reference-counted `Bytes` of that one encoding.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;

use crate::protocol::{HubMessage, ProtocolKind};

struct Inner {
    message: HubMessage,
    json: OnceLock<Bytes>,
    msgpack: OnceLock<Bytes>,
}

/// A message for clients, serialized at most once per protocol however many connections
/// receive it.
#[derive(Clone)]
pub struct ServerMessage(Arc<Inner>);

impl std::fmt::Debug for ServerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ServerMessage")
            .field(&self.0.message)
            .finish()
    }
}

impl ServerMessage {
    /// A non-blocking invocation of the client method `target` (what the official server's
    /// `Clients.X.SendAsync(target, args)` sends).
    pub fn invocation(target: &str, args: Vec<Value>) -> Self {
        Self::from_message(HubMessage::invocation(target, args))
    }

    /// Wraps any hub message.
    pub fn from_message(message: HubMessage) -> Self {
        ServerMessage(Arc::new(Inner {
            message,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        }))
    }

    /// The message.
    pub fn message(&self) -> &HubMessage {
        &self.0.message
    }

    /// The framed encoding for `protocol`, computed on first use.
    pub fn encoded(&self, protocol: ProtocolKind) -> Bytes {
        let cell = match protocol {
            ProtocolKind::Json => &self.0.json,
            ProtocolKind::MessagePack => &self.0.msgpack,
        };
        cell.get_or_init(|| Bytes::from(protocol.encode(&self.0.message)))
            .clone()
    }

    /// Whether the message is sequence-numbered under stateful reconnect.
    pub(crate) fn is_trackable(&self) -> bool {
        self.0.message.is_trackable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_once_per_protocol() {
        let m = ServerMessage::invocation("t", vec![Value::from(1)]);
        let a = m.encoded(ProtocolKind::Json);
        let b = m.clone().encoded(ProtocolKind::Json);
        assert_eq!(a.as_ptr(), b.as_ptr(), "shared buffer");
        assert_eq!(
            &a[..],
            b"{\"type\":1,\"target\":\"t\",\"arguments\":[1]}\x1e"
        );
        let c = m.encoded(ProtocolKind::MessagePack);
        assert_ne!(a, c);
        assert!(m.is_trackable());
    }
}
