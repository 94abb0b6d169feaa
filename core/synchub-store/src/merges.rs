//! Merge history: which contact survived, which was merged into it, on
//! what evidence, and the before-images of both records and of the loser's
//! identity links, so a merge can be undone exactly.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::links::Link;
use crate::records::{FieldTimes, StoredRecord};
use crate::{corrupt, now_text, QueryContext, Store, StoreError};

/// A record as it was before a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordImage {
    /// The record.
    pub record: synchub_core::Record,
    /// Its version then.
    pub version: i64,
    /// Deleted then.
    pub deleted: bool,
    /// Merged into another then.
    pub merged_into: Option<String>,
    /// Per-field times then.
    pub field_times: FieldTimes,
    /// Its exact-match keys then.
    pub keys: Vec<String>,
}

impl RecordImage {
    /// The image of a stored record with its keys.
    pub fn of(r: &StoredRecord, keys: Vec<String>) -> RecordImage {
        RecordImage {
            record: r.record.clone(),
            version: r.version,
            deleted: r.deleted,
            merged_into: r.merged_into.clone(),
            field_times: r.field_times.clone(),
            keys,
        }
    }
}

/// An identity link as it was before a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkImage {
    /// Connection.
    pub connection: String,
    /// Object kind (text).
    pub object: String,
    /// External id.
    pub external_id: String,
    /// CRM id then.
    pub crm_id: String,
    /// Remote version then.
    pub remote_version: Option<String>,
    /// Remote updated-at then.
    pub remote_updated_at: Option<String>,
    /// Snapshot then.
    pub snapshot: Option<serde_json::Map<String, Value>>,
    /// Snapshot hash then.
    pub snapshot_hash: Option<String>,
    /// Deleted then.
    pub deleted: bool,
}

impl From<&Link> for LinkImage {
    fn from(l: &Link) -> LinkImage {
        LinkImage {
            connection: l.connection.clone(),
            object: l.object.as_str().to_string(),
            external_id: l.external_id.clone(),
            crm_id: l.crm_id.clone(),
            remote_version: l.remote_version.clone(),
            remote_updated_at: l.remote_updated_at.clone(),
            snapshot: l.snapshot.clone(),
            snapshot_hash: l.snapshot_hash.clone(),
            deleted: l.deleted,
        }
    }
}

/// A merge to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMerge {
    /// The record that survives.
    pub survivor: String,
    /// The record merged into it.
    pub loser: String,
    /// Score and evidence (JSON).
    pub evidence: Value,
    /// The survivor before.
    pub survivor_before: RecordImage,
    /// The loser before.
    pub loser_before: RecordImage,
    /// The loser's links before.
    pub links_before: Vec<LinkImage>,
}

/// A recorded merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    /// Merge id.
    pub id: i64,
    /// What was merged.
    pub detail: NewMerge,
    /// When.
    pub merged_at: String,
    /// When it was undone, if it was.
    pub undone_at: Option<String>,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Records a merge; returns its id.
pub async fn insert(conn: &mut AnyConnection, m: &NewMerge) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO contact_merge (survivor, loser, evidence, survivor_before, loser_before, \
         links_before, merged_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&m.survivor)
    .bind(&m.loser)
    .bind(m.evidence.to_string())
    .bind(json(&m.survivor_before))
    .bind(json(&m.loser_before))
    .bind(json(&m.links_before))
    .bind(now_text())
    .fetch_one(conn)
    .await
    .ctx("recording a merge")?;
    row.try_get("id").ctx("recording a merge")
}

/// Marks a merge undone.
pub async fn mark_undone(conn: &mut AnyConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE contact_merge SET undone_at = $1 WHERE id = $2")
        .bind(now_text())
        .bind(id)
        .execute(conn)
        .await
        .ctx("undoing a merge")?;
    Ok(())
}

const SELECT: &str = "SELECT id, survivor, loser, evidence, survivor_before, loser_before, \
     links_before, merged_at, undone_at FROM contact_merge";

fn decode(r: &sqlx::any::AnyRow) -> Result<Merge, StoreError> {
    const CTX: &str = "reading a merge";
    let text = |k: &str| r.try_get::<String, _>(k).ctx(CTX);
    let parse = |k: &str| -> Result<Value, StoreError> {
        serde_json::from_str(&text(k)?).map_err(|e| corrupt(CTX, e))
    };
    Ok(Merge {
        id: r.try_get("id").ctx(CTX)?,
        detail: NewMerge {
            survivor: text("survivor")?,
            loser: text("loser")?,
            evidence: parse("evidence")?,
            survivor_before: serde_json::from_value(parse("survivor_before")?)
                .map_err(|e| corrupt(CTX, e))?,
            loser_before: serde_json::from_value(parse("loser_before")?)
                .map_err(|e| corrupt(CTX, e))?,
            links_before: serde_json::from_value(parse("links_before")?)
                .map_err(|e| corrupt(CTX, e))?,
        },
        merged_at: text("merged_at")?,
        undone_at: r.try_get("undone_at").ctx(CTX)?,
    })
}

/// One merge.
pub async fn get(conn: &mut AnyConnection, id: i64) -> Result<Option<Merge>, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .ctx("reading a merge")?;
    row.as_ref().map(decode).transpose()
}

/// Merges not undone that involve `id` (as survivor or loser), newest first.
pub async fn active_for(conn: &mut AnyConnection, id: &str) -> Result<Vec<Merge>, StoreError> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE undone_at IS NULL AND (survivor = $1 OR loser = $2) ORDER BY id DESC"
    ))
    .bind(id)
    .bind(id)
    .fetch_all(conn)
    .await
    .ctx("reading merges")?;
    rows.iter().map(decode).collect()
}

impl Store {
    /// Merges, newest first; undone ones too when `all`.
    pub async fn merges(&self, all: bool) -> Result<Vec<Merge>, StoreError> {
        let sql = format!(
            "{SELECT} {} ORDER BY id DESC",
            if all { "" } else { "WHERE undone_at IS NULL" }
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .ctx("listing merges")?;
        rows.iter().map(decode).collect()
    }
}
