//! Request-level retry policy: which failures are retried, how long to wait
//! (capped exponential backoff with full jitter, never less than the
//! server's `Retry-After`), and how many attempts are allowed.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How a client retries failed requests.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Requests sent at most (the first one included).
    pub max_attempts: u32,
    /// Backoff before the second attempt, doubled each time (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// The longest single wait the client accepts (from `Retry-After` or a
    /// budget header); longer waits end the call with `Unavailable` carrying
    /// the wait, so the engine can reschedule instead of blocking.
    pub max_wait: Duration,
    /// Wait after a 429 that carries no `Retry-After` (some APIs document 60 s).
    pub default_throttle_wait: Option<Duration>,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_wait: Duration::from_secs(300),
            default_throttle_wait: None,
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter backoff before attempt `attempt + 1` (`attempt` counts from 1):
    /// a uniform draw from `0..=min(max_backoff, initial * 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }

    /// The wait before the next attempt: the server's demand if any
    /// (plus a little jitter so that waiting clients do not stampede),
    /// otherwise the jittered backoff.
    pub fn wait_before_retry(&self, attempt: u32, server_demand: Option<Duration>) -> Duration {
        match server_demand {
            Some(demand) => {
                let spread = (demand / 20).min(Duration::from_millis(500));
                let nanos = u64::try_from(spread.as_nanos()).unwrap_or(0);
                let jitter = if nanos == 0 {
                    0
                } else {
                    rand::thread_rng().gen_range(0..=nanos)
                };
                demand + Duration::from_nanos(jitter)
            }
            None => self.backoff(attempt),
        }
    }
}

/// Parses `Retry-After`: delta-seconds (fractions allowed, as some servers send
/// `2.0`) or an HTTP date, relative to `now`.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Duration::try_from_secs_f64(secs).ok();
        }
        return None;
    }
    let when = httpdate::parse_http_date(raw).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for attempt in 1..30 {
            assert!(p.backoff(attempt) <= Duration::from_secs(1));
        }
        assert!(p.backoff(1) <= Duration::from_millis(100));
    }

    #[test]
    fn retry_after_seconds_fraction_and_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2.0"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("47"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(47)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
    }
}
