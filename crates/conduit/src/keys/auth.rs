//! Request authentication: virtual keys for the client API and hubs, the master
//! key for the admin API.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::model::VirtualKey;
use super::secrets::{hash_key, is_well_formed_key};
use crate::app::App;
use crate::error::ApiError;

/// The key value a request presents: `Authorization: Bearer`, then `X-API-Key`,
/// then (when `query_allowed`) the `access_token` query parameter that browsers
/// use for WebSockets and Server-Sent Events.
pub fn presented_key(parts: &Parts, query_allowed: bool) -> Option<String> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(value) = header("authorization") {
        let value = value.trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value);
        return Some(token.trim().to_string());
    }
    if let Some(value) = header("x-api-key") {
        return Some(value.trim().to_string());
    }
    if query_allowed {
        let query = parts.uri.query()?;
        for (name, value) in form_urlencoded_pairs(query) {
            if name == "access_token" {
                return Some(value);
            }
        }
    }
    None
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_decode(&s)
        };
        (decode(name), decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a presented virtual key; the answer for a refused key says why.
pub fn authenticate(app: &App, presented: Option<&str>) -> Result<Arc<VirtualKey>, ApiError> {
    let value = presented.filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_api_key",
            "You didn't provide an API key. Send it as `Authorization: Bearer condt_…` or `X-API-Key`.",
        )
    })?;
    if !is_well_formed_key(value) {
        return Err(ApiError::unauthorized(
            "invalid_api_key",
            "Malformed API key: a virtual key is `condt_` followed by 43 characters.",
        ));
    }
    let key = app
        .keys
        .by_hash(&hash_key(value))
        .ok_or_else(|| ApiError::unauthorized("invalid_api_key", "Incorrect API key provided."))?;
    if let Some((code, reason)) = key.refusal(crate::ids::now()) {
        return Err(ApiError::unauthorized(code, reason));
    }
    Ok(key)
}

/// The authenticated virtual key of a client request.
pub struct ClientKey(pub Arc<VirtualKey>);

impl FromRequestParts<Arc<App>> for ClientKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let presented = presented_key(parts, false);
        authenticate(app, presented.as_deref()).map(ClientKey)
    }
}

/// Proof that the request carries the master key.
pub struct AdminKey;

impl FromRequestParts<Arc<App>> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let presented = presented_key(parts, false).unwrap_or_default();
        if presented.is_empty() {
            return Err(ApiError::unauthorized(
                "missing_api_key",
                "The admin API needs the master key as `Authorization: Bearer …`.",
            ));
        }
        let matches: bool = hash_key(&presented).ct_eq(&app.master_key_hash).into();
        if matches {
            Ok(AdminKey)
        } else {
            Err(ApiError::unauthorized(
                "invalid_api_key",
                "Incorrect master key provided.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = axum::http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_are_found_where_clients_send_them() {
        let p = parts("/v1/tasks", &[("authorization", "Bearer condt_x")]);
        assert_eq!(presented_key(&p, false).as_deref(), Some("condt_x"));
        let p = parts("/v1/tasks", &[("x-api-key", "condt_y")]);
        assert_eq!(presented_key(&p, false).as_deref(), Some("condt_y"));
        let p = parts("/hubs/tasks?id=1&access_token=condt_%2Dz", &[]);
        assert_eq!(presented_key(&p, true).as_deref(), Some("condt_-z"));
        assert_eq!(presented_key(&p, false), None);
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
