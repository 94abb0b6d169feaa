//! The cursor of one WooCommerce stream.
//!
//! Orders: a pass lists `modified_after = watermark - overlap` (with
//! `dates_are_gmt=true`), `orderby=id&order=asc`, page by page. With a fixed
//! lower bound the listed set only grows while we page, so no order is
//! skipped; repeats are dropped by the ids remembered in the overlap window.
//! Customers have no date filter in the REST API: every pass is a full scan
//! (`orderby=id`), and only customers whose `date_modified_gmt` is inside the
//! window and not yet seen (or who have no such date) are emitted; the engine
//! still compares content hashes, so a repeat is harmless.
//!
//! The next watermark is the highest `date_modified_gmt` seen, but never
//! later than the server's `Date` at the start of the pass, so an order
//! changed behind the pass's position is listed again next time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use synchub_core::Cursor;

use crate::error::WooError;

/// Position in one stream; stored by the engine as opaque JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamCursor {
    /// Everything modified before this (minus the overlap) was delivered.
    #[serde(default)]
    pub watermark: Option<DateTime<Utc>>,
    /// Ids delivered with a modification time inside the overlap window.
    #[serde(default)]
    pub seen: BTreeMap<String, DateTime<Utc>>,
    /// A pass in progress.
    #[serde(default)]
    pub pass: Option<Pass>,
}

/// A listing pass in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pass {
    /// The pass's lower bound (`None`: everything).
    pub since: Option<DateTime<Utc>>,
    /// The next page (1-based).
    pub page: u32,
    /// The server's `Date` when the pass began.
    pub started_at: Option<DateTime<Utc>>,
    /// Highest modification time seen in this pass.
    pub max_seen: Option<DateTime<Utc>>,
}

impl StreamCursor {
    /// Reads the engine's opaque cursor (`None`: from scratch).
    pub fn from_cursor(c: Option<&Cursor>) -> Result<Self, WooError> {
        match c {
            None => Ok(Self::default()),
            Some(c) => serde_json::from_value(c.0.clone())
                .map_err(|e| WooError::Protocol(format!("stored cursor is not ours: {e}"))),
        }
    }

    /// The opaque form.
    pub fn to_cursor(&self) -> Cursor {
        Cursor(serde_json::to_value(self).unwrap_or_default())
    }

    /// The pass to continue or start.
    pub fn pass(&mut self, overlap: Duration) -> &mut Pass {
        let since = self.watermark.map(|w| w - overlap);
        self.pass.get_or_insert(Pass {
            since,
            page: 1,
            started_at: None,
            max_seen: None,
        })
    }

    /// True when an item should be emitted (not an exact repeat, inside the window).
    pub fn admit(&mut self, id: &str, modified: Option<DateTime<Utc>>, overlap: Duration) -> bool {
        let Some(t) = modified else { return true };
        if self.seen.get(id) == Some(&t) {
            return false;
        }
        if let Some(since) = self.watermark.map(|w| w - overlap) {
            if t < since {
                // a full scan (customers) lists unchanged old records too
                return false;
            }
        }
        if let Some(pass) = self.pass.as_mut() {
            pass.max_seen = pass.max_seen.max(Some(t));
        }
        self.seen.insert(id.to_string(), t);
        true
    }

    /// Closes a page; at the end of a pass moves the watermark.
    pub fn end_page(&mut self, more: bool, overlap: Duration) {
        let Some(pass) = self.pass.as_mut() else {
            return;
        };
        if more {
            pass.page += 1;
            return;
        }
        let mut next = self.watermark.max(pass.max_seen);
        if let (Some(n), Some(start)) = (next, pass.started_at) {
            next = Some(n.min(start).max(self.watermark.unwrap_or(n.min(start))));
        }
        self.watermark = next;
        self.pass = None;
        if let Some(w) = self.watermark {
            let floor = w - overlap;
            self.seen.retain(|_, t| *t >= floor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn passes_move_the_watermark_and_drop_exact_repeats() {
        let o = Duration::seconds(5);
        let mut c = StreamCursor::default();
        assert_eq!(c.pass(o).since, None);
        assert!(c.admit("1", Some(t(10)), o));
        c.end_page(true, o);
        assert_eq!(c.pass.as_ref().map(|p| p.page), Some(2));
        assert!(c.admit("2", Some(t(20)), o));
        c.end_page(false, o);
        assert_eq!(c.watermark, Some(t(20)));
        assert_eq!(c.pass(o).since, Some(t(15)));
        assert!(!c.admit("2", Some(t(20)), o), "exact repeat in the overlap");
        assert!(!c.admit("1", Some(t(10)), o), "old, unchanged (full scan)");
        assert!(c.admit("1", Some(t(30)), o), "changed");
        assert!(c.admit("3", None, o), "no date: always emitted");
    }
}
