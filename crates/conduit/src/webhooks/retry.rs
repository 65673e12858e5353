//! When to try a failed delivery again.
//!
//! The first attempt is made at once. After the n-th failed attempt the next one
//! waits the n-th delay of the schedule (default 5 s, 30 s, 2 min, 10 min,
//! 30 min, 1 h, 3 h, 6 h, 12 h, 24 h), spread by ±10 % so that a receiver that
//! comes back is not hit by every retry at the same instant. A `Retry-After`
//! answer (seconds or an HTTP date) replaces that delay, capped. Once the
//! schedule is used up the delivery is dead.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// The retry schedule and the cap on a receiver's own `Retry-After`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    pub retry_after_cap: Duration,
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Try again after this delay.
    Retry(Duration),
    /// The schedule is used up: the delivery is dead.
    GiveUp,
}

impl RetryPolicy {
    /// The decision after `attempts` attempts (this one included) all failed.
    /// `jitter` is a factor near 1 (see [`jitter`]); it does not apply to a
    /// receiver's own `Retry-After`.
    pub fn after_failure(&self, attempts: u32, retry_after: Option<Duration>, jitter: f64) -> Next {
        let Some(base) = self.schedule.get(attempts.saturating_sub(1) as usize) else {
            return Next::GiveUp;
        };
        match retry_after {
            Some(asked) => Next::Retry(asked.min(self.retry_after_cap)),
            None => Next::Retry(base.mul_f64(jitter.clamp(0.5, 1.5))),
        }
    }
}

/// A random factor in [0.9, 1.1].
pub fn jitter() -> f64 {
    rand::rng().random_range(0.9..=1.1)
}

/// Parses `Retry-After`: delay seconds, or an HTTP date (a past date means now).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: [5, 30, 120].map(Duration::from_secs).to_vec(),
            retry_after_cap: Duration::from_secs(3600),
        }
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let p = policy();
        assert_eq!(
            p.after_failure(1, None, 1.0),
            Next::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            p.after_failure(2, None, 1.0),
            Next::Retry(Duration::from_secs(30))
        );
        assert_eq!(
            p.after_failure(3, None, 1.0),
            Next::Retry(Duration::from_secs(120))
        );
        assert_eq!(p.after_failure(4, None, 1.0), Next::GiveUp);
        assert_eq!(
            p.after_failure(40, Some(Duration::from_secs(1)), 1.0),
            Next::GiveUp
        );
    }

    #[test]
    fn jitter_spreads_by_ten_percent() {
        let p = policy();
        for _ in 0..200 {
            let factor = jitter();
            assert!((0.9..=1.1).contains(&factor));
            let Next::Retry(delay) = p.after_failure(2, None, factor) else {
                panic!("expected a retry");
            };
            assert!(delay >= Duration::from_secs(27) && delay <= Duration::from_secs(33));
        }
    }

    #[test]
    fn retry_after_replaces_the_delay_up_to_the_cap() {
        let p = policy();
        let asked = Some(Duration::from_secs(7));
        assert_eq!(
            p.after_failure(1, asked, 1.1),
            Next::Retry(Duration::from_secs(7))
        );
        let huge = Some(Duration::from_secs(86_400));
        assert_eq!(
            p.after_failure(1, huge, 1.0),
            Next::Retry(Duration::from_secs(3600))
        );
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
