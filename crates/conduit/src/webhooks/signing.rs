//! Signing a webhook request, and verifying one (for receivers written in Rust
//! and for the tests).
//!
//! Two schemes are sent side by side on every request:
//! - `X-Conduit-Signature: sha256=<hex>`: HMAC-SHA256 of the body, keyed with the
//!   whole secret string (`whsec_…` included). This is what the guide's express
//!   receiver checks. It does not cover a timestamp, so it stays the same on
//!   every attempt of a delivery.
//! - Standard Webhooks: `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature: v1,<base64>`, an HMAC-SHA256 of `id.timestamp.body`
//!   keyed with the base64-decoded part of the secret after `whsec_`. Each
//!   attempt is signed afresh with its own timestamp.
//!
//! During a secret's grace period after rotation `webhook-signature` carries both
//! signatures (new first), space-separated, and `X-Conduit-Signature` uses the
//! new secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header names Conduit sets itself; custom headers may not replace them.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "user-agent",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "x-conduit-signature",
    "x-conduit-event",
    "x-conduit-delivery",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Whether `name` is a header Conduit sets (case-insensitive).
pub fn is_reserved(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
}

/// The secrets that sign one delivery: the current one, and during a grace
/// period the one it replaced.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub current: String,
    pub previous: Option<String>,
}

/// What a request is signed for.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// Id of this attempt (`X-Conduit-Delivery`).
    pub attempt_id: &'a str,
    /// Unix seconds of this attempt.
    pub timestamp: i64,
    pub body: &'a [u8],
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `sha256=<hex>` of the body, keyed with the whole secret string.
pub fn conduit_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(secret.as_bytes(), &[body])))
}

/// The Standard Webhooks key: the base64-decoded part after `whsec_` (the raw
/// bytes if that part is not base64).
fn standard_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec())
}

/// `v1,<base64>` over `id.timestamp.body`.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let mac = hmac(
        &standard_key(secret),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// Every header of one attempt: content type, agent, both signature schemes,
/// then the custom headers that do not collide with those.
pub fn headers(
    secrets: &Secrets,
    signed: &Signed<'_>,
    custom: Option<&Map<String, Value>>,
) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(10);

    // 1. Custom headers first, skipping any that name a reserved header.
    for (name, value) in custom.into_iter().flatten() {
        let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) else {
            continue;
        };
        if !is_reserved(name.as_str()) {
            map.insert(name, value);
        }
    }

    // 2. Conduit's own.
    let text = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    map.insert(USER_AGENT, text(&user_agent()));
    map.insert(
        "x-conduit-signature",
        text(&conduit_signature(&secrets.current, signed.body)),
    );
    map.insert("x-conduit-event", text(signed.event_type));
    map.insert("x-conduit-delivery", text(signed.attempt_id));

    // 3. Standard Webhooks.
    let mut signature = standard_signature(
        &secrets.current,
        signed.event_id,
        signed.timestamp,
        signed.body,
    );
    if let Some(previous) = &secrets.previous {
        signature.push(' ');
        signature.push_str(&standard_signature(
            previous,
            signed.event_id,
            signed.timestamp,
            signed.body,
        ));
    }
    map.insert("webhook-id", text(signed.event_id));
    map.insert("webhook-timestamp", text(&signed.timestamp.to_string()));
    map.insert("webhook-signature", text(&signature));
    map
}

/// `Conduit/<version>`.
pub fn user_agent() -> String {
    format!("Conduit/{}", env!("CARGO_PKG_VERSION"))
}

/// Why a request did not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("a signature header is missing or malformed")]
    Malformed,
    #[error("the timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Checks `X-Conduit-Signature` in constant time.
pub fn verify_conduit(secret: &str, header: &str, body: &[u8]) -> Result<(), VerifyError> {
    let given = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(VerifyError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| VerifyError::Mismatch)
}

/// Checks a Standard Webhooks signature: the timestamp within `tolerance_secs`
/// of `now`, and any `v1` signature in the header matching (constant time).
pub fn verify_standard(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::Malformed)?;
    if (now - ts).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let key = standard_key(secret);
    let matched = signature_header
        .split(' ')
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|given| {
            let mut mac = HmacSha256::new_from_slice(&key).expect("any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&given).is_ok()
        });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference vector (same result from the `standardwebhooks`
    // npm package's `Webhook.sign`).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_signature_matches_the_reference_vector() {
        assert_eq!(standard_signature(SECRET, ID, TS, BODY), EXPECTED);
        assert_eq!(
            verify_standard(SECRET, ID, "1614265330", EXPECTED, BODY, TS + 10, 300),
            Ok(())
        );
    }

    #[test]
    fn conduit_signature_keys_with_the_whole_secret() {
        // crypto.createHmac('sha256', SECRET).update(body).digest('hex') in Node.
        let body = br#"{"id":"evt_1","type":"image.completed"}"#;
        assert_eq!(
            conduit_signature(SECRET, body),
            "sha256=cae3e0f3d2cadc178509e9287e472e4925f282ad29fbde2baba46ff98a3fd074"
        );
        assert_eq!(
            verify_conduit(SECRET, &conduit_signature(SECRET, body), body),
            Ok(())
        );
        assert_eq!(
            verify_conduit("whsec_other", &conduit_signature(SECRET, body), body),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_conduit(SECRET, "md5=00", body),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn verification_refuses_tampering_and_stale_timestamps() {
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify_standard(SECRET, ID, "1614265330", EXPECTED, tampered, TS, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_standard(SECRET, ID, "1614265330", EXPECTED, BODY, TS + 301, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify_standard(SECRET, "msg_other", "1614265330", EXPECTED, BODY, TS, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn grace_period_carries_both_signatures_and_the_new_secret_leads() {
        let secrets = Secrets {
            current: "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3".into(),
            previous: Some(SECRET.into()),
        };
        let signed = Signed {
            event_id: ID,
            event_type: "image.completed",
            attempt_id: "att_1",
            timestamp: TS,
            body: BODY,
        };
        let map = headers(&secrets, &signed, None);
        let signature = map["webhook-signature"].to_str().unwrap();
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], EXPECTED);
        for secret in [&secrets.current, SECRET] {
            assert_eq!(
                verify_standard(secret, ID, "1614265330", signature, BODY, TS, 300),
                Ok(())
            );
        }
        let conduit = map["x-conduit-signature"].to_str().unwrap();
        assert_eq!(verify_conduit(&secrets.current, conduit, BODY), Ok(()));
    }

    #[test]
    fn custom_headers_never_replace_conduit_headers() {
        let secrets = Secrets {
            current: SECRET.into(),
            previous: None,
        };
        let signed = Signed {
            event_id: ID,
            event_type: "image.completed",
            attempt_id: "att_1",
            timestamp: TS,
            body: BODY,
        };
        let custom: Map<String, Value> = serde_json::from_str(
            r#"{"X-Tenant":"acme","Webhook-Signature":"v1,forged","content-type":"text/plain","bad header":"x"}"#,
        )
        .unwrap();
        let map = headers(&secrets, &signed, Some(&custom));
        assert_eq!(map["x-tenant"], "acme");
        assert_eq!(map["webhook-signature"], EXPECTED);
        assert_eq!(map["content-type"], "application/json");
        assert_eq!(map["webhook-id"], ID);
        assert_eq!(map["webhook-timestamp"], "1614265330");
        assert_eq!(map["x-conduit-event"], "image.completed");
        assert_eq!(map["x-conduit-delivery"], "att_1");
        assert!(map["user-agent"].to_str().unwrap().starts_with("Conduit/"));
        assert_eq!(map.get_all("webhook-signature").iter().count(), 1);
    }
}
