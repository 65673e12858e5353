//! Decoding of one JSON hub message (the record-separator framing is handled by `json.rs`).

use serde_json::{Map, Value};

use super::{CompletionResult, Headers, HubMessage, ProtocolError};

fn missing(name: &str) -> ProtocolError {
    ProtocolError::invalid(format!("Missing required property '{name}'."))
}

fn wrong_type(name: &str, expected: &str) -> ProtocolError {
    ProtocolError::invalid(format!("Expected '{name}' to be of type {expected}."))
}

struct Fields(Map<String, Value>);

impl Fields {
    fn opt_string(&mut self, name: &str) -> Result<Option<String>, ProtocolError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(name, "String")),
        }
    }

    fn string(&mut self, name: &str) -> Result<String, ProtocolError> {
        self.opt_string(name)?.ok_or_else(|| missing(name))
    }

    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        match self.0.remove("headers") {
            None | Some(Value::Null) => Ok(Headers::new()),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    _ => Err(wrong_type("headers", "Object of Strings")),
                })
                .collect(),
            Some(_) => Err(wrong_type("headers", "Object")),
        }
    }

    fn arguments(&mut self) -> Result<Vec<Value>, ProtocolError> {
        match self.0.remove("arguments") {
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(wrong_type("arguments", "Array")),
            None => Err(missing("arguments")),
        }
    }

    fn stream_ids(&mut self) -> Result<Vec<String>, ProtocolError> {
        match self.0.remove("streamIds") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(wrong_type("streamIds", "Array of Strings")),
                })
                .collect(),
            Some(_) => Err(wrong_type("streamIds", "Array")),
        }
    }

    fn sequence_id(&mut self) -> Result<u64, ProtocolError> {
        match self.0.remove("sequenceId") {
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| wrong_type("sequenceId", "Integer")),
            Some(_) => Err(wrong_type("sequenceId", "Integer")),
            None => Err(missing("sequenceId")),
        }
    }
}

/// Decodes one JSON message (without separator); `None` for an unknown message type.
pub(super) fn parse_object(text: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| ProtocolError::invalid(format!("Error reading JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ProtocolError::invalid(
            "Unexpected JSON Token Type. Expected a JSON Object.",
        ));
    };
    let mut f = Fields(map);
    let ty = match f.0.remove("type") {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| wrong_type("type", "Integer"))?,
        Some(_) => return Err(wrong_type("type", "Integer")),
        None => return Err(missing("type")),
    };
    let message = match ty {
        1 => {
            let headers = f.headers()?;
            let invocation_id = f.opt_string("invocationId")?;
            HubMessage::Invocation {
                headers,
                invocation_id,
                target: f.string("target")?,
                arguments: f.arguments()?,
                stream_ids: f.stream_ids()?,
            }
        }
        2 => HubMessage::StreamItem {
            headers: f.headers()?,
            invocation_id: f.string("invocationId")?,
            item: f.0.remove("item").ok_or_else(|| missing("item"))?,
        },
        3 => {
            let headers = f.headers()?;
            let invocation_id = f.string("invocationId")?;
            let error = f.opt_string("error")?;
            let result = f.0.remove("result");
            let result = match (error, result) {
                (Some(_), Some(_)) => {
                    return Err(ProtocolError::invalid(
                        "The 'error' and 'result' properties are mutually exclusive.",
                    ));
                }
                (Some(e), None) => CompletionResult::Error(e),
                (None, Some(v)) => CompletionResult::Value(v),
                (None, None) => CompletionResult::Void,
            };
            HubMessage::Completion {
                headers,
                invocation_id,
                result,
            }
        }
        4 => {
            let headers = f.headers()?;
            HubMessage::StreamInvocation {
                headers,
                invocation_id: f.string("invocationId")?,
                target: f.string("target")?,
                arguments: f.arguments()?,
                stream_ids: f.stream_ids()?,
            }
        }
        5 => HubMessage::CancelInvocation {
            headers: f.headers()?,
            invocation_id: f.string("invocationId")?,
        },
        6 => HubMessage::Ping,
        7 => HubMessage::Close {
            error: f.opt_string("error")?,
            allow_reconnect: match f.0.remove("allowReconnect") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => b,
                Some(_) => return Err(wrong_type("allowReconnect", "Boolean")),
            },
        },
        8 => HubMessage::Ack {
            sequence_id: f.sequence_id()?,
        },
        9 => HubMessage::Sequence {
            sequence_id: f.sequence_id()?,
        },
        _ => return Ok(None),
    };
    Ok(Some(message))
}
