//! Reading request bodies field by field, so every bad input is a 400 that
//! names the field (`param`) and says what it must be.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use crate::app::App;
use crate::error::{ApiError, from_rejection};

/// A JSON object body.
pub struct JsonBody(pub Map<String, Value>);

impl FromRequest<std::sync::Arc<App>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &std::sync::Arc<App>) -> Result<Self, ApiError> {
        check_json_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| from_rejection(r.status(), r.body_text()))?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// Refuses a body declared as something other than JSON (a form, plain text).
/// A request without `Content-Type` is still read as JSON.
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "unsupported_media_type",
        "The request body must be JSON sent with `Content-Type: application/json`.",
    )
    .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
}

/// Parses a JSON object, with an OpenAI-shaped error for anything else.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The request body is empty; send a JSON object.",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_json",
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!("The request body is not valid JSON: {e}."),
        )),
    }
}

/// Typed access to the fields of a body.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    /// Refuses any field not in `known`, so a misspelt setting (`rpm` for
    /// `rate_limit_rpm`) is a 400 instead of silently doing nothing.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|name| !known.contains(&name.as_str())) {
            None => Ok(()),
            Some(name) => Err(ApiError::invalid(
                name,
                "unknown_parameter",
                format!(
                    "Unrecognized field `{name}`; known fields: {}.",
                    known.join(", ")
                ),
            )),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An optional string of at most `max` characters.
    pub fn string(&self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() > max => Err(ApiError::invalid(
                name,
                "string_above_max_length",
                format!("`{name}` is longer than {max} characters."),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(type_error(name, "a string")),
        }
    }

    /// A required, non-blank string.
    pub fn required_string(&self, name: &str, max: usize) -> Result<String, ApiError> {
        match self.string(name, max)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ApiError::invalid(
                name,
                "empty_field",
                format!("`{name}` must not be empty."),
            )),
            None => Err(ApiError::invalid(
                name,
                "missing_field",
                format!("`{name}` is required."),
            )),
        }
    }

    /// An optional whole number within `range`.
    pub fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let number = match value {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            }),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(
                name,
                "invalid_value",
                format!(
                    "`{name}` must be a whole number from {} to {}.",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// An optional number within `range`.
    pub fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Option<f64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n.is_finite() && range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(
                name,
                "invalid_value",
                format!(
                    "`{name}` must be a number from {} to {}.",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// An optional boolean (`true`/`false`, also as strings from forms).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(type_error(name, "true or false")),
        }
    }

    /// An optional string from a fixed list.
    pub fn choice(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.string(name, 64)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(s) => Err(ApiError::invalid(
                name,
                "invalid_value",
                format!(
                    "`{s}` is not a valid `{name}`; use one of: {}.",
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// An optional JSON object.
    pub fn object(&self, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(map)) => Ok(Some(map)),
                _ => Err(type_error(name, "a JSON object")),
            },
            Some(_) => Err(type_error(name, "a JSON object")),
        }
    }
}

fn type_error(name: &str, what: &str) -> ApiError {
    ApiError::invalid(name, "invalid_type", format!("`{name}` must be {what}."))
}

/// Checks `metadata`: at most 16 string pairs, keys up to 64 characters, values up to 512.
pub fn metadata(fields: &Fields<'_>) -> Result<Option<Map<String, Value>>, ApiError> {
    let Some(map) = fields.object("metadata")? else {
        return Ok(None);
    };
    let bad = |message: String| ApiError::invalid("metadata", "invalid_metadata", message);
    if map.len() > 16 {
        return Err(bad(format!(
            "`metadata` has {} pairs; at most 16 are allowed.",
            map.len()
        )));
    }
    for (name, value) in &map {
        if name.is_empty() || name.chars().count() > 64 {
            return Err(bad(
                "`metadata` keys must be 1 to 64 characters long.".into()
            ));
        }
        match value {
            Value::String(s) if s.chars().count() <= 512 => {}
            Value::String(_) => {
                return Err(bad(format!(
                    "The `metadata` value of `{name}` is longer than 512 characters."
                )));
            }
            _ => {
                return Err(bad(format!(
                    "The `metadata` value of `{name}` must be a string."
                )));
            }
        }
    }
    Ok(Some(map))
}
