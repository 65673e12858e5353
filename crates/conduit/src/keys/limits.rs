//! Per-key rate limits: requests per minute and per day, each a GCRA bucket
//! (`governor`) whose size is the key's limit, refilled evenly over the window.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::model::VirtualKey;

/// A refusal: which window and how long until a request would pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    pub limit: u32,
    /// `minute` or `day`.
    pub window: &'static str,
    pub retry_after: Duration,
}

struct KeyLimiters {
    rpm: Option<(u32, DefaultDirectRateLimiter)>,
    rpd: Option<(u32, DefaultDirectRateLimiter)>,
}

// LIMITATION: the windows are token buckets refilled evenly (a day's quota over
// 24 hours), not calendar windows, and only submits are counted. The buckets
// live in memory, so a restart refills them (a day's quota starts over); a
// sliding-window counter in the store would give exact calendar limits that
// survive restarts and hold across instances.

/// Rate limiters of every key, created on first use and rebuilt when a key's limits change.
#[derive(Default)]
pub struct RateLimits {
    limiters: Mutex<HashMap<String, Arc<KeyLimiters>>>,
}

fn limiter(limit: u32, window: Duration) -> Option<(u32, DefaultDirectRateLimiter)> {
    let burst = NonZeroU32::new(limit)?;
    let quota = Quota::with_period(window / limit)?.allow_burst(burst);
    Some((limit, RateLimiter::direct(quota)))
}

impl RateLimits {
    /// Counts one request of `key`; `Err` if a window is full.
    pub fn check(&self, key: &VirtualKey) -> Result<(), Limited> {
        if key.rate_limit_rpm.is_none() && key.rate_limit_rpd.is_none() {
            return Ok(());
        }
        let limiters = {
            let mut map = self.limiters.lock();
            let current = map.get(&key.id).filter(|l| {
                l.rpm.as_ref().map(|r| r.0) == key.rate_limit_rpm
                    && l.rpd.as_ref().map(|r| r.0) == key.rate_limit_rpd
            });
            match current {
                Some(l) => l.clone(),
                None => {
                    let fresh = Arc::new(KeyLimiters {
                        rpm: key
                            .rate_limit_rpm
                            .and_then(|l| limiter(l, Duration::from_secs(60))),
                        rpd: key
                            .rate_limit_rpd
                            .and_then(|l| limiter(l, Duration::from_secs(86_400))),
                    });
                    map.insert(key.id.clone(), fresh.clone());
                    fresh
                }
            }
        };
        for (window, entry) in [("minute", &limiters.rpm), ("day", &limiters.rpd)] {
            if let Some((limit, limiter)) = entry
                && let Err(not_until) = limiter.check()
            {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(Limited {
                    limit: *limit,
                    window,
                    retry_after: wait,
                });
            }
        }
        Ok(())
    }

    /// Forgets a deleted key.
    pub fn forget(&self, key_id: &str) {
        self.limiters.lock().remove(key_id);
    }
}

/// Remembers when each key's `key.rate_limited` event was last emitted, so a
/// client hammering past its limit produces one event a minute, not one a request.
#[derive(Default)]
pub struct Announcements {
    last: Mutex<HashMap<String, std::time::Instant>>,
}

impl Announcements {
    /// Whether an event should be emitted for `key_id` now (and records it).
    pub fn should_announce(&self, key_id: &str) -> bool {
        let mut last = self.last.lock();
        let now = std::time::Instant::now();
        match last.get(key_id) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
            _ => {
                last.insert(key_id.to_string(), now);
                true
            }
        }
    }
}

/// Replays (`POST /v1/events/{id}/redeliver` and delivery retries) a key may
/// ask for, whatever its own limits: each replay can write a delivery per
/// endpoint (up to 500), so they are capped for every key.
pub struct ReplayLimits {
    limiter: governor::DefaultKeyedRateLimiter<String>,
}

/// Replays per minute for one key, and how many may come at once.
const REPLAYS_PER_MINUTE: u32 = 60;
const REPLAY_BURST: u32 = 20;

impl Default for ReplayLimits {
    fn default() -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(REPLAYS_PER_MINUTE).expect("non-zero"))
            .allow_burst(NonZeroU32::new(REPLAY_BURST).expect("non-zero"));
        ReplayLimits {
            limiter: RateLimiter::keyed(quota),
        }
    }
}

impl ReplayLimits {
    /// `Ok` if `key_id` may replay now; otherwise how long until it may.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        self.limiter
            .check_key(&key_id.to_string())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::model::VirtualKey;

    fn key(rpm: Option<u32>) -> VirtualKey {
        VirtualKey {
            id: "key_1".into(),
            name: "k".into(),
            key_hash: [0; 32],
            key_prefix: "condt_".into(),
            enabled: true,
            disabled_reason: None,
            expires_at: None,
            allowed_models: vec![],
            rate_limit_rpm: rpm,
            rate_limit_rpd: None,
            budget: None,
            spend: 0.0,
            metadata: Default::default(),
            webhook_secret: "whsec_x".into(),
            previous_webhook_secret: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_full_minute_window_refuses_with_a_wait() {
        let limits = RateLimits::default();
        let k = key(Some(3));
        for _ in 0..3 {
            assert!(limits.check(&k).is_ok());
        }
        let refused = limits.check(&k).unwrap_err();
        assert_eq!(refused.window, "minute");
        assert!(refused.retry_after > Duration::from_secs(1));
        assert!(limits.check(&key(None)).is_ok());
    }

    #[test]
    fn announcements_are_throttled() {
        let a = Announcements::default();
        assert!(a.should_announce("key_1"));
        assert!(!a.should_announce("key_1"));
        assert!(a.should_announce("key_2"));
    }
}
