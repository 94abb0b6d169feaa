//! The watermark cursor shared by every source that lists "changed since T"
//! (Shopify, WooCommerce, Xero, QuickBooks queries, Odoo, ERPNext, Tryton).
//!
//! A pass lists records ordered by modification time (and id) with the
//! filter `modified >= watermark - overlap`, page by page. The overlap
//! catches records whose time lands just before the watermark but that
//! became visible late (replication lag, same-second writes); the cursor
//! keeps every id seen inside the overlap window with the time it had, so
//! the overlap is de-duplicated exactly: a record comes again only if it
//! changed. A pass in progress keeps its own lower bound and the source's
//! page token (an `endCursor`, a page number, an offset), so resuming a
//! pass after a crash reads the same filter from the same page.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::connector::Cursor;
use crate::error::ConnectorError;

/// Position in one watermark stream; stored by the engine as opaque JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    /// The highest modification time delivered so far.
    #[serde(default)]
    pub watermark: Option<DateTime<Utc>>,
    /// Ids delivered with a time inside `[watermark - overlap, watermark]`.
    #[serde(default)]
    pub seen: BTreeMap<String, DateTime<Utc>>,
    /// A listing pass in progress, when the last page was not the last.
    #[serde(default)]
    pub pass: Option<Pass>,
}

/// A listing pass in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pass {
    /// The lower bound of this pass's filter (`None`: a full listing).
    pub since: Option<DateTime<Utc>>,
    /// The source's token for the next page (an `endCursor`, a page number,
    /// an offset), as text.
    pub page: String,
    /// The source's clock when the pass began, for a pass that lists by id
    /// without an upper time bound (see [`admit_in_pass_until`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// What the next request of a pass asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PassRequest {
    /// The filter's lower bound (`None`: list everything).
    pub since: Option<DateTime<Utc>>,
    /// The page token; `None` for the first page of a pass.
    pub page: Option<String>,
    /// The source's clock when the pass began (its `Date` header), kept by
    /// a pass that lists by id without an upper time bound: the connector
    /// sets it on the first page's request from the answer, later pages
    /// carry it. `None` for every other source.
    pub until: Option<DateTime<Utc>>,
}

impl Watermark {
    /// Reads the engine's opaque cursor (`None`: from the start). A cursor
    /// this type did not write is a protocol error naming `source`.
    pub fn from_cursor(cursor: Option<&Cursor>, source: &str) -> Result<Self, ConnectorError> {
        match cursor {
            None => Ok(Watermark::default()),
            Some(c) => serde_json::from_value(c.0.clone()).map_err(|e| ConnectorError::Protocol {
                host: source.to_string(),
                message: format!("the stored cursor is not a watermark cursor: {e}"),
            }),
        }
    }

    /// The opaque form the engine stores.
    pub fn to_cursor(&self) -> Cursor {
        Cursor(serde_json::to_value(self).unwrap_or_default())
    }

    /// The filter and page token of the next request.
    pub fn next_request(&self, overlap: Duration) -> PassRequest {
        match &self.pass {
            Some(pass) => PassRequest {
                since: pass.since,
                page: Some(pass.page.clone()),
                until: pass.until,
            },
            None => PassRequest {
                since: self.watermark.map(|w| w - overlap),
                page: None,
                until: None,
            },
        }
    }

    /// Records one listed item; false when it is an exact repeat of one
    /// already delivered (same id, same time), which the caller drops.
    /// An item without a time is always admitted and moves nothing.
    pub fn admit(&mut self, id: &str, modified: Option<DateTime<Utc>>, overlap: Duration) -> bool {
        let Some(modified) = modified else {
            return true;
        };
        if self.seen.get(id) == Some(&modified) {
            return false;
        }
        let watermark = match self.watermark {
            Some(w) if w >= modified => w,
            _ => modified,
        };
        self.watermark = Some(watermark);
        let floor = watermark - overlap;
        if modified >= floor {
            self.seen.insert(id.to_string(), modified);
        }
        self.seen.retain(|_, t| *t >= floor);
        true
    }

    /// Closes a page: keeps the pass open on `next_page` while the source
    /// has more, and ends it otherwise.
    pub fn end_page(&mut self, req: &PassRequest, next_page: Option<String>) {
        self.pass = next_page.map(|page| Pass {
            since: req.since,
            page,
            until: req.until,
        });
    }

    /// True while a pass is in progress.
    pub fn in_pass(&self) -> bool {
        self.pass.is_some()
    }
}

// Helpers for sources that list a pass by id and detect hard deletes by
// comparing the ids of consecutive passes (Odoo, Tryton).

/// Encodes sorted ids as ranges.
pub fn encode_ids(ids: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = ids.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// Decodes [`encode_ids`].
pub fn decode_ids(s: &str) -> Option<BTreeSet<i64>> {
    let mut ids = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (i64, i64) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 10_000_000 {
                    return None;
                }
                ids.extend(a..=b);
            }
            None => {
                ids.insert(part.parse().ok()?);
            }
        }
    }
    Some(ids)
}

/// [`Watermark::admit`] for a pass that lists by id: the entries of the
/// previous pass's overlap window (times at or after the pass's lower bound
/// `since`) are kept until the pass ends, because an item listed later in
/// the pass may be one of them while an earlier, newer item has already
/// moved the watermark (`Watermark::admit` would prune them and deliver
/// them twice). [`end_pass`] prunes to the final window.
pub fn admit_in_pass(
    wm: &mut Watermark,
    since: Option<DateTime<Utc>>,
    id: &str,
    modified: Option<DateTime<Utc>>,
    overlap: Duration,
) -> bool {
    admit_capped(wm, since, None, id, modified, overlap)
}

/// [`admit_in_pass`] for a pass that lists by id with a lower time bound
/// only (WooCommerce's `modified_after`, or a full scan): the watermark
/// does not move past `req.until`, the source's clock when the pass began.
/// A record changed during the pass behind the pass's position is not
/// listed by this pass; with a watermark at the newest time listed, the
/// next pass's bound would be above its new time and it would never be
/// read. Items newer than `until` are still remembered in `seen`, so the
/// next pass drops them unless they changed again.
pub fn admit_in_pass_until(
    wm: &mut Watermark,
    req: &PassRequest,
    id: &str,
    modified: Option<DateTime<Utc>>,
    overlap: Duration,
) -> bool {
    admit_capped(wm, req.since, req.until, id, modified, overlap)
}

fn admit_capped(
    wm: &mut Watermark,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    id: &str,
    modified: Option<DateTime<Utc>>,
    overlap: Duration,
) -> bool {
    let Some(modified) = modified else {
        return true;
    };
    if wm.seen.get(id) == Some(&modified) {
        return false;
    }
    let moved_to = match until {
        Some(u) if modified > u => u,
        _ => modified,
    };
    let watermark = match wm.watermark {
        Some(w) if w >= moved_to => w,
        _ => moved_to,
    };
    wm.watermark = Some(watermark);
    let floor = watermark - overlap;
    if modified >= floor {
        wm.seen.insert(id.to_string(), modified);
    }
    let keep = match since {
        Some(s) if s < floor => s,
        _ => floor,
    };
    wm.seen.retain(|_, t| *t >= keep);
    true
}

/// Ends a pass: keeps only the ids inside the final overlap window.
pub fn end_pass(wm: &mut Watermark, overlap: Duration) {
    if let Some(w) = wm.watermark {
        let floor = w - overlap;
        wm.seen.retain(|_, t| *t >= floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).expect("time")
    }

    #[test]
    fn overlap_repeats_are_dropped_and_changes_kept() {
        let overlap = Duration::seconds(60);
        let mut w = Watermark::default();
        assert!(w.admit("a", Some(t(0)), overlap));
        assert!(w.admit("b", Some(t(30)), overlap));
        assert_eq!(w.next_request(overlap).since, Some(t(-30)));
        // The next pass lists a and b again: unchanged, dropped.
        assert!(!w.admit("a", Some(t(0)), overlap));
        assert!(!w.admit("b", Some(t(30)), overlap));
        // a changed: admitted.
        assert!(w.admit("a", Some(t(40)), overlap));
        assert_eq!(w.watermark, Some(t(40)));
    }

    #[test]
    fn a_pass_resumes_with_its_own_bound_and_page() {
        let overlap = Duration::seconds(10);
        let mut w = Watermark::default();
        w.admit("a", Some(t(100)), overlap);
        let req = w.next_request(overlap);
        w.end_page(&req, Some("page-2".into()));
        w.admit("b", Some(t(500)), overlap);
        let round: Watermark =
            Watermark::from_cursor(Some(&w.to_cursor()), "test").expect("round trip");
        let again = round.next_request(overlap);
        assert_eq!(again.since, Some(t(90)));
        assert_eq!(again.page.as_deref(), Some("page-2"));
        let mut done = round;
        done.end_page(&again, None);
        assert!(!done.in_pass());
        assert_eq!(done.next_request(overlap).since, Some(t(490)));
    }

    #[test]
    fn a_pass_by_id_does_not_move_the_watermark_past_its_start() {
        let overlap = Duration::seconds(10);
        let mut w = Watermark::default();
        w.admit("old", Some(t(0)), overlap);
        let mut req = w.next_request(overlap);
        // The source's clock when the pass began, from the first answer.
        req.until = Some(t(100));
        assert!(admit_in_pass_until(&mut w, &req, "a", Some(t(50)), overlap));
        // Changed after the pass began (listed ahead of the position).
        assert!(admit_in_pass_until(
            &mut w,
            &req,
            "b",
            Some(t(500)),
            overlap
        ));
        assert_eq!(w.watermark, Some(t(100)));
        w.end_page(&req, Some("2".into()));
        let round = Watermark::from_cursor(Some(&w.to_cursor()), "test").expect("round trip");
        let again = round.next_request(overlap);
        assert_eq!(again.until, Some(t(100)));
        let mut done = round;
        done.end_page(&again, None);
        end_pass(&mut done, overlap);
        // The next pass reads from before the pass began: a record changed
        // behind the position (at t(200)) is listed; b, unchanged, is dropped.
        let next = done.next_request(overlap);
        assert_eq!(next.since, Some(t(90)));
        assert!(!admit_in_pass_until(
            &mut done,
            &next,
            "b",
            Some(t(500)),
            overlap
        ));
        assert!(admit_in_pass_until(
            &mut done,
            &next,
            "c",
            Some(t(200)),
            overlap
        ));
    }

    #[test]
    fn cursors_without_a_pass_start_keep_their_shape() {
        let overlap = Duration::seconds(10);
        let mut w = Watermark::default();
        w.admit("a", Some(t(0)), overlap);
        let req = w.next_request(overlap);
        w.end_page(&req, Some("p2".into()));
        let json = w.to_cursor().0;
        assert_eq!(
            json["pass"],
            serde_json::json!({"since": "2023-11-14T22:13:10Z", "page": "p2"})
        );
    }

    #[test]
    fn a_foreign_cursor_is_a_clear_error() {
        let c = Cursor(serde_json::json!({"historyId": "12"}));
        let e = Watermark::from_cursor(Some(&c), "shop.example").expect_err("foreign");
        assert!(e.to_string().contains("shop.example"), "{e}");
    }
}
