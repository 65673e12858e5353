//! Identifiers and timestamps: time-ordered ids (UUID v7) with a readable prefix,
//! random capability tokens, and the one timestamp format used everywhere.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;

/// A new id such as `task_0193a1…`: the prefix, then a UUID v7 in hex, so ids sort
/// by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// `bytes` random bytes from the operating system's generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The current time.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// UTC with milliseconds and a `Z`: `2026-12-04T10:00:00.123Z`. Sorts as text.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp into UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_time_ordered() {
        let a = new_id("task");
        let b = new_id("task");
        assert!(a.starts_with("task_") && a.len() == 37, "{a}");
        assert!(a < b);
    }

    #[test]
    fn tokens_have_the_requested_entropy() {
        assert_eq!(random_token(32).len(), 43);
        assert_ne!(random_token(16), random_token(16));
    }

    #[test]
    fn times_round_trip_in_millisecond_utc() {
        let text = "2026-12-04T10:00:00.123Z";
        assert_eq!(format_time(parse_time(text).unwrap()), text);
        assert!(parse_time("yesterday").is_none());
    }
}
