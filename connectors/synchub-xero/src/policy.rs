//! Xero's limits and how its answers are read.
//! <https://developer.xero.com/documentation/guides/oauth2/limits>
//!
//! Per tenant and app: 60 calls a minute, 5,000 a day, 5 at once. A 429
//! names the limit in `X-Rate-Limit-Problem`: a minute-limit answer is
//! waited out by the runtime (`Retry-After`); a day-limit answer is handed
//! to the connector, which pauses this connection through `Deps::wait`
//! (a retry error naming when it resumes) while other tenants go on.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::header::HeaderName;
use synchub_http::{Assessment, Budget, IdempotencyKey, QuotaConfig, ResponsePolicy, Verdict};

/// 60 a minute (burst 5), 5,000 a day, 5 concurrent.
pub fn default_quota() -> QuotaConfig {
    QuotaConfig::per_minute(60, 5)
        .with_daily_cap(5000)
        .with_max_concurrency(5)
}

/// The limit a 429 names (`minute`, `day`, `concurrent`, `appminute`), lower-cased.
pub fn rate_problem(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-rate-limit-problem")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
}

/// `Retry-After` in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Reads Xero answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct XeroPolicy;

impl ResponsePolicy for XeroPolicy {
    fn assess(&self, status: u16, headers: &HeaderMap, _body: &[u8]) -> Assessment {
        let verdict = match status {
            // The day limit is the connector's to report (it can mean hours).
            429 if rate_problem(headers).as_deref() == Some("day") => Verdict::Ok,
            429 => Verdict::Throttled {
                wait: retry_after(headers),
            },
            401 => Verdict::Auth,
            500 | 502..=504 => Verdict::Transient,
            _ => Verdict::Ok,
        };
        Assessment {
            verdict,
            cost: None,
        }
    }

    /// The minute and day limits ([`crate::throttle::BUDGET_HEADERS`]).
    fn budget(&self, _status: u16, headers: &HeaderMap) -> Vec<Budget> {
        synchub_http::budget::read_budget(headers, crate::throttle::BUDGET_HEADERS)
    }
}

/// The most characters Xero keeps of an `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 128;

/// A write's `Idempotency-Key` header (a repeat within 24 hours returns
/// the first answer), cut to [`IDEMPOTENCY_KEY_MAX`] characters.
/// <https://developer.xero.com/documentation/guides/idempotent-requests/idempotency>
pub fn idempotency_key(key: &str) -> IdempotencyKey {
    let value = match key.char_indices().nth(IDEMPOTENCY_KEY_MAX) {
        Some((cut, _)) => key[..cut].to_string(),
        None => key.to_string(),
    };
    IdempotencyKey::Header {
        name: HeaderName::from_static("idempotency-key"),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_429_is_a_minute_throttle_with_its_wait() {
        let path = format!(
            "{}/tests/fixtures/error_429.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        let mut h = HeaderMap::new();
        for (k, v) in f["_headers"].as_object().expect("headers") {
            h.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.as_str().expect("value").parse().expect("value"),
            );
        }
        assert_eq!(
            XeroPolicy.assess(429, &h, b"").verdict,
            Verdict::Throttled {
                wait: Some(Duration::from_secs(47))
            }
        );
        h.insert("x-rate-limit-problem", "Day".parse().expect("value"));
        assert_eq!(XeroPolicy.assess(429, &h, b"").verdict, Verdict::Ok);
    }
}
