//! The connector contract.
//!
//! A connector serves one page per call; the engine owns the loop, so
//! checkpoints, cancellation and back-pressure happen between pages. The
//! cursor is opaque JSON chosen by the connector (a Shopify `endCursor` plus
//! an `updated_at` watermark, a Gmail `historyId`, a QuickBooks CDC
//! `changedSince`, an Odoo `write_date`/`id` pair, a CSV row offset), so the
//! engine needs no special case for any of them: it stores the cursor of a
//! page in the same transaction as the page's records.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConnectorError;
use crate::model::Record;

/// The kinds of CRM object a connector can read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// People.
    Contact,
    /// Organisations.
    Company,
    /// Sales orders.
    Order,
    /// Invoices and receipts.
    Invoice,
    /// Mails, calls, meetings, notes.
    Activity,
}

impl ObjectKind {
    /// All kinds, in the order the engine syncs them (parties before the
    /// documents that refer to them).
    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::Contact,
        ObjectKind::Company,
        ObjectKind::Order,
        ObjectKind::Invoice,
        ObjectKind::Activity,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Contact => "contact",
            ObjectKind::Company => "company",
            ObjectKind::Order => "order",
            ObjectKind::Invoice => "invoice",
            ObjectKind::Activity => "activity",
        }
    }

    /// Parses the snake_case name (also accepts plurals such as `contacts`).
    pub fn parse(s: &str) -> Option<ObjectKind> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_suffix('s').unwrap_or(&s);
        match s {
            "contact" | "customer" | "people" | "person" => Some(ObjectKind::Contact),
            "company" | "companie" | "account" | "organisation" | "organization" => {
                Some(ObjectKind::Company)
            }
            "order" => Some(ObjectKind::Order),
            "invoice" => Some(ObjectKind::Invoice),
            "activity" | "activitie" => Some(ObjectKind::Activity),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connector can do with one kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSpec {
    /// The object kind.
    pub kind: ObjectKind,
    /// `pull` is supported.
    pub can_read: bool,
    /// `pull` with a cursor returns only changes.
    pub incremental: bool,
    /// `push` is supported.
    pub can_write: bool,
}

/// An opaque, connector-defined position in a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub Value);

/// One record as a source holds it, mapped to the CRM model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRecord {
    /// The id in the source system.
    pub external_id: String,
    /// The source's version or etag (Shopify `updated_at`, QuickBooks
    /// `SyncToken`, an ETag), used to recognise echoes of our own writes.
    pub version: Option<String>,
    /// When the source last changed it (the source's clock).
    pub updated_at: Option<DateTime<Utc>>,
    /// The source deleted or archived it.
    pub deleted: bool,
    /// The mapped record; `None` only for deletions.
    pub record: Option<Record>,
    /// The payload as received, kept for dead letters and audits.
    pub raw: Value,
}

/// A source item that could not be mapped; it becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// The id in the source, if one could be read.
    pub external_id: Option<String>,
    /// Where in the source (`row 17`, `page 3 item 12`).
    pub location: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// The payload as received.
    pub raw: Value,
}

/// One page from a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Mapped records.
    pub records: Vec<RemoteRecord>,
    /// Items that could not be mapped.
    pub rejected: Vec<Rejected>,
    /// The cursor to store with this page; `None` keeps the previous one.
    pub next: Option<Cursor>,
    /// No more pages for now.
    pub done: bool,
}

/// What a push does to the remote record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// Create a record the target does not have yet.
    Create,
    /// Update a linked record.
    Update,
    /// Delete (or archive) a linked record.
    Delete,
}

/// A CRM change to write to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The CRM record id.
    pub crm_id: String,
    /// What to do.
    pub op: ChangeOp,
    /// The target's id for an update or delete.
    pub external_id: Option<String>,
    /// The target's version we last saw (for optimistic concurrency:
    /// QuickBooks `SyncToken`).
    pub base_version: Option<String>,
    /// The record as the CRM now holds it.
    pub record: Record,
    /// Stable key for this change, sent where the API supports idempotency.
    pub idempotency_key: String,
}

/// What the target did with one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written {
    /// The target's id (new for a create).
    pub external_id: String,
    /// The target's version after the write.
    pub version: Option<String>,
    /// The record as the target now holds it, mapped back, when the API
    /// returns it; used as the new snapshot so the echo is recognised.
    pub record: Option<Record>,
}

/// The result of one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// The CRM record id the change was for.
    pub crm_id: String,
    /// Written, or the target's per-record error message.
    pub result: Result<Written, String>,
}

/// A connector instance, built from validated config.
///
/// Connectors classify their errors ([`ConnectorError::class`]); the runtime
/// and the engine decide on retries. Connectors never sleep or retry.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Stable snake_case id of the connector kind, e.g. `shopify`.
    fn kind(&self) -> &'static str;

    /// The objects this instance supports.
    fn objects(&self) -> Vec<ObjectSpec>;

    /// A cheap connectivity and credentials check.
    async fn check(&self) -> Result<(), ConnectorError>;

    /// Reads the next page of `object` after `from` (`None`: from the start).
    async fn pull(&self, object: ObjectKind, from: Option<&Cursor>)
        -> Result<Page, ConnectorError>;

    /// About how many records a full read of `object` returns, when the
    /// source can tell cheaply (for progress and ETA); `None` when it cannot.
    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        let _ = object;
        None
    }

    /// Writes CRM changes; one outcome per change, in order.
    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        let _ = changes;
        Err(ConnectorError::Unsupported(format!(
            "{} cannot write {object}",
            self.kind()
        )))
    }
}
