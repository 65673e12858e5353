//! Decoding of MessagePack hub message bodies (the framing is handled by `msgpack.rs`).

use rmpv::Value as Mp;

use super::msgpack::{ERROR_RESULT, NON_VOID_RESULT, VOID_RESULT};
use super::value::msgpack_to_json;
use super::{CompletionResult, Headers, HubMessage, ProtocolError};

fn invalid(what: &str) -> ProtocolError {
    ProtocolError::invalid(format!("Invalid payload for {what} message."))
}

fn string(v: Mp, field: &str) -> Result<String, ProtocolError> {
    match v {
        Mp::String(s) => s
            .into_str()
            .ok_or_else(|| ProtocolError::invalid(format!("Reading '{field}' as String failed."))),
        _ => Err(ProtocolError::invalid(format!(
            "Reading '{field}' as String failed."
        ))),
    }
}

fn opt_string(v: Mp, field: &str) -> Result<Option<String>, ProtocolError> {
    match v {
        Mp::Nil => Ok(None),
        other => string(other, field).map(Some),
    }
}

fn headers(v: Mp) -> Result<Headers, ProtocolError> {
    match v {
        Mp::Map(m) => m
            .into_iter()
            .map(|(k, v)| Ok((string(k, "headers")?, string(v, "headers")?)))
            .collect(),
        _ => Err(ProtocolError::invalid(
            "Reading map length for 'headers' failed.",
        )),
    }
}

fn arguments(v: Mp) -> Result<Vec<serde_json::Value>, ProtocolError> {
    match v {
        Mp::Array(a) => Ok(a.into_iter().map(msgpack_to_json).collect()),
        _ => Err(ProtocolError::invalid(
            "Reading array length for 'arguments' failed.",
        )),
    }
}

fn stream_ids(v: Option<Mp>) -> Result<Vec<String>, ProtocolError> {
    match v {
        None | Some(Mp::Nil) => Ok(Vec::new()),
        Some(Mp::Array(a)) => a.into_iter().map(|s| string(s, "streamIds")).collect(),
        Some(_) => Err(ProtocolError::invalid(
            "Reading array length for 'streamIds' failed.",
        )),
    }
}

fn sequence_id(v: Mp) -> Result<u64, ProtocolError> {
    v.as_u64()
        .ok_or_else(|| ProtocolError::invalid("Reading 'sequenceId' as Int64 failed."))
}

/// Decodes one message body; `None` for an unknown message type.
pub(super) fn parse_body(body: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
    let mut cursor = body;
    let value = rmpv::decode::read_value(&mut cursor)
        .map_err(|e| ProtocolError::invalid(format!("Invalid MessagePack: {e}")))?;
    let Mp::Array(items) = value else {
        return Err(ProtocolError::invalid("Message is not an array."));
    };
    let ty = items
        .first()
        .and_then(Mp::as_i64)
        .ok_or_else(|| ProtocolError::invalid("Reading 'messageType' as Int32 failed."))?;
    let count = items.len();
    let mut it = items.into_iter().skip(1);
    let mut next = || it.next().unwrap_or(Mp::Nil);
    let message = match ty {
        1 | 4 => {
            if count < 5 {
                return Err(invalid(if ty == 1 {
                    "Invocation"
                } else {
                    "StreamInvocation"
                }));
            }
            let headers = headers(next())?;
            let id = opt_string(next(), "invocationId")?;
            let target = string(next(), "target")?;
            let arguments = arguments(next())?;
            let ids = stream_ids(if count > 5 { Some(next()) } else { None })?;
            if ty == 1 {
                HubMessage::Invocation {
                    headers,
                    invocation_id: id,
                    target,
                    arguments,
                    stream_ids: ids,
                }
            } else {
                HubMessage::StreamInvocation {
                    headers,
                    invocation_id: id
                        .ok_or_else(|| ProtocolError::invalid("Missing 'invocationId'."))?,
                    target,
                    arguments,
                    stream_ids: ids,
                }
            }
        }
        2 => {
            if count < 4 {
                return Err(invalid("StreamItem"));
            }
            HubMessage::StreamItem {
                headers: headers(next())?,
                invocation_id: string(next(), "invocationId")?,
                item: msgpack_to_json(next()),
            }
        }
        3 => {
            if count < 4 {
                return Err(invalid("Completion"));
            }
            let headers = headers(next())?;
            let invocation_id = string(next(), "invocationId")?;
            let kind = next().as_u64();
            let result = match kind {
                Some(k) if k == u64::from(ERROR_RESULT) && count >= 5 => {
                    CompletionResult::Error(string(next(), "error")?)
                }
                Some(k) if k == u64::from(VOID_RESULT) => CompletionResult::Void,
                Some(k) if k == u64::from(NON_VOID_RESULT) && count >= 5 => {
                    CompletionResult::Value(msgpack_to_json(next()))
                }
                _ => return Err(ProtocolError::invalid("Invalid invocation result kind.")),
            };
            HubMessage::Completion {
                headers,
                invocation_id,
                result,
            }
        }
        5 => {
            if count < 3 {
                return Err(invalid("CancelInvocation"));
            }
            HubMessage::CancelInvocation {
                headers: headers(next())?,
                invocation_id: string(next(), "invocationId")?,
            }
        }
        6 => HubMessage::Ping,
        7 => {
            if count < 2 {
                return Err(invalid("Close"));
            }
            let error = opt_string(next(), "error")?;
            let allow_reconnect = if count > 2 {
                match next() {
                    Mp::Boolean(b) => b,
                    _ => return Err(ProtocolError::invalid("Reading 'allowReconnect' failed.")),
                }
            } else {
                false
            };
            HubMessage::Close {
                error,
                allow_reconnect,
            }
        }
        8 | 9 => {
            if count < 2 {
                return Err(invalid(if ty == 8 { "Ack" } else { "Sequence" }));
            }
            let sequence_id = sequence_id(next())?;
            if ty == 8 {
                HubMessage::Ack { sequence_id }
            } else {
                HubMessage::Sequence { sequence_id }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(message))
}
