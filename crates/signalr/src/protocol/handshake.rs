//! The handshake: always JSON, terminated by a record separator, whatever hub protocol it
//! selects.

use serde_json::Value;

use super::framing::{RECORD_SEPARATOR, find_record};
use super::{MAX_PROTOCOL_VERSION, ProtocolKind};

/// A parsed handshake request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// Requested protocol name.
    pub protocol: String,
    /// Requested protocol version.
    pub version: i64,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not a valid handshake request message.
    #[error("{0}")]
    Invalid(String),
    /// The request holds no separator within the size limit.
    #[error("The maximum message size of {0}B was exceeded.")]
    TooLarge(usize),
    /// The protocol is not served.
    #[error("The protocol '{0}' is not supported.")]
    UnsupportedProtocol(String),
    /// The protocol version is not served.
    #[error("The server does not support version {version} of the '{protocol}' protocol.")]
    UnsupportedVersion {
        /// Requested protocol.
        protocol: String,
        /// Requested version.
        version: i64,
    },
    /// The protocol needs a transfer format the transport cannot carry.
    #[error(
        "Cannot use the '{0}' protocol on the current transport. The transport does not support 'Binary' transfer format."
    )]
    BinaryNotSupported(String),
}

impl HandshakeError {
    /// The text sent to the client in the handshake response, as the official server words it.
    pub fn client_message(&self, detailed: bool) -> String {
        match self {
            HandshakeError::Invalid(_) | HandshakeError::TooLarge(_) => {
                let base = "An unexpected error occurred during connection handshake.";
                if detailed {
                    format!("{base} InvalidDataException: {self}")
                } else {
                    base.to_owned()
                }
            }
            other => other.to_string(),
        }
    }
}

impl HandshakeRequest {
    /// Checks the request against the served protocols: the protocol to use, or the error
    /// to answer with. `binary_transport` tells whether the transport carries binary data.
    pub fn resolve(&self, binary_transport: bool) -> Result<ProtocolKind, HandshakeError> {
        let kind = ProtocolKind::from_name(&self.protocol)
            .ok_or_else(|| HandshakeError::UnsupportedProtocol(self.protocol.clone()))?;
        if self.version > MAX_PROTOCOL_VERSION {
            return Err(HandshakeError::UnsupportedVersion {
                protocol: self.protocol.clone(),
                version: self.version,
            });
        }
        if kind.protocol().is_binary() && !binary_transport {
            return Err(HandshakeError::BinaryNotSupported(self.protocol.clone()));
        }
        Ok(kind)
    }
}

/// Parses a handshake request from the start of `input`: the request and the bytes it used
/// (separator included), or `None` when no separator arrived yet.
pub fn parse_handshake(
    input: &[u8],
    max_message_size: usize,
) -> Result<Option<(HandshakeRequest, usize)>, HandshakeError> {
    let Some(end) = find_record(input) else {
        if input.len() > max_message_size {
            return Err(HandshakeError::TooLarge(max_message_size));
        }
        return Ok(None);
    };
    if end > max_message_size {
        return Err(HandshakeError::TooLarge(max_message_size));
    }
    let value: Value = serde_json::from_slice(&input[..end])
        .map_err(|e| HandshakeError::Invalid(format!("Error reading JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(HandshakeError::Invalid(
            "Unexpected JSON Token Type. Expected a JSON Object.".into(),
        ));
    };
    let protocol = match map.get("protocol") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(HandshakeError::Invalid(
                "Expected 'protocol' to be of type String.".into(),
            ));
        }
        None => {
            return Err(HandshakeError::Invalid(
                "Missing required property 'protocol'.".into(),
            ));
        }
    };
    let version = match map.get("version") {
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or_else(|| HandshakeError::Invalid("Expected 'version' to be an Int32.".into()))?,
        Some(_) => {
            return Err(HandshakeError::Invalid(
                "Expected 'version' to be of type Integer.".into(),
            ));
        }
        None => {
            return Err(HandshakeError::Invalid(
                "Missing required property 'version'.".into(),
            ));
        }
    };
    Ok(Some((HandshakeRequest { protocol, version }, end + 1)))
}

/// The framed handshake response: `{}` on success or `{"error":"..."}`.
pub fn write_handshake_response(error: Option<&str>) -> Vec<u8> {
    let mut out = match error {
        None => b"{}".to_vec(),
        Some(e) => serde_json::to_vec(&serde_json::json!({ "error": e })).unwrap_or_default(),
    };
    out.push(RECORD_SEPARATOR);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_requests() {
        let (req, used) = parse_handshake(b"{\"protocol\":\"json\",\"version\":1}\x1erest", 1024)
            .unwrap()
            .unwrap();
        assert_eq!(req.protocol, "json");
        assert_eq!(req.version, 1);
        assert_eq!(used, 32);
        assert_eq!(req.resolve(true), Ok(ProtocolKind::Json));
        let (req, _) = parse_handshake(
            b"{\"version\":2,\"protocol\":\"messagepack\",\"extra\":[1]}\x1e",
            1024,
        )
        .unwrap()
        .unwrap();
        assert_eq!(req.resolve(true), Ok(ProtocolKind::MessagePack));
    }

    #[test]
    fn partial_request_waits() {
        assert_eq!(parse_handshake(b"{\"protocol\":\"js", 1024), Ok(None));
        assert_eq!(parse_handshake(b"", 1024), Ok(None));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_handshake(b"{not json}\x1e", 1024),
            Err(HandshakeError::Invalid(_))
        ));
        assert!(matches!(
            parse_handshake(b"[1]\x1e", 1024),
            Err(HandshakeError::Invalid(_))
        ));
        assert_eq!(
            parse_handshake(b"{\"version\":1}\x1e", 1024),
            Err(HandshakeError::Invalid(
                "Missing required property 'protocol'.".into()
            ))
        );
        assert!(matches!(
            parse_handshake(b"{\"protocol\":\"json\",\"version\":\"1\"}\x1e", 1024),
            Err(HandshakeError::Invalid(_))
        ));
        assert!(matches!(
            parse_handshake(b"{\"protocol\":\"json\",\"version\":1.5}\x1e", 1024),
            Err(HandshakeError::Invalid(_))
        ));
        assert_eq!(
            parse_handshake(&[b' '; 100], 10),
            Err(HandshakeError::TooLarge(10))
        );
        let req = HandshakeRequest {
            protocol: "xml".into(),
            version: 1,
        };
        assert_eq!(
            req.resolve(true).unwrap_err().client_message(false),
            "The protocol 'xml' is not supported."
        );
        let req = HandshakeRequest {
            protocol: "json".into(),
            version: 3,
        };
        assert_eq!(
            req.resolve(true).unwrap_err().client_message(false),
            "The server does not support version 3 of the 'json' protocol."
        );
        let req = HandshakeRequest {
            protocol: "messagepack".into(),
            version: 1,
        };
        assert!(matches!(
            req.resolve(false),
            Err(HandshakeError::BinaryNotSupported(_))
        ));
        assert_eq!(
            HandshakeError::Invalid("x".into()).client_message(false),
            "An unexpected error occurred during connection handshake."
        );
    }

    #[test]
    fn responses() {
        assert_eq!(write_handshake_response(None), b"{}\x1e");
        assert_eq!(
            write_handshake_response(Some("bad \"x\"")),
            b"{\"error\":\"bad \\\"x\\\"\"}\x1e"
        );
    }
}
