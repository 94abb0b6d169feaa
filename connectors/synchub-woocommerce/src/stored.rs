//! The stream position: `synchub_core::Watermark` (a `date_modified_gmt`
//! watermark, the ids inside the overlap window, a pass in progress whose
//! page token is the next page number and whose `until` is the store's
//! `Date` when the pass began), plus the shape stores written by earlier
//! releases hold.
//!
//! Until this release a pass in progress was `{since, page, started_at,
//! max_seen}` with the watermark moved only when the pass ended; between
//! passes the shape was already `Watermark`'s. An old pass is read as the
//! same position: the page it was about to read, the same lower bound, and
//! the watermark it would have reached so far (the newest time seen, never
//! past the pass's start), so an upgrade neither re-reads the store nor
//! skips a record.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use synchub_core::watermark::Pass;
use synchub_core::{ConnectorError, Cursor, Watermark};

use crate::error::WooError;

/// The position of one stream, from the engine's opaque cursor (`None`:
/// from the start), in this release's shape or the previous one's.
pub fn watermark(from: Option<&Cursor>) -> Result<Watermark, WooError> {
    let current = match Watermark::from_cursor(from, "woocommerce") {
        Ok(wm) => return Ok(wm),
        Err(ConnectorError::Protocol { message, .. }) => WooError::Protocol(message),
        Err(other) => WooError::Protocol(other.to_string()),
    };
    let Some(cursor) = from else {
        return Err(current);
    };
    match serde_json::from_value::<LegacyCursor>(cursor.0.clone()) {
        Ok(old) => Ok(old.into()),
        Err(_) => Err(current),
    }
}

/// The page a pass's token names (1 for the first page of a pass).
pub fn page_number(token: Option<&str>) -> Result<u32, WooError> {
    match token {
        None => Ok(1),
        Some(t) => t.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            WooError::Protocol(format!("the stored page `{t}` is not a page number"))
        }),
    }
}

/// The cursor of releases before the shared `Watermark`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyCursor {
    #[serde(default)]
    watermark: Option<DateTime<Utc>>,
    #[serde(default)]
    seen: BTreeMap<String, DateTime<Utc>>,
    #[serde(default)]
    pass: Option<LegacyPass>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyPass {
    since: Option<DateTime<Utc>>,
    page: u32,
    started_at: Option<DateTime<Utc>>,
    max_seen: Option<DateTime<Utc>>,
}

impl From<LegacyCursor> for Watermark {
    fn from(old: LegacyCursor) -> Self {
        let Some(pass) = old.pass else {
            return Watermark {
                watermark: old.watermark,
                seen: old.seen,
                pass: None,
            };
        };
        // The old pass kept its newest time aside; the shared one moves the
        // watermark as it goes, never past the pass's start.
        let reached = match (pass.max_seen, pass.started_at) {
            (Some(m), Some(s)) => Some(m.min(s)),
            (m, _) => m,
        };
        Watermark {
            watermark: old.watermark.max(reached),
            seen: old.seen,
            pass: Some(Pass {
                since: pass.since,
                page: pass.page.max(1).to_string(),
                until: pass.started_at,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_pass_of_the_previous_release_resumes_where_it_stopped() {
        let old = Cursor(serde_json::json!({
            "watermark": "2024-01-01T00:00:10Z",
            "seen": {"7": "2024-01-01T00:00:08Z", "9": "2024-01-01T00:02:00Z"},
            "pass": {
                "since": "2024-01-01T00:00:05Z",
                "page": 3,
                "started_at": "2024-01-01T00:01:00Z",
                "max_seen": "2024-01-01T00:02:00Z"
            }
        }));
        let wm = watermark(Some(&old)).expect("old shape");
        let req = wm.next_request(Duration::seconds(5));
        assert_eq!(req.since, Some(t("2024-01-01T00:00:05Z")));
        assert_eq!(page_number(req.page.as_deref()).expect("page"), 3);
        assert_eq!(req.until, Some(t("2024-01-01T00:01:00Z")));
        // the newest time seen, capped at the pass's start
        assert_eq!(wm.watermark, Some(t("2024-01-01T00:01:00Z")));
        assert_eq!(wm.seen.len(), 2);
        let again = watermark(Some(&wm.to_cursor())).expect("new shape");
        assert_eq!(again, wm);
    }

    #[test]
    fn page_tokens_are_page_numbers() {
        assert_eq!(page_number(None).expect("first"), 1);
        assert!(page_number(Some("0")).is_err());
        assert!(page_number(Some("abc")).is_err());
    }
}
