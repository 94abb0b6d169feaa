//! An in-memory remote system and its connector. It keeps ids, versions,
//! change order and deletes like a real API does (a change feed ordered by a
//! sequence number), counts the writes it receives, and can be told to
//! throttle.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use synchub_core::connector::{ObjectSpec, Written};
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ObjectKind, Page, PushOutcome, Record,
    Refusal, RemoteRecord,
};

/// One record in the fake system.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record.
    pub record: Record,
    /// Bumped on every write.
    pub version: u64,
    /// Position in the change feed.
    pub seq: u64,
    /// Last change time.
    pub updated_at: DateTime<Utc>,
    /// Deleted.
    pub deleted: bool,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<(ObjectKind, String), Entry>,
    seq: u64,
    next_id: u64,
    writes: u64,
    throttle_next: u32,
    /// Idempotency keys of creates already carried out → the id created.
    created_by_key: HashMap<String, String>,
    /// Pushes fail (the whole call) after this many more writes.
    fail_push_after: Option<u64>,
    /// Pulls fail after this many more pages.
    fail_pull_after: Option<u64>,
    /// Records served once, ahead of the change feed (a lagging replica).
    stale: VecDeque<RemoteRecord>,
}

static LAST_TICK: AtomicI64 = AtomicI64::new(0);

/// The wall clock, strictly increasing across every system of the process
/// (at least one microsecond apart), so "newest" is never a tie by accident.
pub fn tick() -> DateTime<Utc> {
    loop {
        let now = Utc::now().timestamp_micros();
        let last = LAST_TICK.load(Ordering::SeqCst);
        let t = now.max(last + 1);
        if LAST_TICK
            .compare_exchange(last, t, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return DateTime::from_timestamp_micros(t).unwrap_or_else(Utc::now);
        }
    }
}

/// The state of a fake system, shared between a test and its connector.
#[derive(Clone, Default)]
pub struct MemorySystem {
    inner: Arc<Mutex<Inner>>,
    name: String,
}

impl MemorySystem {
    /// An empty system; `name` prefixes the ids it assigns.
    pub fn new(name: &str) -> MemorySystem {
        MemorySystem {
            inner: Arc::default(),
            name: name.to_string(),
        }
    }

    fn bump(inner: &mut Inner, key: (ObjectKind, String), record: Record, deleted: bool) {
        Self::bump_at(inner, key, record, deleted, tick());
    }

    fn bump_at(
        inner: &mut Inner,
        key: (ObjectKind, String),
        record: Record,
        deleted: bool,
        at: DateTime<Utc>,
    ) {
        inner.seq += 1;
        let seq = inner.seq;
        let version = inner.entries.get(&key).map(|e| e.version + 1).unwrap_or(1);
        inner.entries.insert(
            key,
            Entry {
                record,
                version,
                seq,
                updated_at: at,
                deleted,
            },
        );
    }

    /// Creates or replaces a record as a user of that system would.
    pub fn put(&self, id: &str, record: Record) {
        let mut inner = self.inner.lock().unwrap();
        let key = (record.kind(), id.to_string());
        Self::bump(&mut inner, key, record, false);
    }

    /// Creates or replaces a record with a change time of this system's
    /// (possibly skewed) clock.
    pub fn put_at(&self, id: &str, record: Record, at: DateTime<Utc>) {
        let mut inner = self.inner.lock().unwrap();
        let key = (record.kind(), id.to_string());
        Self::bump_at(&mut inner, key, record, false, at);
    }

    /// Edits a record in place; returns false when it does not exist.
    pub fn edit(&self, kind: ObjectKind, id: &str, f: impl FnOnce(&mut Record)) -> bool {
        self.edit_at(kind, id, tick(), f)
    }

    /// Edits a record with a change time of this system's clock.
    pub fn edit_at(
        &self,
        kind: ObjectKind,
        id: &str,
        at: DateTime<Utc>,
        f: impl FnOnce(&mut Record),
    ) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let key = (kind, id.to_string());
        let Some(mut record) = inner
            .entries
            .get(&key)
            .filter(|e| !e.deleted)
            .map(|e| e.record.clone())
        else {
            return false;
        };
        f(&mut record);
        Self::bump_at(&mut inner, key, record, false, at);
        true
    }

    /// Deletes a record.
    pub fn delete(&self, kind: ObjectKind, id: &str) {
        self.delete_at(kind, id, tick());
    }

    /// Deletes a record at a time of this system's clock.
    pub fn delete_at(&self, kind: ObjectKind, id: &str, at: DateTime<Utc>) {
        let mut inner = self.inner.lock().unwrap();
        let key = (kind, id.to_string());
        if let Some(record) = inner
            .entries
            .get(&key)
            .filter(|e| !e.deleted)
            .map(|e| e.record.clone())
        {
            Self::bump_at(&mut inner, key, record, true, at);
        }
    }

    /// The stored entry (live or deleted).
    pub fn entry(&self, kind: ObjectKind, id: &str) -> Option<Entry> {
        let inner = self.inner.lock().unwrap();
        inner.entries.get(&(kind, id.to_string())).cloned()
    }

    /// The next pull serves this entry as it is now once more, ahead of the
    /// feed, as a lagging read replica would after later changes.
    pub fn serve_stale(&self, id: &str, entry: &Entry) {
        let mut inner = self.inner.lock().unwrap();
        inner.stale.push_back(RemoteRecord {
            external_id: id.to_string(),
            version: Some(entry.version.to_string()),
            updated_at: Some(entry.updated_at),
            deleted: entry.deleted,
            record: (!entry.deleted).then(|| entry.record.clone()),
            raw: serde_json::to_value(&entry.record).unwrap_or(json!(null)),
        });
    }

    /// Push calls fail once `n` more writes have been carried out (the
    /// writes before the failure stay applied, as after a dropped
    /// connection); `None` heals.
    pub fn fail_push_after(&self, n: Option<u64>) {
        self.inner.lock().unwrap().fail_push_after = n;
    }

    /// Pulls fail once `n` more pages have been served; `None` heals.
    pub fn fail_pull_after(&self, n: Option<u64>) {
        self.inner.lock().unwrap().fail_pull_after = n;
    }

    /// A live record.
    pub fn get(&self, kind: ObjectKind, id: &str) -> Option<Record> {
        let inner = self.inner.lock().unwrap();
        inner
            .entries
            .get(&(kind, id.to_string()))
            .filter(|e| !e.deleted)
            .map(|e| e.record.clone())
    }

    /// Every live record of a kind, by id.
    pub fn live(&self, kind: ObjectKind) -> BTreeMap<String, Record> {
        let inner = self.inner.lock().unwrap();
        inner
            .entries
            .iter()
            .filter(|((k, _), e)| *k == kind && !e.deleted)
            .map(|((_, id), e)| (id.clone(), e.record.clone()))
            .collect()
    }

    /// Writes received through the connector so far.
    pub fn writes(&self) -> u64 {
        self.inner.lock().unwrap().writes
    }

    /// The next `n` pulls fail with a throttle error.
    pub fn throttle_next(&self, n: u32) {
        self.inner.lock().unwrap().throttle_next = n;
    }

    /// A connector over this system serving `page_size` records per page.
    pub fn connector(&self, page_size: usize) -> MemoryConnector {
        MemoryConnector {
            system: self.clone(),
            page_size,
        }
    }
}

/// The connector of a [`MemorySystem`]. The cursor is the change-feed
/// sequence number of the last record served.
#[derive(Clone)]
pub struct MemoryConnector {
    system: MemorySystem,
    page_size: usize,
}

#[async_trait]
impl Connector for MemoryConnector {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        [ObjectKind::Contact, ObjectKind::Order]
            .into_iter()
            .map(|kind| ObjectSpec {
                kind,
                can_read: true,
                incremental: true,
                can_write: true,
            })
            .collect()
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        let mut inner = self.system.inner.lock().unwrap();
        if inner.throttle_next > 0 {
            inner.throttle_next -= 1;
            return Err(ConnectorError::Unavailable {
                host: format!("memory://{}", self.system.name),
                message: "429 too many requests".into(),
                retry_after: Some(std::time::Duration::from_millis(10)),
            });
        }
        match inner.fail_pull_after {
            Some(0) => {
                return Err(ConnectorError::Unavailable {
                    host: format!("memory://{}", self.system.name),
                    message: "connection reset (injected)".into(),
                    // Retried at once: tests stay fast, the error stays.
                    retry_after: Some(std::time::Duration::from_millis(1)),
                });
            }
            Some(n) => inner.fail_pull_after = Some(n - 1),
            None => {}
        }
        let after = from
            .and_then(|c| c.0.get("seq"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if !inner.stale.is_empty() {
            let records: Vec<RemoteRecord> = inner.stale.drain(..).collect();
            return Ok(Page {
                records,
                rejected: Vec::new(),
                next: Some(Cursor(json!({ "seq": after }))),
                done: false,
            });
        }
        let mut changed: Vec<(&(ObjectKind, String), &Entry)> = inner
            .entries
            .iter()
            .filter(|((k, _), e)| *k == object && e.seq > after)
            .collect();
        changed.sort_by_key(|(_, e)| e.seq);
        let done = changed.len() <= self.page_size;
        changed.truncate(self.page_size);
        let last = changed.last().map(|(_, e)| e.seq).unwrap_or(after);
        let records = changed
            .into_iter()
            .map(|((_, id), e)| RemoteRecord {
                external_id: id.clone(),
                version: Some(e.version.to_string()),
                updated_at: Some(e.updated_at),
                deleted: e.deleted,
                record: (!e.deleted).then(|| e.record.clone()),
                raw: serde_json::to_value(&e.record).unwrap_or(json!(null)),
            })
            .collect();
        Ok(Page {
            records,
            rejected: Vec::new(),
            next: Some(Cursor(json!({ "seq": last }))),
            done,
        })
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        let mut inner = self.system.inner.lock().unwrap();
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            match inner.fail_push_after {
                Some(0) => {
                    return Err(ConnectorError::Unavailable {
                        host: format!("memory://{}", self.system.name),
                        message: "connection reset (injected)".into(),
                        retry_after: None,
                    })
                }
                Some(n) => inner.fail_push_after = Some(n - 1),
                None => {}
            }
            let id = match (&change.op, &change.external_id) {
                (ChangeOp::Create, _) | (_, None) => {
                    // Creates honour the idempotency key, as real APIs that
                    // take one do: a retried create returns the first id.
                    match inner.created_by_key.get(&change.idempotency_key) {
                        Some(id) => id.clone(),
                        None => {
                            inner.next_id += 1;
                            let id = format!("{}-{}", self.system.name, inner.next_id);
                            inner
                                .created_by_key
                                .insert(change.idempotency_key.clone(), id.clone());
                            id
                        }
                    }
                }
                (_, Some(id)) => id.clone(),
            };
            let key = (object, id.clone());
            let gone = inner.entries.get(&key).is_none_or(|e| e.deleted);
            if change.op == ChangeOp::Update && gone {
                // Like a real API: no update of what is gone.
                out.push(PushOutcome {
                    crm_id: change.crm_id.clone(),
                    result: Err(Refusal::rejected(format!("404 not found: {id}"))),
                });
                continue;
            }
            if change.op == ChangeOp::Delete && gone {
                // Deleting what is gone is done already (a retried delete).
                let version = inner.entries.get(&key).map(|e| e.version.to_string());
                out.push(PushOutcome {
                    crm_id: change.crm_id.clone(),
                    result: Ok(Written {
                        external_id: id,
                        version,
                        record: Some(change.record.clone()),
                    }),
                });
                continue;
            }
            inner.writes += 1;
            let deleted = change.op == ChangeOp::Delete;
            MemorySystem::bump(&mut inner, key.clone(), change.record.clone(), deleted);
            let version = inner.entries.get(&key).map(|e| e.version.to_string());
            out.push(PushOutcome {
                crm_id: change.crm_id.clone(),
                result: Ok(Written {
                    external_id: id,
                    version,
                    record: Some(change.record.clone()),
                }),
            });
        }
        Ok(out)
    }
}
