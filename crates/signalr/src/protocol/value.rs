//! Conversions between MessagePack values and `serde_json::Value`, the payload type the
//! application sees.

use base64::Engine;
use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};

/// Converts a JSON value for MessagePack encoding (integers stay integers, objects become
/// string-keyed maps).
pub(crate) fn json_to_msgpack(value: &Value) -> Mp {
    match value {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(a) => Mp::Array(a.iter().map(json_to_msgpack).collect()),
        Value::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), json_to_msgpack(v)))
                .collect(),
        ),
    }
}

/// Converts a decoded MessagePack value to JSON. Binary data and extension payloads become
/// base64 strings (the JSON convention for byte arrays); non-finite floats become `null`;
/// map keys that are not strings are rendered as text.
// LIMITATION: extension types (e.g. the MessagePack timestamp used for JavaScript `Date`)
// arrive as base64 of their raw bytes; decoding known extensions would lift this.
pub(crate) fn msgpack_to_json(value: Mp) -> Value {
    match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => {
            if let Some(u) = i.as_u64() {
                Value::Number(u.into())
            } else if let Some(s) = i.as_i64() {
                Value::Number(s.into())
            } else {
                Value::Null
            }
        }
        Mp::F32(f) => float(f64::from(f)),
        Mp::F64(f) => float(f),
        Mp::String(s) => match s.into_str() {
            Some(s) => Value::String(s),
            None => Value::Null,
        },
        Mp::Binary(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Mp::Array(a) => Value::Array(a.into_iter().map(msgpack_to_json).collect()),
        Mp::Map(m) => {
            let mut map = Map::with_capacity(m.len());
            for (k, v) in m {
                let key = match k {
                    Mp::String(s) => s.into_str().unwrap_or_default(),
                    other => other.to_string(),
                };
                map.insert(key, msgpack_to_json(v));
            }
            Value::Object(map)
        }
        Mp::Ext(_, data) => Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_json_values() {
        let v = json!({"a": [1, -2, 3.5, u64::MAX, i64::MIN, "s", null, true], "b": {}});
        assert_eq!(msgpack_to_json(json_to_msgpack(&v)), v);
    }

    #[test]
    fn converts_msgpack_only_types() {
        assert_eq!(msgpack_to_json(Mp::Binary(vec![1, 2, 3])), json!("AQID"));
        assert_eq!(msgpack_to_json(Mp::F64(f64::NAN)), Value::Null);
        assert_eq!(
            msgpack_to_json(Mp::Map(vec![(Mp::from(1), Mp::from(2))])),
            json!({"1": 2})
        );
        assert_eq!(msgpack_to_json(Mp::F32(1.5)), json!(1.5));
    }
}
