//! What an answer says about the credential's remaining allowance, read
//! from headers the connector names: a connector declares its API's budget
//! headers as [`BudgetHeader`] values and returns what they read from its
//! [`ResponsePolicy::budget`](crate::ResponsePolicy::budget); the runtime's
//! throttle mirrors them and holds requests back until they fit.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// One allowance an answer reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Budget {
    /// A leaky bucket holding `used` of `size` requests. It drains at the
    /// configured quota's rate, scaled by `size / burst` (a bucket twice
    /// the configured burst drains twice as fast). A 429 counts as full.
    Bucket {
        /// Requests in the bucket.
        used: f64,
        /// The bucket's size.
        size: f64,
    },
    /// A counting window: `remaining` requests until it resets.
    Window {
        /// Which window (the header it came from): each is mirrored apart.
        name: &'static str,
        /// Requests left in the window.
        remaining: i64,
        /// How long until the window resets (or, for a window whose reset
        /// the server does not say, until the allowance is probed again).
        resets_in: Duration,
    },
}

/// Where an API reports an allowance in its answers' headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetHeader {
    /// `used/size` in one header: a leaky bucket.
    UsedOfSize(&'static str),
    /// A remaining count in `remaining`, for a window that resets after
    /// the value of `reset` (seconds from now, or a Unix time) when that
    /// header is present, else after `period`.
    Remaining {
        /// The header holding the remaining count.
        remaining: &'static str,
        /// The header holding the reset, if the API sends one.
        reset: Option<&'static str>,
        /// The window's length when no reset header says otherwise.
        period: Duration,
    },
}

/// The common `X-RateLimit-Remaining` / `RateLimit-Remaining` headers with
/// their `…-Reset`, read for every API unless its policy says otherwise.
pub const RATELIMIT_HEADERS: &[BudgetHeader] = &[
    BudgetHeader::Remaining {
        remaining: "x-ratelimit-remaining",
        reset: Some("x-ratelimit-reset"),
        period: Duration::from_secs(60),
    },
    BudgetHeader::Remaining {
        remaining: "ratelimit-remaining",
        reset: Some("ratelimit-reset"),
        period: Duration::from_secs(60),
    },
];

impl BudgetHeader {
    /// What this header says in `headers`, when it is there and readable.
    pub fn read(&self, headers: &HeaderMap) -> Option<Budget> {
        match *self {
            BudgetHeader::UsedOfSize(name) => {
                let (used, size) = header_str(headers, name)?.split_once('/')?;
                let used: f64 = used.trim().parse().ok()?;
                let size: f64 = size.trim().parse().ok()?;
                (size > 0.0 && used.is_finite() && size.is_finite())
                    .then_some(Budget::Bucket { used, size })
            }
            BudgetHeader::Remaining {
                remaining,
                reset,
                period,
            } => {
                let left: i64 = header_str(headers, remaining)?.parse().ok()?;
                let resets_in = reset
                    .and_then(|r| header_f64(headers, r))
                    .map_or(period, reset_delay);
                Some(Budget::Window {
                    name: remaining,
                    remaining: left,
                    resets_in,
                })
            }
        }
    }
}

/// Everything `declared` reads from `headers`.
pub fn read_budget(headers: &HeaderMap, declared: &[BudgetHeader]) -> Vec<Budget> {
    declared.iter().filter_map(|h| h.read(headers)).collect()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    header_str(headers, name)?
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

/// A reset is either seconds from now or a Unix timestamp.
fn reset_delay(value: f64) -> Duration {
    if value > 1_000_000_000.0 {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Duration::try_from_secs_f64((value - now).max(0.0)).unwrap_or_default()
    } else {
        Duration::try_from_secs_f64(value.max(0.0)).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn used_of_size_reads_a_bucket_and_refuses_nonsense() {
        let decl = BudgetHeader::UsedOfSize("x-call-limit");
        assert_eq!(
            decl.read(&headers(&[("x-call-limit", "32/40")])),
            Some(Budget::Bucket {
                used: 32.0,
                size: 40.0
            })
        );
        assert_eq!(decl.read(&headers(&[("x-call-limit", "32/0")])), None);
        assert_eq!(decl.read(&headers(&[("x-call-limit", "32")])), None);
        assert_eq!(decl.read(&HeaderMap::new()), None);
    }

    #[test]
    fn remaining_uses_the_reset_header_or_the_period() {
        let decl = BudgetHeader::Remaining {
            remaining: "x-left",
            reset: Some("x-reset"),
            period: Duration::from_secs(60),
        };
        let read = |pairs| decl.read(&headers(pairs));
        assert_eq!(
            read(&[("x-left", "4"), ("x-reset", "7")]),
            Some(Budget::Window {
                name: "x-left",
                remaining: 4,
                resets_in: Duration::from_secs(7)
            })
        );
        assert_eq!(
            read(&[("x-left", "0")]),
            Some(Budget::Window {
                name: "x-left",
                remaining: 0,
                resets_in: Duration::from_secs(60)
            })
        );
        assert_eq!(read(&[("x-left", "many")]), None);
    }

    #[test]
    fn the_common_headers_are_read_by_default() {
        let got = read_budget(
            &headers(&[("x-ratelimit-remaining", "9"), ("x-ratelimit-reset", "30")]),
            RATELIMIT_HEADERS,
        );
        assert_eq!(
            got,
            vec![Budget::Window {
                name: "x-ratelimit-remaining",
                remaining: 9,
                resets_in: Duration::from_secs(30)
            }]
        );
    }
}
