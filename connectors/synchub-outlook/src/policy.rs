//! How Graph's answers are read, and the per-mailbox quota.
//!
//! Outlook limits are per app and mailbox: 10,000 requests per 10 minutes
//! and 4 concurrent requests (<https://learn.microsoft.com/en-us/graph/throttling-limits>).
//! A throttled request answers 429 with `Retry-After` (seconds), which the
//! runtime honours; 503/504 may carry it too.

use reqwest::header::HeaderMap;
use serde_json::Value;
use synchub_http::{Assessment, QuotaConfig, ResponsePolicy, Verdict};

/// The default per-mailbox quota.
pub fn outlook_quota() -> QuotaConfig {
    QuotaConfig {
        requests: 10_000,
        per_secs: 600,
        burst: 100,
        daily_cap: None,
        max_concurrency: Some(4),
    }
}

/// Graph's error `code` (`error.code`).
pub fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_str().map(str::to_string)
}

/// Graph's error `message`.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| "no error message".into())
        .chars()
        .take(300)
        .collect()
}

/// True when the answer says a delta token is no longer usable.
pub fn is_resync(status: u16, body: &[u8]) -> bool {
    status == 410
        || (400..500).contains(&status)
            && matches!(
                error_code(body).as_deref(),
                Some("syncStateNotFound" | "resyncRequired" | "SyncStateNotFound")
            )
}

/// Graph's answers: 429 is a throttle, and so is a 503 that asks to wait.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphPolicy;

impl ResponsePolicy for GraphPolicy {
    fn assess(&self, status: u16, headers: &HeaderMap, _body: &[u8]) -> Assessment {
        let verdict = match status {
            429 => Verdict::Throttled { wait: None },
            503 | 504 if headers.contains_key("retry-after") => Verdict::Throttled { wait: None },
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
    fn sync_state_errors_are_resyncs() {
        let body = include_bytes!("../tests/fixtures/error_sync_state_not_found.json");
        assert!(is_resync(410, body));
        assert!(is_resync(400, body));
        assert!(is_resync(410, b""));
        assert!(!is_resync(
            404,
            br#"{"error":{"code":"ErrorItemNotFound"}}"#
        ));
    }

    #[test]
    fn throttles_and_auth_are_told_apart() {
        let p = GraphPolicy;
        let h = HeaderMap::new();
        assert_eq!(
            p.assess(429, &h, b"").verdict,
            Verdict::Throttled { wait: None }
        );
        assert_eq!(p.assess(401, &h, b"").verdict, Verdict::Auth);
        assert_eq!(p.assess(403, &h, b"").verdict, Verdict::Ok);
    }
}
