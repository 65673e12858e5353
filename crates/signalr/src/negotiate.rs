//! `POST {path}/negotiate`: creates a connection and lists the served transports.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{Method, StatusCode, header};
use serde::Serialize;

use crate::connection::ConnInner;
use crate::hub::Hub;
use crate::transport::{authenticate, query_params, text_response};

/// Highest negotiate version served: 1 separates the secret token from the public id.
const NEGOTIATE_VERSION: i64 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AvailableTransport {
    transport: &'static str,
    transfer_formats: &'static [&'static str],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NegotiateResponse {
    negotiate_version: i64,
    connection_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_token: Option<String>,
    available_transports: Vec<AvailableTransport>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    use_stateful_reconnect: bool,
}

/// A new random id: 16 random bytes, base64url without padding (as the official server).
pub(crate) fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn json_response(body: impl Serialize) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}

pub(crate) async fn handle(hub: Arc<Hub>, req: axum::extract::Request) -> Response {
    let (parts, _body) = req.into_parts();
    if parts.method != Method::POST {
        return text_response(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    hub.ensure_sweeper();
    let principal = match authenticate(&hub, &parts).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    if hub.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "Server is shutting down.");
    }
    let params = query_params(&parts.uri);
    let version = match params.get("negotiateversion") {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(v) if v > NEGOTIATE_VERSION => NEGOTIATE_VERSION,
            Ok(v) if v >= 0 => v,
            Ok(v) => {
                return json_response(serde_json::json!({
                    "error": format!("The client requested version '{v}', but the server does not support this version.")
                }));
            }
            Err(_) => {
                return json_response(serde_json::json!({
                    "error": "The client requested a non-integer protocol version."
                }));
            }
        },
    };
    let stateful = hub.options.stateful_reconnect
        && params
            .get("usestatefulreconnect")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let id = new_id();
    let token = if version >= 1 { new_id() } else { id.clone() };
    let owner = hub.handler.principal_id(&principal);
    let conn = Arc::new(ConnInner::new(
        id.clone(),
        token.clone(),
        principal,
        owner,
        stateful,
    ));
    hub.insert(conn);
    tracing::debug!(hub = %hub.name, connection_id = %id, negotiate_version = version, stateful, "negotiated");

    let t = &hub.options.transports;
    let mut available = Vec::new();
    if t.websockets {
        available.push(AvailableTransport {
            transport: "WebSockets",
            transfer_formats: &["Text", "Binary"],
        });
    }
    if t.sse {
        available.push(AvailableTransport {
            transport: "ServerSentEvents",
            transfer_formats: &["Text"],
        });
    }
    if t.long_polling {
        available.push(AvailableTransport {
            transport: "LongPolling",
            transfer_formats: &["Text", "Binary"],
        });
    }
    json_response(NegotiateResponse {
        negotiate_version: version,
        connection_id: id,
        connection_token: (version >= 1).then_some(token),
        available_transports: available,
        use_stateful_reconnect: stateful,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_url_safe_chars_and_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 22);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, new_id());
    }
}
