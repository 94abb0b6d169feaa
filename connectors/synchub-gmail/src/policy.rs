//! How Google's answers are read, and the per-user quota.
//!
//! Gmail counts *quota units* per user (history.list 2, messages.list and
//! messages.get 5, getProfile 1; <https://developers.google.com/gmail/api/reference/quota>).
//! The runtime's [`QuotaConfig`] counts requests, so a request is charged at
//! the cost of the calls that dominate a sync (5 units): 15,000 units per
//! user per minute become 3,000 requests per minute, which keeps the
//! cheaper calls safely inside the budget. [`units`] gives each method's
//! documented cost for the connector's own accounting.
//!
//! Throttles are 429 and 403 with reason `rateLimitExceeded`,
//! `userRateLimitExceeded` or `dailyLimitExceeded` — a 403 that must not be
//! read as "credentials refused"
//! (<https://developers.google.com/workspace/gmail/api/guides/handle-errors>).

use reqwest::header::HeaderMap;
use serde_json::Value;
use synchub_http::{Assessment, QuotaConfig, ResponsePolicy, Verdict};

/// Units Gmail charges per user per minute (2023–2025 documentation).
pub const USER_UNITS_PER_MINUTE: u32 = 15_000;
/// The units every request is charged at (messages.get / messages.list).
pub const UNITS_PER_REQUEST: u32 = 5;

/// A Gmail API method, for unit accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// users.getProfile.
    GetProfile,
    /// users.messages.list.
    MessagesList,
    /// users.messages.get.
    MessagesGet,
    /// users.history.list.
    HistoryList,
    /// users.labels.list.
    LabelsList,
}

/// The documented unit cost of `m`.
pub fn units(m: Method) -> u32 {
    match m {
        Method::GetProfile | Method::LabelsList => 1,
        Method::HistoryList => 2,
        Method::MessagesList | Method::MessagesGet => 5,
    }
}

/// The default per-user quota, in requests (see the module comment).
pub fn gmail_quota() -> QuotaConfig {
    QuotaConfig::per_minute(
        USER_UNITS_PER_MINUTE / UNITS_PER_REQUEST,
        250 / UNITS_PER_REQUEST,
    )
    .with_max_concurrency(4)
}

/// The People API's default: 90 reads per minute per user is the
/// documented "Read requests per minute per user" quota.
pub fn people_quota() -> QuotaConfig {
    QuotaConfig::per_minute(90, 10).with_max_concurrency(1)
}

/// Google's answers: 429 and rate-limit 403s are throttles.
#[derive(Debug, Clone, Copy, Default)]
pub struct GooglePolicy;

/// The `reason` of a Google error body (`error.errors[].reason` or
/// `error.details[].reason`).
pub fn error_reasons(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let e = &v["error"];
    let mut out = Vec::new();
    for key in ["errors", "details"] {
        if let Some(items) = e[key].as_array() {
            out.extend(
                items
                    .iter()
                    .filter_map(|i| i["reason"].as_str().map(str::to_string)),
            );
        }
    }
    out
}

/// True for Google's rate-limit reasons.
pub fn is_rate_reason(reason: &str) -> bool {
    matches!(
        reason,
        "rateLimitExceeded"
            | "userRateLimitExceeded"
            | "dailyLimitExceeded"
            | "RATE_LIMIT_EXCEEDED"
    )
}

impl ResponsePolicy for GooglePolicy {
    fn assess(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Assessment {
        let verdict = match status {
            429 => Verdict::Throttled { wait: None },
            403 if error_reasons(body).iter().any(|r| is_rate_reason(r)) => {
                Verdict::Throttled { wait: None }
            }
            401 => Verdict::Auth,
            500 | 502..=504 => Verdict::Transient,
            _ => Verdict::Ok,
        };
        Assessment {
            verdict,
            cost: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_403_is_a_throttle_and_other_403_is_not() {
        let p = GooglePolicy;
        let rate = include_bytes!("../tests/fixtures/error_403_rate.json");
        assert_eq!(
            p.assess(403, &HeaderMap::new(), rate).verdict,
            Verdict::Throttled { wait: None }
        );
        let denied = br#"{"error":{"code":403,"errors":[{"reason":"insufficientPermissions"}]}}"#;
        assert_eq!(
            p.assess(403, &HeaderMap::new(), denied).verdict,
            Verdict::Ok
        );
        assert_eq!(p.assess(401, &HeaderMap::new(), b"").verdict, Verdict::Auth);
    }

    #[test]
    fn every_request_is_charged_at_least_its_method_cost() {
        for m in [
            Method::GetProfile,
            Method::MessagesList,
            Method::MessagesGet,
            Method::HistoryList,
            Method::LabelsList,
        ] {
            assert!(units(m) <= UNITS_PER_REQUEST);
        }
        assert_eq!(
            gmail_quota().requests * UNITS_PER_REQUEST,
            USER_UNITS_PER_MINUTE
        );
    }
}
