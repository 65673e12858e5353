//! Hub protocol messages and their two encodings.
//!
//! Both encodings decode into the same [`HubMessage`] type, whose payload values are
//! `serde_json::Value` (MessagePack payloads are converted on the way in and out), so the
//! rest of the crate never depends on the wire format. Parsers are incremental: they are
//! given the bytes received so far and report either a message with the number of bytes it
//! used, "need more bytes", or an error that ends the connection.

mod framing;
mod handshake;
mod json;
mod json_decode;
mod msgpack;
mod msgpack_decode;
mod value;

use std::collections::BTreeMap;

pub use framing::{RECORD_SEPARATOR, read_varint, write_varint};
pub use handshake::{HandshakeError, HandshakeRequest, parse_handshake, write_handshake_response};
pub use json::JsonProtocol;
pub use msgpack::MessagePackProtocol;

use serde_json::Value;

/// Highest hub protocol version served (version 2 adds stateful reconnect).
pub const MAX_PROTOCOL_VERSION: i64 = 2;

/// Message headers (string to string), kept only so that they can be re-encoded.
pub type Headers = BTreeMap<String, String>;

/// Outcome carried by a [`HubMessage::Completion`].
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionResult {
    /// A void method completed.
    Void,
    /// The method returned a value.
    Value(Value),
    /// The method failed with this message.
    Error(String),
}

/// One hub protocol message (types 1-9 of the spec).
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Type 1: call a method; no id means "non-blocking" (no completion expected).
    Invocation {
        /// Message headers.
        headers: Headers,
        /// Id chosen by the caller, echoed by the completion.
        invocation_id: Option<String>,
        /// Method name.
        target: String,
        /// Arguments.
        arguments: Vec<Value>,
        /// Ids of client-to-server streams used as arguments.
        stream_ids: Vec<String>,
    },
    /// Type 2: one item of a stream.
    StreamItem {
        /// Message headers.
        headers: Headers,
        /// Stream or invocation id.
        invocation_id: String,
        /// The item.
        item: Value,
    },
    /// Type 3: end of an invocation or a stream.
    Completion {
        /// Message headers.
        headers: Headers,
        /// Invocation id.
        invocation_id: String,
        /// Result, error or nothing.
        result: CompletionResult,
    },
    /// Type 4: call a streaming method.
    StreamInvocation {
        /// Message headers.
        headers: Headers,
        /// Invocation id.
        invocation_id: String,
        /// Method name.
        target: String,
        /// Arguments.
        arguments: Vec<Value>,
        /// Ids of client-to-server streams used as arguments.
        stream_ids: Vec<String>,
    },
    /// Type 5: cancel an invocation or stream.
    CancelInvocation {
        /// Message headers.
        headers: Headers,
        /// Invocation id.
        invocation_id: String,
    },
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the sender closes the connection.
    Close {
        /// Why, when it is an error.
        error: Option<String>,
        /// Whether a client with automatic reconnect should reconnect.
        allow_reconnect: bool,
    },
    /// Type 8: trackable messages received so far (stateful reconnect).
    Ack {
        /// Highest sequence id received.
        sequence_id: u64,
    },
    /// Type 9: sequence id of the next trackable message (sent after a reconnect).
    Sequence {
        /// Next sequence id.
        sequence_id: u64,
    },
}

impl HubMessage {
    /// Whether the message takes part in stateful-reconnect sequence numbering
    /// (invocations, stream items, completions, stream invocations and cancellations).
    pub fn is_trackable(&self) -> bool {
        matches!(
            self,
            HubMessage::Invocation { .. }
                | HubMessage::StreamItem { .. }
                | HubMessage::Completion { .. }
                | HubMessage::StreamInvocation { .. }
                | HubMessage::CancelInvocation { .. }
        )
    }

    /// A non-blocking invocation of `target` without headers, as servers send to clients.
    pub fn invocation(target: &str, arguments: Vec<Value>) -> Self {
        HubMessage::Invocation {
            headers: Headers::new(),
            invocation_id: None,
            target: target.to_owned(),
            arguments,
            stream_ids: Vec::new(),
        }
    }

    /// A completion without headers.
    pub fn completion(invocation_id: &str, result: CompletionResult) -> Self {
        HubMessage::Completion {
            headers: Headers::new(),
            invocation_id: invocation_id.to_owned(),
            result,
        }
    }
}

/// Why bytes could not be decoded into a hub message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A message is larger than the configured limit.
    #[error("The maximum message size of {0}B was exceeded.")]
    MessageTooLarge(usize),
    /// The bytes are not a valid message.
    #[error("{0}")]
    Invalid(String),
}

impl ProtocolError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        ProtocolError::Invalid(msg.into())
    }
}

/// Result of an incremental parse: a message and the bytes it used, or `None` when the input
/// holds no complete message yet.
pub type ParseResult = Result<Option<(HubMessage, usize)>, ProtocolError>;

/// A hub protocol encoding.
pub trait HubProtocol {
    /// Name used in the handshake (`json`, `messagepack`).
    fn name(&self) -> &'static str;
    /// Whether the encoding is binary (needs a `Binary` transfer format).
    fn is_binary(&self) -> bool;
    /// Appends the framed encoding of `message` to `out`.
    fn write_message(&self, message: &HubMessage, out: &mut Vec<u8>);
    /// Decodes the first framed message of `input`.
    fn parse_message(&self, input: &[u8], max_message_size: usize) -> ParseResult;
}

/// The encodings this server speaks; chosen per connection by the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolKind {
    /// `json`, text frames, record-separator framing.
    Json,
    /// `messagepack`, binary frames, varint length-prefix framing.
    MessagePack,
}

impl ProtocolKind {
    /// Looks up a protocol by handshake name (exact, as the official resolver).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(ProtocolKind::Json),
            "messagepack" => Some(ProtocolKind::MessagePack),
            _ => None,
        }
    }

    /// The protocol implementation.
    pub fn protocol(self) -> &'static dyn HubProtocol {
        match self {
            ProtocolKind::Json => &JsonProtocol,
            ProtocolKind::MessagePack => &MessagePackProtocol,
        }
    }

    /// Handshake name.
    pub fn name(self) -> &'static str {
        self.protocol().name()
    }

    /// Encodes one message into a new buffer.
    pub fn encode(self, message: &HubMessage) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.protocol().write_message(message, &mut out);
        out
    }
}

#[cfg(test)]
mod robustness_tests {
    //! Randomized inputs: the parsers must return an error or a message, never panic.
    //! (The fuzz targets under `fuzz/` do the same, guided by coverage.)

    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn seeds() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let samples = [
            HubMessage::Invocation {
                headers: [("k".to_owned(), "v".to_owned())].into(),
                invocation_id: Some("1".into()),
                target: "Echo".into(),
                arguments: vec![serde_json::json!({"a": [1, 2.5, null, "x"]})],
                stream_ids: vec!["s".into()],
            },
            HubMessage::completion("2", CompletionResult::Error("e".into())),
            HubMessage::Close {
                error: None,
                allow_reconnect: true,
            },
            HubMessage::Ack { sequence_id: 300 },
        ];
        for kind in [ProtocolKind::Json, ProtocolKind::MessagePack] {
            for m in &samples {
                out.push(kind.encode(m));
            }
        }
        out.push(b"{\"protocol\":\"json\",\"version\":1}\x1e".to_vec());
        out
    }

    fn parse_all(input: &[u8]) {
        for protocol in [&JsonProtocol as &dyn HubProtocol, &MessagePackProtocol] {
            let mut offset = 0;
            while let Ok(Some((_, used))) = protocol.parse_message(&input[offset..], 1024) {
                assert!(used > 0);
                offset += used;
                assert!(offset <= input.len());
            }
        }
        let _ = parse_handshake(input, 1024).map(|r| r.map(|(req, _)| req.resolve(true)));
    }

    #[test]
    fn random_and_mutated_inputs_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x5151);
        let seeds = seeds();
        for _ in 0..20_000 {
            let mut input = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..6) {
                let len = input.len();
                match rng.random_range(0..4) {
                    0 if len > 0 => input[rng.random_range(0..len)] = rng.random(),
                    1 if len > 0 => input.truncate(rng.random_range(0..len)),
                    2 => input.insert(rng.random_range(0..=len), rng.random()),
                    _ => input.extend((0..rng.random_range(0..8)).map(|_| rng.random::<u8>())),
                }
            }
            parse_all(&input);
        }
        for _ in 0..5_000 {
            let len = rng.random_range(0..64);
            let input: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            parse_all(&input);
        }
    }
}
