//! Integration tests of the legacy sources: vendor exports, encodings,
//! resume, and real MariaDB databases shaped like SuiteCRM and vtiger.

mod encodings;
mod exports;
mod suitecrm;
mod vtiger;

use std::path::PathBuf;

use synchub_core::{Connector, Cursor, ObjectKind, Rejected, RemoteRecord};
use synchub_legacy::LegacyOptions;

/// Everything one object yields, page by page.
pub struct Drained {
    pub records: Vec<RemoteRecord>,
    pub rejected: Vec<Rejected>,
    pub cursors: Vec<Cursor>,
}

impl Drained {
    pub fn live(&self) -> Vec<&RemoteRecord> {
        self.records.iter().filter(|r| !r.deleted).collect()
    }

    pub fn deleted(&self) -> usize {
        self.records.iter().filter(|r| r.deleted).count()
    }

    pub fn get(&self, id: &str) -> &RemoteRecord {
        self.records
            .iter()
            .find(|r| r.external_id == id)
            .unwrap_or_else(|| panic!("no record {id}"))
    }

    pub fn locations(&self) -> Vec<String> {
        self.rejected
            .iter()
            .map(|r| r.location.clone().unwrap_or_default())
            .collect()
    }
}

/// Pulls `object` to the end, starting after `from`.
pub async fn drain(conn: &dyn Connector, object: ObjectKind, from: Option<Cursor>) -> Drained {
    let mut out = Drained {
        records: Vec::new(),
        rejected: Vec::new(),
        cursors: Vec::new(),
    };
    let mut cursor = from;
    for _ in 0..100_000 {
        let page = conn.pull(object, cursor.as_ref()).await.expect("pull");
        out.records.extend(page.records);
        out.rejected.extend(page.rejected);
        if let Some(next) = page.next {
            out.cursors.push(next.clone());
            cursor = Some(next);
        }
        if page.done {
            return out;
        }
    }
    panic!("{object} never finished");
}

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn opts(page_size: usize) -> LegacyOptions {
    LegacyOptions {
        page_size,
        default_region: Some("TW".into()),
        ..LegacyOptions::default()
    }
}

pub fn contact(r: &RemoteRecord) -> &synchub_core::Contact {
    match r.record.as_ref() {
        Some(synchub_core::Record::Contact(c)) => c,
        other => panic!("{} is not a contact: {other:?}", r.external_id),
    }
}

pub fn company(r: &RemoteRecord) -> &synchub_core::Company {
    match r.record.as_ref() {
        Some(synchub_core::Record::Company(c)) => c,
        other => panic!("{} is not a company: {other:?}", r.external_id),
    }
}

pub fn order(r: &RemoteRecord) -> &synchub_core::Order {
    match r.record.as_ref() {
        Some(synchub_core::Record::Order(o)) => o,
        other => panic!("{} is not an order: {other:?}", r.external_id),
    }
}
