//! The JSON hub protocol: one JSON object per message, each followed by 0x1E.

use serde::Serialize;

use super::framing::{RECORD_SEPARATOR, find_record};
use super::json_decode::parse_object;
use super::{CompletionResult, Headers, HubMessage, HubProtocol, ParseResult, ProtocolError};

/// The `json` hub protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonProtocol;

impl HubProtocol for JsonProtocol {
    fn name(&self) -> &'static str {
        "json"
    }

    fn is_binary(&self) -> bool {
        false
    }

    fn write_message(&self, message: &HubMessage, out: &mut Vec<u8>) {
        write_json(message, out);
        out.push(RECORD_SEPARATOR);
    }

    fn parse_message(&self, input: &[u8], max_message_size: usize) -> ParseResult {
        let mut offset = 0;
        loop {
            let rest = &input[offset..];
            let Some(end) = find_record(rest) else {
                if rest.len() > max_message_size {
                    return Err(ProtocolError::MessageTooLarge(max_message_size));
                }
                return Ok(None);
            };
            if end > max_message_size {
                return Err(ProtocolError::MessageTooLarge(max_message_size));
            }
            offset += end + 1;
            // Unknown message types are skipped, as the official parser does, so that newer
            // peers can add types.
            if let Some(message) = parse_object(&rest[..end])? {
                return Ok(Some((message, offset)));
            }
        }
    }
}

fn push<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, value: &T) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    // Writing into a Vec cannot fail for these types.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn push_headers(out: &mut Vec<u8>, headers: &Headers) {
    if !headers.is_empty() {
        push(out, "headers", headers);
    }
}

fn write_json(message: &HubMessage, out: &mut Vec<u8>) {
    match message {
        HubMessage::Invocation {
            headers,
            invocation_id,
            target,
            arguments,
            stream_ids,
        } => {
            out.extend_from_slice(b"{\"type\":1");
            push_headers(out, headers);
            if let Some(id) = invocation_id {
                push(out, "invocationId", id);
            }
            push(out, "target", target);
            push(out, "arguments", arguments);
            if !stream_ids.is_empty() {
                push(out, "streamIds", stream_ids);
            }
        }
        HubMessage::StreamInvocation {
            headers,
            invocation_id,
            target,
            arguments,
            stream_ids,
        } => {
            out.extend_from_slice(b"{\"type\":4");
            push_headers(out, headers);
            push(out, "invocationId", invocation_id);
            push(out, "target", target);
            push(out, "arguments", arguments);
            if !stream_ids.is_empty() {
                push(out, "streamIds", stream_ids);
            }
        }
        HubMessage::StreamItem {
            headers,
            invocation_id,
            item,
        } => {
            out.extend_from_slice(b"{\"type\":2");
            push_headers(out, headers);
            push(out, "invocationId", invocation_id);
            push(out, "item", item);
        }
        HubMessage::Completion {
            headers,
            invocation_id,
            result,
        } => {
            out.extend_from_slice(b"{\"type\":3");
            push_headers(out, headers);
            push(out, "invocationId", invocation_id);
            match result {
                CompletionResult::Void => {}
                CompletionResult::Value(v) => push(out, "result", v),
                CompletionResult::Error(e) => push(out, "error", e),
            }
        }
        HubMessage::CancelInvocation {
            headers,
            invocation_id,
        } => {
            out.extend_from_slice(b"{\"type\":5");
            push_headers(out, headers);
            push(out, "invocationId", invocation_id);
        }
        HubMessage::Ping => out.extend_from_slice(b"{\"type\":6"),
        HubMessage::Close {
            error,
            allow_reconnect,
        } => {
            out.extend_from_slice(b"{\"type\":7");
            if let Some(e) = error {
                push(out, "error", e);
            }
            if *allow_reconnect {
                push(out, "allowReconnect", &true);
            }
        }
        HubMessage::Ack { sequence_id } => {
            out.extend_from_slice(b"{\"type\":8");
            push(out, "sequenceId", sequence_id);
        }
        HubMessage::Sequence { sequence_id } => {
            out.extend_from_slice(b"{\"type\":9");
            push(out, "sequenceId", sequence_id);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_messages() -> Vec<HubMessage> {
        let mut headers = Headers::new();
        headers.insert("a".into(), "b".into());
        vec![
            HubMessage::Invocation {
                headers: headers.clone(),
                invocation_id: Some("1".into()),
                target: "Echo".into(),
                arguments: vec![json!(1), json!("x"), json!({"k": [null, true]})],
                stream_ids: vec!["s1".into()],
            },
            HubMessage::invocation("NonBlocking", vec![]),
            HubMessage::StreamItem {
                headers: Headers::new(),
                invocation_id: "2".into(),
                item: json!(null),
            },
            HubMessage::completion("3", CompletionResult::Void),
            HubMessage::completion("3", CompletionResult::Value(json!(null))),
            HubMessage::completion("3", CompletionResult::Value(json!([1, 2.5]))),
            HubMessage::completion("3", CompletionResult::Error("boom".into())),
            HubMessage::StreamInvocation {
                headers,
                invocation_id: "4".into(),
                target: "Stream".into(),
                arguments: vec![json!(5)],
                stream_ids: vec![],
            },
            HubMessage::CancelInvocation {
                headers: Headers::new(),
                invocation_id: "4".into(),
            },
            HubMessage::Ping,
            HubMessage::Close {
                error: None,
                allow_reconnect: false,
            },
            HubMessage::Close {
                error: Some("bye".into()),
                allow_reconnect: true,
            },
            HubMessage::Ack { sequence_id: 1394 },
            HubMessage::Sequence { sequence_id: 1 },
        ]
    }

    #[test]
    fn round_trip_every_type() {
        for m in all_messages() {
            let mut out = Vec::new();
            JsonProtocol.write_message(&m, &mut out);
            assert_eq!(*out.last().unwrap(), RECORD_SEPARATOR);
            let (parsed, used) = JsonProtocol.parse_message(&out, 1 << 20).unwrap().unwrap();
            assert_eq!(used, out.len());
            assert_eq!(parsed, m);
        }
    }

    #[test]
    fn multiple_and_partial_messages() {
        let mut out = Vec::new();
        for m in all_messages() {
            JsonProtocol.write_message(&m, &mut out);
        }
        // Parse all from one buffer.
        let mut offset = 0;
        let mut got = Vec::new();
        while let Some((m, used)) = JsonProtocol.parse_message(&out[offset..], 1 << 20).unwrap() {
            offset += used;
            got.push(m);
        }
        assert_eq!(offset, out.len());
        assert_eq!(got, all_messages());
        // Every strict prefix of the first message is incomplete.
        let first_len = out.iter().position(|b| *b == RECORD_SEPARATOR).unwrap() + 1;
        for cut in 0..first_len {
            assert_eq!(JsonProtocol.parse_message(&out[..cut], 1 << 20), Ok(None));
        }
    }

    #[test]
    fn exact_official_encodings() {
        let m = HubMessage::completion("1", CompletionResult::Value(json!(42)));
        assert_eq!(
            ProtocolKindJson::encode(&m),
            "{\"type\":3,\"invocationId\":\"1\",\"result\":42}\u{1e}"
        );
        let m = HubMessage::Ping;
        assert_eq!(ProtocolKindJson::encode(&m), "{\"type\":6}\u{1e}");
        let m = HubMessage::Close {
            error: Some("e".into()),
            allow_reconnect: true,
        };
        assert_eq!(
            ProtocolKindJson::encode(&m),
            "{\"type\":7,\"error\":\"e\",\"allowReconnect\":true}\u{1e}"
        );
    }

    struct ProtocolKindJson;
    impl ProtocolKindJson {
        fn encode(m: &HubMessage) -> String {
            let mut out = Vec::new();
            JsonProtocol.write_message(m, &mut out);
            String::from_utf8(out).unwrap()
        }
    }

    #[test]
    fn errors_and_unknown_types() {
        let p = JsonProtocol;
        assert!(p.parse_message(b"nope\x1e", 100).is_err());
        assert!(p.parse_message(b"[]\x1e", 100).is_err());
        assert_eq!(
            p.parse_message(b"{}\x1e", 100),
            Err(ProtocolError::invalid("Missing required property 'type'."))
        );
        assert_eq!(
            p.parse_message(b"{\"type\":1,\"arguments\":[]}\x1e", 100),
            Err(ProtocolError::invalid(
                "Missing required property 'target'."
            ))
        );
        assert!(
            p.parse_message(
                b"{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"x\"}\x1e",
                100
            )
            .is_err()
        );
        assert!(p.parse_message(b"{\"type\":8}\x1e", 100).is_err());
        assert!(p.parse_message(b"{\"type\":\"1\"}\x1e", 100).is_err());
        // Unknown types are skipped.
        let (m, used) = p
            .parse_message(b"{\"type\":99}\x1e{\"type\":6}\x1e", 100)
            .unwrap()
            .unwrap();
        assert_eq!((m, used), (HubMessage::Ping, 23));
        assert_eq!(p.parse_message(b"{\"type\":99}\x1e", 100), Ok(None));
        // Unknown properties are ignored.
        let (m, _) = p
            .parse_message(b"{\"type\":6,\"x\":1}\x1e", 100)
            .unwrap()
            .unwrap();
        assert_eq!(m, HubMessage::Ping);
    }

    #[test]
    fn size_limit() {
        let p = JsonProtocol;
        let big = format!(
            "{{\"type\":1,\"target\":\"{}\",\"arguments\":[]}}",
            "x".repeat(100)
        );
        let mut framed = big.clone().into_bytes();
        framed.push(RECORD_SEPARATOR);
        assert_eq!(
            p.parse_message(&framed, 64),
            Err(ProtocolError::MessageTooLarge(64))
        );
        // Without a separator yet, but already too long.
        assert_eq!(
            p.parse_message(big.as_bytes(), 64),
            Err(ProtocolError::MessageTooLarge(64))
        );
        assert!(p.parse_message(&framed, 1024).unwrap().is_some());
    }
}
