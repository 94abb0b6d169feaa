//! An in-memory remote system and its connector. It keeps ids, versions,
//! change order and deletes like a real API does (a change feed ordered by a
//! sequence number), counts the writes it receives, and can be told to
//! throttle.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use synchub_core::connector::{ObjectSpec, Written};
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ObjectKind, Page, PushOutcome, Record,
    RemoteRecord,
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
        inner.seq += 1;
        let seq = inner.seq;
        let version = inner.entries.get(&key).map(|e| e.version + 1).unwrap_or(1);
        inner.entries.insert(
            key,
            Entry {
                record,
                version,
                seq,
                updated_at: Utc::now(),
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

    /// Edits a record in place; returns false when it does not exist.
    pub fn edit(&self, kind: ObjectKind, id: &str, f: impl FnOnce(&mut Record)) -> bool {
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
        Self::bump(&mut inner, key, record, false);
        true
    }

    /// Deletes a record.
    pub fn delete(&self, kind: ObjectKind, id: &str) {
        let mut inner = self.inner.lock().unwrap();
        let key = (kind, id.to_string());
        if let Some(record) = inner.entries.get(&key).map(|e| e.record.clone()) {
            Self::bump(&mut inner, key, record, true);
        }
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
        let after = from
            .and_then(|c| c.0.get("seq"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
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
            inner.writes += 1;
            let id = match (&change.op, &change.external_id) {
                (ChangeOp::Create, _) | (_, None) => {
                    inner.next_id += 1;
                    format!("{}-{}", self.system.name, inner.next_id)
                }
                (_, Some(id)) => id.clone(),
            };
            let key = (object, id.clone());
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
