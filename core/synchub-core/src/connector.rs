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

use crate::error::{ConnectorError, ErrorClass};
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
    /// The record as this target last held it (the snapshot stored at the
    /// last sync), for sparse updates and three-way merges; `None` for a
    /// create or when no snapshot was kept.
    #[serde(default)]
    pub base: Option<Record>,
}

impl Change {
    /// The top-level fields whose value differs from [`base`](Self::base)
    /// (all fields when there is no base): what a sparse update sends.
    pub fn changed_fields(&self) -> Vec<String> {
        let now = self.record.to_fields();
        let Some(base) = &self.base else {
            return now.keys().cloned().collect();
        };
        let before = base.to_fields();
        let mut keys: Vec<String> = now
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(before.keys().filter(|k| !now.contains_key(*k)).cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
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

/// Why a target did not write one change, by what the engine does next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// Refused for good (validation, a missing reference): retrying the
    /// same change cannot succeed; it waits for a person.
    Rejected {
        /// The target's reason.
        reason: String,
    },
    /// The target's copy changed since our base (a stale QuickBooks
    /// `SyncToken`, an ETag mismatch): re-read and merge, then retry.
    Conflict {
        /// The target's reason.
        reason: String,
        /// The target's current version of the record, when it said.
        current: Option<Box<RemoteRecord>>,
    },
    /// Transient (throttled, timed out, server busy): try again later.
    Retry {
        /// The target's reason.
        reason: String,
        /// How long the target asked us to wait, when it said.
        #[serde(default, with = "opt_secs")]
        after: Option<std::time::Duration>,
    },
}

impl Refusal {
    /// A permanent refusal.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Refusal::Rejected {
            reason: reason.into(),
        }
    }

    /// A transient refusal.
    pub fn retry(reason: impl Into<String>, after: Option<std::time::Duration>) -> Self {
        Refusal::Retry {
            reason: reason.into(),
            after,
        }
    }

    /// A stale-base refusal.
    pub fn conflict(reason: impl Into<String>, current: Option<RemoteRecord>) -> Self {
        Refusal::Conflict {
            reason: reason.into(),
            current: current.map(Box::new),
        }
    }

    /// The target's reason.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Rejected { reason }
            | Refusal::Conflict { reason, .. }
            | Refusal::Retry { reason, .. } => reason,
        }
    }

    /// Retrying the same change later can succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, Refusal::Rejected { .. })
    }

    /// The refusal a per-record connector error amounts to: throttles,
    /// outages and cancellations are transient, everything else permanent.
    pub fn from_error(e: &ConnectorError) -> Self {
        match e {
            ConnectorError::Unavailable { retry_after, .. } => {
                Refusal::retry(e.to_string(), *retry_after)
            }
            ConnectorError::Cancelled(_) => Refusal::retry(e.to_string(), None),
            _ => Refusal::rejected(e.to_string()),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Rejected { reason } => write!(f, "refused: {reason}"),
            Refusal::Conflict { reason, .. } => {
                write!(f, "changed at the target since our last sync: {reason}")
            }
            Refusal::Retry {
                reason,
                after: Some(d),
            } => {
                write!(f, "try again in {} s: {reason}", d.as_secs().max(1))
            }
            Refusal::Retry {
                reason,
                after: None,
            } => write!(f, "try again later: {reason}"),
        }
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        Ok(v.filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64))
    }
}

/// The result of one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// The CRM record id the change was for.
    pub crm_id: String,
    /// Written, or why the target did not write it.
    pub result: Result<Written, Refusal>,
}

impl PushOutcome {
    /// Written.
    pub fn written(crm_id: impl Into<String>, written: Written) -> Self {
        PushOutcome {
            crm_id: crm_id.into(),
            result: Ok(written),
        }
    }

    /// Refused.
    pub fn refused(crm_id: impl Into<String>, refusal: Refusal) -> Self {
        PushOutcome {
            crm_id: crm_id.into(),
            result: Err(refusal),
        }
    }
}

/// Pushes `changes` one at a time through `write`, for APIs without a batch
/// endpoint: a per-record error becomes that change's [`Refusal`]; an error
/// that concerns the whole connection (credentials, configuration, a
/// cancelled run) stops the batch and is returned, so the engine keeps the
/// rest queued.
pub async fn push_each<'a, F, Fut>(
    changes: &'a [Change],
    mut write: F,
) -> Result<Vec<PushOutcome>, ConnectorError>
where
    F: FnMut(&'a Change) -> Fut,
    Fut: std::future::Future<Output = Result<Written, ConnectorError>>,
{
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        match write(change).await {
            Ok(w) => outcomes.push(PushOutcome::written(&change.crm_id, w)),
            Err(e) => match e.class() {
                ErrorClass::Reauth | ErrorClass::Config => return Err(e),
                _ if matches!(e, ConnectorError::Cancelled(_)) => return Err(e),
                _ => outcomes.push(PushOutcome::refused(
                    &change.crm_id,
                    Refusal::from_error(&e),
                )),
            },
        }
    }
    Ok(outcomes)
}

/// Pushes `changes` one at a time through `write`, which answers each with
/// the target's typed [`Refusal`] itself (a validation message, a stale
/// version) or fails. What a failure does:
///
/// - credentials, configuration, a cancelled run: the call fails and the
///   rest stays queued (as [`push_each`]);
/// - transient (throttled, down, timed out): nothing more is sent. Before
///   any change was answered the call fails with it, so the batch stays
///   queued without an attempt counted against any change; after that, this
///   change and every one not yet sent are [`Refusal::Retry`] with the delay
///   the target asked for;
/// - anything else (an answer we cannot read): that change is refused for
///   good and the next one is sent.
pub async fn push_each_refusing<'a, F, Fut>(
    changes: &'a [Change],
    mut write: F,
) -> Result<Vec<PushOutcome>, ConnectorError>
where
    F: FnMut(&'a Change) -> Fut,
    Fut: std::future::Future<Output = Result<Result<Written, Refusal>, ConnectorError>>,
{
    let mut outcomes = Vec::with_capacity(changes.len());
    for (i, change) in changes.iter().enumerate() {
        let e = match write(change).await {
            Ok(result) => {
                outcomes.push(PushOutcome {
                    crm_id: change.crm_id.clone(),
                    result,
                });
                continue;
            }
            Err(e) => e,
        };
        match e.class() {
            ErrorClass::Reauth | ErrorClass::Config => return Err(e),
            _ if matches!(e, ConnectorError::Cancelled(_)) => return Err(e),
            ErrorClass::Retry if outcomes.is_empty() => return Err(e),
            ErrorClass::Retry => {
                let refusal = Refusal::from_error(&e);
                outcomes.extend(
                    changes[i..]
                        .iter()
                        .map(|c| PushOutcome::refused(&c.crm_id, refusal.clone())),
                );
                return Ok(outcomes);
            }
            _ => outcomes.push(PushOutcome::refused(
                &change.crm_id,
                Refusal::from_error(&e),
            )),
        }
    }
    Ok(outcomes)
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

    /// Ends a run: a connector holding a long-lived session (an IMAP
    /// connection, a login) logs out here. Called once after the last page
    /// and push of a run; the default does nothing.
    async fn close(&self) -> Result<(), ConnectorError> {
        Ok(())
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

/// What a verified webhook delivery asks the engine to do.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookAction {
    /// Run this stream incrementally; a delete notification carries the
    /// deleted record (sources that cannot list deletions send it only here).
    Sync {
        /// The stream.
        object: ObjectKind,
        /// The deleted record, for delete topics.
        deleted: Option<Box<RemoteRecord>>,
    },
    /// Nothing to do; the reason is one of `duplicate`, `ping`, `ignored`.
    Nothing(&'static str),
}
