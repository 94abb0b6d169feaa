//! The stream position: `synchub_core::Watermark` (an `updatedAt`
//! watermark, the ids inside the overlap window, and a pass in progress
//! whose page token is Shopify's `endCursor`), plus the shape stores written
//! by earlier releases hold.
//!
//! Until this release a pass in progress kept its `endCursor` under
//! `pass.after`; everything else had the shape `Watermark` has. Such a
//! cursor is read as the same position, so an upgrade neither re-reads the
//! shop nor skips a record.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use synchub_core::watermark::Pass;
use synchub_core::{Cursor, Watermark};

use crate::error::{ShopifyError, HOST};

/// The position of one stream, from the engine's opaque cursor (`None`:
/// from the start), in this release's shape or the previous one's.
pub fn watermark(from: Option<&Cursor>) -> Result<Watermark, ShopifyError> {
    let current = match Watermark::from_cursor(from, HOST) {
        Ok(wm) => return Ok(wm),
        Err(e) => ShopifyError::Protocol(match e {
            synchub_core::ConnectorError::Protocol { message, .. } => message,
            other => other.to_string(),
        }),
    };
    let Some(cursor) = from else {
        return Err(current);
    };
    match serde_json::from_value::<LegacyCursor>(cursor.0.clone()) {
        Ok(old) => Ok(old.into()),
        Err(_) => Err(current),
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
    after: String,
}

impl From<LegacyCursor> for Watermark {
    fn from(old: LegacyCursor) -> Self {
        Watermark {
            watermark: old.watermark,
            seen: old.seen,
            pass: old.pass.map(|p| Pass {
                since: p.since,
                page: p.after,
                until: None,
            }),
        }
    }
}

/// The search filter of a pass whose lower bound is `since`, e.g.
/// `updated_at:>='2024-01-02T14:24:04Z'`.
pub fn updated_since(since: DateTime<Utc>) -> String {
    format!("updated_at:>='{}'", format_time(since))
}

/// Formats a time as Shopify's search syntax expects (`2024-01-02T14:24:09Z`).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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
    fn a_cursor_of_the_previous_release_is_the_same_position() {
        // A pass in progress, as the previous release stored it.
        let old = Cursor(serde_json::json!({
            "watermark": "2024-01-01T00:00:10Z",
            "seen": {"gid://shopify/Customer/7": "2024-01-01T00:00:08Z"},
            "pass": {"since": "2024-01-01T00:00:05Z", "after": "eyJsYXN0X2lkIjo3fQ=="}
        }));
        let wm = watermark(Some(&old)).expect("old shape");
        let req = wm.next_request(Duration::seconds(5));
        assert_eq!(req.since, Some(t("2024-01-01T00:00:05Z")));
        assert_eq!(req.page.as_deref(), Some("eyJsYXN0X2lkIjo3fQ=="));
        assert_eq!(wm.seen.len(), 1);
        // Written back in the shared shape, it reads the same.
        let again = watermark(Some(&wm.to_cursor())).expect("new shape");
        assert_eq!(again, wm);
        // Between passes both shapes are one.
        let idle = Cursor(serde_json::json!({"watermark": "2024-01-01T00:00:10Z", "seen": {}}));
        let idle = watermark(Some(&idle)).expect("idle");
        assert_eq!(
            idle.next_request(Duration::seconds(5))
                .since
                .map(updated_since),
            Some("updated_at:>='2024-01-01T00:00:05Z'".to_string())
        );
    }

    #[test]
    fn a_foreign_cursor_is_refused_naming_shopify() {
        let foreign = Cursor(serde_json::json!({"historyId": "12"}));
        let e = watermark(Some(&foreign)).expect_err("foreign");
        assert!(e.to_string().contains("shopify"), "{e}");
    }
}
