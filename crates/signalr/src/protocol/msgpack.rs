//! The MessagePack hub protocol: each message is a MessagePack array, prefixed by its
//! length as a varint.

use rmpv::Value as Mp;

use super::framing::{read_varint, write_varint};
use super::msgpack_decode::parse_body;
use super::value::json_to_msgpack;
use super::{CompletionResult, Headers, HubMessage, HubProtocol, ParseResult, ProtocolError};

/// The `messagepack` hub protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePackProtocol;

pub(super) const ERROR_RESULT: u8 = 1;
pub(super) const VOID_RESULT: u8 = 2;
pub(super) const NON_VOID_RESULT: u8 = 3;

impl HubProtocol for MessagePackProtocol {
    fn name(&self) -> &'static str {
        "messagepack"
    }

    fn is_binary(&self) -> bool {
        true
    }

    fn write_message(&self, message: &HubMessage, out: &mut Vec<u8>) {
        let value = to_array(message);
        let mut body = Vec::with_capacity(64);
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut body, &value);
        write_varint(body.len() as u32, out);
        out.extend_from_slice(&body);
    }

    fn parse_message(&self, input: &[u8], max_message_size: usize) -> ParseResult {
        let mut offset = 0;
        loop {
            let rest = &input[offset..];
            let (len, prefix) = match read_varint(rest) {
                Ok(Some(v)) => v,
                Ok(None) => return Ok(None),
                Err(e) => return Err(ProtocolError::invalid(e)),
            };
            if len > max_message_size {
                return Err(ProtocolError::MessageTooLarge(max_message_size));
            }
            if rest.len() - prefix < len {
                return Ok(None);
            }
            let body = &rest[prefix..prefix + len];
            offset += prefix + len;
            // Unknown message types are skipped, as the official parser does.
            if let Some(message) = parse_body(body)? {
                return Ok(Some((message, offset)));
            }
        }
    }
}

fn headers_value(headers: &Headers) -> Mp {
    Mp::Map(
        headers
            .iter()
            .map(|(k, v)| (Mp::from(k.as_str()), Mp::from(v.as_str())))
            .collect(),
    )
}

fn args_value(args: &[serde_json::Value]) -> Mp {
    Mp::Array(args.iter().map(json_to_msgpack).collect())
}

fn ids_value(ids: &[String]) -> Mp {
    Mp::Array(ids.iter().map(|s| Mp::from(s.as_str())).collect())
}

fn to_array(message: &HubMessage) -> Mp {
    let items = match message {
        HubMessage::Invocation {
            headers,
            invocation_id,
            target,
            arguments,
            stream_ids,
        } => {
            let mut v = vec![
                Mp::from(1),
                headers_value(headers),
                invocation_id.as_deref().map(Mp::from).unwrap_or(Mp::Nil),
                Mp::from(target.as_str()),
                args_value(arguments),
            ];
            if !stream_ids.is_empty() {
                v.push(ids_value(stream_ids));
            }
            v
        }
        HubMessage::StreamInvocation {
            headers,
            invocation_id,
            target,
            arguments,
            stream_ids,
        } => {
            let mut v = vec![
                Mp::from(4),
                headers_value(headers),
                Mp::from(invocation_id.as_str()),
                Mp::from(target.as_str()),
                args_value(arguments),
            ];
            if !stream_ids.is_empty() {
                v.push(ids_value(stream_ids));
            }
            v
        }
        HubMessage::StreamItem {
            headers,
            invocation_id,
            item,
        } => vec![
            Mp::from(2),
            headers_value(headers),
            Mp::from(invocation_id.as_str()),
            json_to_msgpack(item),
        ],
        HubMessage::Completion {
            headers,
            invocation_id,
            result,
        } => {
            let mut v = vec![
                Mp::from(3),
                headers_value(headers),
                Mp::from(invocation_id.as_str()),
            ];
            match result {
                CompletionResult::Error(e) => {
                    v.push(Mp::from(ERROR_RESULT));
                    v.push(Mp::from(e.as_str()));
                }
                CompletionResult::Void => v.push(Mp::from(VOID_RESULT)),
                CompletionResult::Value(x) => {
                    v.push(Mp::from(NON_VOID_RESULT));
                    v.push(json_to_msgpack(x));
                }
            }
            v
        }
        HubMessage::CancelInvocation {
            headers,
            invocation_id,
        } => vec![
            Mp::from(5),
            headers_value(headers),
            Mp::from(invocation_id.as_str()),
        ],
        HubMessage::Ping => vec![Mp::from(6)],
        HubMessage::Close {
            error,
            allow_reconnect,
        } => vec![
            Mp::from(7),
            error.as_deref().map(Mp::from).unwrap_or(Mp::Nil),
            Mp::Boolean(*allow_reconnect),
        ],
        HubMessage::Ack { sequence_id } => vec![Mp::from(8), Mp::from(*sequence_id)],
        HubMessage::Sequence { sequence_id } => vec![Mp::from(9), Mp::from(*sequence_id)],
    };
    Mp::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(body.len() as u32, &mut out);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn decodes_spec_examples() {
        let p = MessagePackProtocol;
        let inv = framed(&[
            0x96, 0x01, 0x80, 0xa3, b'x', b'y', b'z', 0xa6, b'm', b'e', b't', b'h', b'o', b'd',
            0x91, 0x2a, 0x90,
        ]);
        let (m, used) = p.parse_message(&inv, 1024).unwrap().unwrap();
        assert_eq!(used, inv.len());
        assert_eq!(
            m,
            HubMessage::Invocation {
                headers: Headers::new(),
                invocation_id: Some("xyz".into()),
                target: "method".into(),
                arguments: vec![json!(42)],
                stream_ids: vec![],
            }
        );
        let err = framed(&[
            0x95, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x01, 0xa5, b'E', b'r', b'r', b'o', b'r',
        ]);
        assert_eq!(
            p.parse_message(&err, 1024).unwrap().unwrap().0,
            HubMessage::completion("xyz", CompletionResult::Error("Error".into()))
        );
        let ack = framed(&[0x92, 0x08, 0xcc, 0x24]);
        assert_eq!(
            p.parse_message(&ack, 1024).unwrap().unwrap().0,
            HubMessage::Ack { sequence_id: 36 }
        );
        let close = framed(&[0x93, 0x07, 0xa3, b'x', b'y', b'z', 0xc3]);
        assert_eq!(
            p.parse_message(&close, 1024).unwrap().unwrap().0,
            HubMessage::Close {
                error: Some("xyz".into()),
                allow_reconnect: true
            }
        );
    }

    #[test]
    fn encodes_like_the_official_server() {
        let mut out = Vec::new();
        MessagePackProtocol.write_message(&HubMessage::Ping, &mut out);
        assert_eq!(out, [0x02, 0x91, 0x06]);
        let mut out = Vec::new();
        MessagePackProtocol.write_message(
            &HubMessage::completion("xyz", CompletionResult::Void),
            &mut out,
        );
        assert_eq!(out, [0x08, 0x94, 0x03, 0x80, 0xa3, b'x', b'y', b'z', 0x02]);
        let mut out = Vec::new();
        MessagePackProtocol.write_message(
            &HubMessage::Close {
                error: None,
                allow_reconnect: true,
            },
            &mut out,
        );
        assert_eq!(out, [0x04, 0x93, 0x07, 0xc0, 0xc3]);
    }

    #[test]
    fn round_trip_every_type() {
        let mut headers = Headers::new();
        headers.insert("h".into(), "v".into());
        let messages = vec![
            HubMessage::Invocation {
                headers: headers.clone(),
                invocation_id: Some("1".into()),
                target: "Echo".into(),
                arguments: vec![
                    json!(1),
                    json!(-5),
                    json!("x"),
                    json!({"k": [null, true, 2.5]}),
                ],
                stream_ids: vec!["s".into()],
            },
            HubMessage::invocation("NonBlocking", vec![]),
            HubMessage::StreamItem {
                headers: Headers::new(),
                invocation_id: "2".into(),
                item: json!([1]),
            },
            HubMessage::completion("3", CompletionResult::Void),
            HubMessage::completion("3", CompletionResult::Value(json!(null))),
            HubMessage::completion("3", CompletionResult::Error("boom".into())),
            HubMessage::StreamInvocation {
                headers,
                invocation_id: "4".into(),
                target: "S".into(),
                arguments: vec![],
                stream_ids: vec![],
            },
            HubMessage::CancelInvocation {
                headers: Headers::new(),
                invocation_id: "4".into(),
            },
            HubMessage::Ping,
            HubMessage::Close {
                error: Some("e".into()),
                allow_reconnect: false,
            },
            HubMessage::Ack {
                sequence_id: 1 << 40,
            },
            HubMessage::Sequence { sequence_id: 7 },
        ];
        let mut all = Vec::new();
        for m in &messages {
            MessagePackProtocol.write_message(m, &mut all);
        }
        let mut offset = 0;
        let mut got = Vec::new();
        while let Some((m, used)) = MessagePackProtocol
            .parse_message(&all[offset..], 1 << 20)
            .unwrap()
        {
            offset += used;
            got.push(m);
        }
        assert_eq!(offset, all.len());
        assert_eq!(got, messages);
    }

    #[test]
    fn partial_large_and_malformed() {
        let p = MessagePackProtocol;
        let mut big = Vec::new();
        p.write_message(
            &HubMessage::invocation("T", vec![json!("x".repeat(20_000))]),
            &mut big,
        );
        assert!(big[0] & 0x80 != 0 && big[1] & 0x80 != 0 && big[2] & 0x80 == 0); // 3-byte varint
        for cut in [0, 1, 2, 3, 100, big.len() - 1] {
            assert_eq!(p.parse_message(&big[..cut], 1 << 20), Ok(None), "cut {cut}");
        }
        assert!(p.parse_message(&big, 1 << 20).unwrap().is_some());
        assert_eq!(
            p.parse_message(&big, 1000),
            Err(ProtocolError::MessageTooLarge(1000))
        );
        // Too-long varint.
        assert!(p.parse_message(&[0xff; 6], 1 << 20).is_err());
        // Not an array, empty array, wrong field types, truncated body.
        assert!(p.parse_message(&framed(&[0x01]), 100).is_err());
        assert!(p.parse_message(&framed(&[0x90]), 100).is_err());
        assert!(
            p.parse_message(&framed(&[0x93, 0x01, 0x80, 0xc0]), 100)
                .is_err()
        );
        assert!(
            p.parse_message(&framed(&[0x95, 0x01, 0x80, 0xc0, 0x01, 0x90]), 100)
                .is_err()
        );
        assert!(p.parse_message(&framed(&[0x92, 0x08]), 100).is_err());
        assert!(
            p.parse_message(&framed(&[0x94, 0x03, 0x80, 0xa1, b'x', 0x09]), 100)
                .is_err()
        );
        // Unknown types are skipped.
        let mut two = framed(&[0x91, 0x63]);
        two.extend(framed(&[0x91, 0x06]));
        assert_eq!(
            p.parse_message(&two, 100).unwrap().unwrap(),
            (HubMessage::Ping, 6)
        );
        // Zero-length body is malformed.
        assert!(p.parse_message(&[0x00], 100).is_err());
    }
}
