//! The incremental cursor of one Shopify stream (customers or orders).
//!
//! A pass lists records with `sortKey: UPDATED_AT` and
//! `query: "updated_at:>='<watermark - overlap>'"`, page by page (`after`).
//! The overlap catches records whose `updatedAt` lands just before the
//! watermark but that became visible late; the cursor keeps every id seen in
//! the overlap window with the `updatedAt` it had, so the overlap is
//! de-duplicated exactly: a record is emitted again only if it changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use synchub_core::Cursor;

use crate::error::ShopifyError;

/// Position in one stream; stored by the engine as opaque JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamCursor {
    /// The highest `updatedAt` delivered so far.
    #[serde(default)]
    pub watermark: Option<DateTime<Utc>>,
    /// Ids delivered with `updatedAt` inside `[watermark - overlap, watermark]`.
    #[serde(default)]
    pub seen: BTreeMap<String, DateTime<Utc>>,
    /// A pass in progress, if the last page was not the last one.
    #[serde(default)]
    pub pass: Option<Pass>,
}

/// A listing pass in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pass {
    /// The lower bound of this pass's filter (`None`: full listing).
    pub since: Option<DateTime<Utc>>,
    /// Shopify's `endCursor` of the last page read.
    pub after: String,
}

/// What the next request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    /// The search filter, e.g. `updated_at:>='2024-01-02T14:24:04Z'`.
    pub query: Option<String>,
    /// The `after` argument.
    pub after: Option<String>,
    /// The filter's lower bound, kept in the pass.
    pub since: Option<DateTime<Utc>>,
}

impl StreamCursor {
    /// Reads the engine's opaque cursor (`None`: start from scratch).
    pub fn from_cursor(cursor: Option<&Cursor>) -> Result<Self, ShopifyError> {
        match cursor {
            None => Ok(StreamCursor::default()),
            Some(c) => serde_json::from_value(c.0.clone())
                .map_err(|e| ShopifyError::Protocol(format!("stored cursor is not ours: {e}"))),
        }
    }

    /// The opaque form the engine stores.
    pub fn to_cursor(&self) -> Cursor {
        Cursor(serde_json::to_value(self).unwrap_or_default())
    }

    /// The filter and `after` of the next page.
    pub fn next_request(&self, overlap: Duration) -> PageRequest {
        let since = match &self.pass {
            Some(pass) => pass.since,
            None => self.watermark.map(|w| w - overlap),
        };
        PageRequest {
            query: since.map(|s| format!("updated_at:>='{}'", format_time(s))),
            after: self.pass.as_ref().map(|p| p.after.clone()),
            since,
        }
    }

    /// Records one listed item; false when it is an exact repeat of one
    /// already delivered (same id, same `updatedAt`).
    pub fn admit(&mut self, id: &str, updated_at: DateTime<Utc>, overlap: Duration) -> bool {
        if self.seen.get(id) == Some(&updated_at) {
            return false;
        }
        let watermark = match self.watermark {
            Some(w) if w >= updated_at => w,
            _ => updated_at,
        };
        self.watermark = Some(watermark);
        let floor = watermark - overlap;
        if updated_at >= floor {
            self.seen.insert(id.to_string(), updated_at);
        }
        self.seen.retain(|_, t| *t >= floor);
        true
    }

    /// Closes a page: keeps the pass open while Shopify has more pages.
    pub fn end_page(&mut self, req: &PageRequest, end_cursor: Option<String>, has_next: bool) {
        self.pass = match (has_next, end_cursor) {
            (true, Some(after)) => Some(Pass {
                since: req.since,
                after,
            }),
            _ => None,
        };
    }
}

/// Formats a time as Shopify's search syntax expects (`2024-01-02T14:24:09Z`).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn overlap_is_deduplicated_exactly() {
        let overlap = Duration::seconds(5);
        let mut c = StreamCursor::default();
        assert_eq!(c.next_request(overlap).query, None);
        assert!(c.admit("a", t("2024-01-01T00:00:00Z"), overlap));
        assert!(c.admit("b", t("2024-01-01T00:00:08Z"), overlap));
        assert!(c.admit("c", t("2024-01-01T00:00:10Z"), overlap));
        // a fell out of the window, b and c are kept
        assert_eq!(c.seen.len(), 2);
        let req = c.next_request(overlap);
        assert_eq!(
            req.query.as_deref(),
            Some("updated_at:>='2024-01-01T00:00:05Z'")
        );
        // the next pass re-lists b and c unchanged: not emitted again
        assert!(!c.admit("b", t("2024-01-01T00:00:08Z"), overlap));
        assert!(!c.admit("c", t("2024-01-01T00:00:10Z"), overlap));
        // a late arrival inside the overlap is emitted, and so is a real change
        assert!(c.admit("d", t("2024-01-01T00:00:09Z"), overlap));
        assert!(c.admit("b", t("2024-01-01T00:00:11Z"), overlap));
        assert_eq!(c.watermark, Some(t("2024-01-01T00:00:11Z")));
    }

    #[test]
    fn pass_keeps_its_filter_until_the_last_page() {
        let overlap = Duration::seconds(5);
        let mut c = StreamCursor {
            watermark: Some(t("2024-01-01T00:00:10Z")),
            ..Default::default()
        };
        let req = c.next_request(overlap);
        c.admit("x", t("2024-01-02T00:00:00Z"), overlap);
        c.end_page(&req, Some("abc".into()), true);
        let again = c.next_request(overlap);
        assert_eq!(again.query, req.query);
        assert_eq!(again.after.as_deref(), Some("abc"));
        c.end_page(&again, Some("def".into()), false);
        assert!(c.pass.is_none());
        let back = StreamCursor::from_cursor(Some(&c.to_cursor())).expect("round trip");
        assert_eq!(back, c);
    }
}
