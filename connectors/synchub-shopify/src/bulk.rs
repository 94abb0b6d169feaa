//! Full backfill through a bulk operation (`bulk_backfill = true`): start a
//! `bulkOperationRunQuery`, poll `currentBulkOperation` (one poll per pull,
//! an empty page while it runs), then stream the JSONL result page by page,
//! never holding the file. The cursor counts the lines consumed, so a
//! restart re-opens the file and skips them. Child lines (`__parentId`, the
//! order's line items) are attached to their parent. When the file ends the
//! cursor becomes the incremental cursor a paged backfill would have left:
//! the watermark is the highest `updatedAt` exported (capped at the
//! operation's `createdAt`, so that anything changed while the export ran is
//! listed again) and the ids inside the overlap window are remembered, so
//! the first incremental run reads only what changed.
//!
//! <https://shopify.dev/docs/api/usage/bulk-operations/queries>

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use synchub_core::{Cursor, ObjectKind, Page, Watermark};
use tokio::sync::Mutex;

use crate::connector::{user_errors, ShopifyConnector};
use crate::error::ShopifyError;
use crate::{map, queries};

/// Root records per page read from the export.
const ROOTS_PER_PAGE: usize = 2_000;

/// The cursor while a bulk export is being read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkCursor {
    /// The operation's GID.
    pub op: String,
    /// When the operation was created (the next watermark).
    pub created_at: Option<DateTime<Utc>>,
    /// The result URL once complete.
    pub url: Option<String>,
    /// Lines consumed so far.
    pub lines: u64,
    /// Ids exported with `updatedAt` inside the overlap below `max_updated`.
    pub seen: BTreeMap<String, DateTime<Utc>>,
    /// The highest `updatedAt` exported so far.
    #[serde(default)]
    pub max_updated: Option<DateTime<Utc>>,
}

/// True when `from` starts a backfill or continues a bulk read.
pub fn wants_bulk(from: Option<&Cursor>) -> bool {
    from.is_none_or(|c| c.0.get("bulk").is_some())
}

/// Open result downloads, by URL, positioned at a line count.
#[derive(Debug, Default)]
pub struct BulkReaders {
    open: Mutex<HashMap<String, Reader>>,
}

#[derive(Debug)]
struct Reader {
    resp: reqwest::Response,
    buf: Vec<u8>,
    lines: u64,
    eof: bool,
    /// A root line read past the end of the last page, handed back.
    pending: Option<Value>,
}

impl Reader {
    async fn open(url: &str, skip: u64) -> Result<Self, ShopifyError> {
        let http = synchub_http::new_reqwest_client()?;
        let resp = http.get(url).send().await.map_err(download_error)?;
        if !resp.status().is_success() {
            return Err(ShopifyError::Protocol(format!(
                "bulk result download answered {}",
                resp.status()
            )));
        }
        let mut reader = Reader {
            resp,
            buf: Vec::new(),
            lines: 0,
            eof: false,
            pending: None,
        };
        while reader.lines < skip {
            if reader.next_line().await?.is_none() {
                break;
            }
        }
        Ok(reader)
    }

    /// Lines consumed, not counting a handed-back line.
    fn position(&self) -> u64 {
        self.lines - u64::from(self.pending.is_some())
    }

    /// The next line, or `None` at the end of the file.
    async fn next_line(&mut self) -> Result<Option<Vec<u8>>, ShopifyError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).take(pos).collect();
                self.lines += 1;
                return Ok(Some(line));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.lines += 1;
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            match self.resp.chunk().await.map_err(download_error)? {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => self.eof = true,
            }
        }
    }
}

fn download_error(e: reqwest::Error) -> ShopifyError {
    ShopifyError::Unavailable(format!("bulk result download failed: {}", e.without_url()))
}

impl ShopifyConnector {
    /// One page of a bulk backfill.
    pub(crate) async fn bulk_page(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ShopifyError> {
        let doc = match object {
            ObjectKind::Contact => queries::BULK_CUSTOMERS,
            ObjectKind::Order => queries::BULK_ORDERS,
            other => {
                return Err(ShopifyError::Config(format!(
                    "shopify has no {other} stream"
                )))
            }
        };
        let mut state = match from.and_then(|c| c.0.get("bulk")) {
            Some(v) => serde_json::from_value::<BulkCursor>(v.clone()).map_err(|e| {
                ShopifyError::Protocol(format!("stored bulk cursor is not ours: {e}"))
            })?,
            None => return self.start_bulk(doc).await,
        };
        let url = match &state.url {
            Some(url) => url.clone(),
            None => match self.poll_bulk(&mut state).await? {
                Some(url) => url,
                None => return Ok(pending(&state)),
            },
        };
        if url.is_empty() {
            // an export of nothing has no file
            let next = Watermark {
                watermark: state.created_at,
                seen: state.seen,
                pass: None,
            };
            return Ok(Page {
                next: Some(next.to_cursor()),
                done: true,
                ..Page::default()
            });
        }
        let mut open = self.bulk.open.lock().await;
        let mut reader = match open.remove(&url) {
            Some(r) if r.position() == state.lines => r,
            _ => Reader::open(&url, state.lines).await?,
        };
        let overlap = Duration::seconds(i64::from(self.cfg.overlap_seconds));
        let mut page = Page::default();
        let mut roots: Vec<Value> = reader.pending.take().into_iter().collect();
        while let Some(line) = reader.next_line().await? {
            let value: Value = serde_json::from_slice(&line).map_err(|e| {
                ShopifyError::Protocol(format!("bulk line {} is not JSON: {e}", reader.lines))
            })?;
            if let Some(parent) = value.get("__parentId").and_then(Value::as_str) {
                if let Some(root) = roots
                    .last_mut()
                    .filter(|r| r["id"].as_str() == Some(parent))
                {
                    if let Some(nodes) = root["lineItems"]["nodes"].as_array_mut() {
                        nodes.push(value);
                    }
                }
                continue;
            }
            let mut value = value;
            if object == ObjectKind::Order && value.get("lineItems").is_none() {
                value["lineItems"] = json!({"nodes": []});
            }
            roots.push(value);
            // a root line closes the previous root's children; stop between roots
            if roots.len() > ROOTS_PER_PAGE {
                break;
            }
        }
        // the last root may still get children on the next page: hand it back
        let done = reader.eof && reader.buf.is_empty();
        if !done {
            reader.pending = roots.pop();
        }
        // the same bookkeeping a paged pass does: watermark and overlap ids
        let mut exported = Watermark {
            watermark: state.max_updated,
            seen: std::mem::take(&mut state.seen),
            pass: None,
        };
        for (i, node) in roots.into_iter().enumerate() {
            let mapped = if object == ObjectKind::Order {
                map::order_to_remote(&node)
            } else {
                map::customer_to_remote(&node)
            };
            match mapped {
                Ok(rec) => {
                    if let Some(t) = rec.updated_at {
                        exported.admit(&rec.external_id, Some(t), overlap);
                    }
                    page.records.push(rec);
                }
                Err(mut rejected) => {
                    rejected.location = Some(format!("bulk export item {i}"));
                    page.rejected.push(rejected);
                }
            }
        }
        state.max_updated = exported.watermark;
        state.seen = exported.seen;
        state.lines = reader.position();
        if done {
            let next = finished(state, overlap);
            page.next = Some(next.to_cursor());
            page.done = true;
        } else {
            open.insert(url, reader);
            page.next = Some(Cursor(json!({"bulk": state})));
        }
        Ok(page)
    }

    async fn start_bulk(&self, doc: &str) -> Result<Page, ShopifyError> {
        let data = self
            .client
            .graphql(queries::BULK_RUN, json!({"query": doc}), false)
            .await?;
        let payload = &data["bulkOperationRunQuery"];
        if let Some(errors) = payload["userErrors"].as_array().filter(|e| !e.is_empty()) {
            return Err(ShopifyError::Protocol(format!(
                "bulk export refused: {}",
                user_errors(errors)
            )));
        }
        let op = payload["bulkOperation"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let state = BulkCursor {
            op,
            ..BulkCursor::default()
        };
        Ok(pending(&state))
    }

    /// Polls once; the result URL when complete.
    async fn poll_bulk(&self, state: &mut BulkCursor) -> Result<Option<String>, ShopifyError> {
        let data = self
            .client
            .graphql(queries::BULK_POLL, json!({}), true)
            .await?;
        let op = &data["currentBulkOperation"];
        if op["id"].as_str() != Some(state.op.as_str()) {
            return Err(ShopifyError::Protocol(format!(
                "bulk operation {} is no longer current",
                state.op
            )));
        }
        if state.created_at.is_none() {
            state.created_at = op["createdAt"].as_str().and_then(map::parse_time);
        }
        match op["status"].as_str() {
            Some("COMPLETED") => {
                // an export of nothing has no file
                let url = op["url"].as_str().map(String::from).unwrap_or_default();
                state.url = Some(url.clone());
                Ok(Some(url))
            }
            Some("CREATED") | Some("RUNNING") => Ok(None),
            other => Err(ShopifyError::Protocol(format!(
                "bulk export ended {}: {}",
                other.unwrap_or("?"),
                op["errorCode"].as_str().unwrap_or("no error code")
            ))),
        }
    }
}

/// The incremental cursor a finished export leaves: what a paged pass over
/// the same records would leave, its watermark capped at the operation's
/// start so that records changed during the export are listed again.
fn finished(state: BulkCursor, overlap: Duration) -> Watermark {
    let watermark = match (state.max_updated, state.created_at) {
        (Some(max), Some(created)) => Some(max.min(created)),
        (max, created) => max.or(created),
    };
    let mut seen = state.seen;
    if let Some(w) = watermark {
        seen.retain(|_, t| *t >= w - overlap);
    }
    Watermark {
        watermark,
        seen,
        pass: None,
    }
}

fn pending(state: &BulkCursor) -> Page {
    Page {
        next: Some(Cursor(json!({"bulk": state}))),
        done: false,
        ..Page::default()
    }
}
