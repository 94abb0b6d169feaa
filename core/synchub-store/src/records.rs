//! CRM records and their exact-match keys.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};
use synchub_core::{ObjectKind, Record};

use crate::sql::Sql;
use crate::{corrupt, now_text, QueryContext, Store, StoreError};

/// Rows per multi-row statement; well under both backends' bind limits.
pub(crate) const CHUNK: usize = 500;

/// A CRM record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// CRM id.
    pub id: String,
    /// Object kind.
    pub kind: ObjectKind,
    /// The record.
    pub record: Record,
    /// Content hash of `record`.
    pub hash: String,
    /// Bumped on every change.
    pub version: i64,
    /// Deleted (tombstoned) in the CRM.
    pub deleted: bool,
    /// Set when the dedup engine merged this record into another.
    pub merged_into: Option<String>,
    /// When the CRM record last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Per field, the source time of the edit that set it (empty for rows
    /// written before field times were kept).
    pub field_times: FieldTimes,
}

/// Per field, the source time of the edit that set it.
pub type FieldTimes = BTreeMap<String, DateTime<Utc>>;

/// A record to insert or replace.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// CRM id.
    pub id: String,
    /// The record.
    pub record: Record,
    /// New version.
    pub version: i64,
    /// Tombstone.
    pub deleted: bool,
    /// Per-field change times.
    pub field_times: FieldTimes,
}

fn decode_row(row: &sqlx::any::AnyRow) -> Result<StoredRecord, StoreError> {
    const CTX: &str = "reading a crm record";
    let kind_text: String = row.try_get("kind").ctx(CTX)?;
    let kind = ObjectKind::parse(&kind_text).ok_or_else(|| corrupt(CTX, kind_text.clone()))?;
    let data: String = row.try_get("data").ctx(CTX)?;
    let record: Record = serde_json::from_str(&data).map_err(|e| corrupt(CTX, e))?;
    let times: Option<String> = row.try_get("field_times").ctx(CTX)?;
    let field_times = match times {
        Some(t) => serde_json::from_str(&t).map_err(|e| corrupt(CTX, e))?,
        None => FieldTimes::new(),
    };
    Ok(StoredRecord {
        id: row.try_get("id").ctx(CTX)?,
        kind,
        record,
        hash: row.try_get("hash").ctx(CTX)?,
        version: row.try_get("version").ctx(CTX)?,
        deleted: row.try_get::<i64, _>("deleted").ctx(CTX)? != 0,
        merged_into: row.try_get("merged_into").ctx(CTX)?,
        updated_at: row.try_get("updated_at").ctx(CTX)?,
        field_times,
    })
}

const SELECT: &str = "SELECT id, kind, data, hash, version, deleted, merged_into, updated_at, \
     field_times FROM crm_record";

/// Loads the records with these ids.
pub async fn get_many(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<HashMap<String, StoredRecord>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut q = Sql::new(SELECT);
        q.push(" WHERE id")
            .in_set(crate::sql::is_postgres(conn), chunk);
        let rows = q.fetch_all(&mut *conn).await.ctx("loading crm records")?;
        for row in &rows {
            let rec = decode_row(row)?;
            out.insert(rec.id.clone(), rec);
        }
    }
    Ok(out)
}

/// Rows per statement on PostgreSQL's packed path (a page or two).
pub(crate) const PG_CHUNK: usize = 5_000;

/// Inserts or replaces records.
pub async fn upsert_many(conn: &mut AnyConnection, rows: &[RecordWrite]) -> Result<(), StoreError> {
    let now = now_text();
    if crate::sql::is_postgres(conn) {
        let mut rest = Vec::new();
        for chunk in rows.chunks(PG_CHUNK) {
            if !upsert_packed(conn, chunk, &now).await? {
                rest.extend_from_slice(chunk);
            }
        }
        return upsert_values(conn, &rest, &now).await;
    }
    upsert_values(conn, rows, &now).await
}

/// PostgreSQL: the rows as packed columns, one statement. False (nothing
/// written) when a value cannot be packed.
async fn upsert_packed(
    conn: &mut AnyConnection,
    rows: &[RecordWrite],
    now: &str,
) -> Result<bool, StoreError> {
    use crate::sql::{pack, unpacked};
    let data: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(&r.record).unwrap_or_default())
        .collect();
    let hashes: Vec<String> = rows.iter().map(|r| r.record.content_hash()).collect();
    let times: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(&r.field_times).unwrap_or_default())
        .collect();
    let versions: Vec<String> = rows.iter().map(|r| r.version.to_string()).collect();
    let packed = (
        pack(rows.iter().map(|r| Some(r.id.as_str()))),
        pack(rows.iter().map(|r| Some(r.record.kind().as_str()))),
        pack(data.iter().map(|d| Some(d.as_str()))),
        pack(hashes.iter().map(|h| Some(h.as_str()))),
        pack(versions.iter().map(|v| Some(v.as_str()))),
        pack(rows.iter().map(|r| Some(if r.deleted { "1" } else { "0" }))),
        pack(times.iter().map(|t| Some(t.as_str()))),
    );
    let (
        Some(ids),
        Some(kinds),
        Some(data),
        Some(hashes),
        Some(versions),
        Some(deleted),
        Some(times),
    ) = packed
    else {
        return Ok(false);
    };
    let sql = format!(
        "INSERT INTO crm_record (id, kind, data, hash, version, deleted, field_times, created_at, \
         updated_at) SELECT r.id, r.kind, r.data, r.hash, r.version, r.deleted, r.field_times, $8, $8 \
         FROM unnest({}, {}, {}, {}, {}, {}, {}) AS r(id, kind, data, hash, version, deleted, field_times) \
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, hash = excluded.hash, \
         version = excluded.version, deleted = excluded.deleted, field_times = excluded.field_times, \
         updated_at = excluded.updated_at",
        unpacked(1, "text"),
        unpacked(2, "text"),
        unpacked(3, "text"),
        unpacked(4, "text"),
        unpacked(5, "bigint"),
        unpacked(6, "bigint"),
        unpacked(7, "text"),
    );
    sqlx::query(&sql)
        .bind(ids)
        .bind(kinds)
        .bind(data)
        .bind(hashes)
        .bind(versions)
        .bind(deleted)
        .bind(times)
        .bind(now.to_string())
        .execute(&mut *conn)
        .await
        .ctx("writing crm records")?;
    Ok(true)
}

/// Multi-row `VALUES` statements of up to [`CHUNK`] rows.
async fn upsert_values(
    conn: &mut AnyConnection,
    rows: &[RecordWrite],
    now: &str,
) -> Result<(), StoreError> {
    let now = now.to_string();
    for chunk in rows.chunks(CHUNK) {
        let mut q = Sql::new(
            "INSERT INTO crm_record (id, kind, data, hash, version, deleted, field_times, created_at, \
             updated_at) VALUES ",
        );
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let data = serde_json::to_string(&row.record).unwrap_or_default();
            let times = serde_json::to_string(&row.field_times).unwrap_or_default();
            q.open()
                .item(row.id.clone())
                .item(row.record.kind().as_str())
                .item(data)
                .item(row.record.content_hash())
                .item(row.version)
                .item(i64::from(row.deleted))
                .item(times)
                .item(now.clone())
                .item(now.clone())
                .close();
        }
        q.push(
            " ON CONFLICT (id) DO UPDATE SET data = excluded.data, hash = excluded.hash, \
             version = excluded.version, deleted = excluded.deleted, field_times = excluded.field_times, \
             updated_at = excluded.updated_at",
        );
        q.execute(&mut *conn).await.ctx("writing crm records")?;
    }
    Ok(())
}

/// Marks `loser` as merged into `survivor` (and deleted).
pub async fn mark_merged(
    conn: &mut AnyConnection,
    loser: &str,
    survivor: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE crm_record SET merged_into = $1, deleted = 1, updated_at = $2 WHERE id = $3",
    )
    .bind(survivor)
    .bind(now_text())
    .bind(loser)
    .execute(conn)
    .await
    .ctx("marking a merged record")?;
    Ok(())
}

/// Sets or clears the merge pointer of a record.
pub async fn set_merged_into(
    conn: &mut AnyConnection,
    id: &str,
    survivor: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE crm_record SET merged_into = $1 WHERE id = $2")
        .bind(survivor.map(str::to_string))
        .bind(id)
        .execute(conn)
        .await
        .ctx("setting a merge pointer")?;
    Ok(())
}

/// The exact-match keys of these records.
pub async fn keys_of(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = Sql::new("SELECT key, crm_id FROM match_key WHERE crm_id");
        q.in_set(crate::sql::is_postgres(conn), chunk)
            .push(" ORDER BY key");
        for row in q.fetch_all(&mut *conn).await.ctx("reading match keys")? {
            let id: String = row.try_get("crm_id").ctx("reading match keys")?;
            out.entry(id)
                .or_default()
                .push(row.try_get("key").ctx("reading match keys")?);
        }
    }
    Ok(out)
}

/// Finds CRM ids by exact-match keys (`email:…`, `phone:…`).
pub async fn find_by_keys(
    conn: &mut AnyConnection,
    kind: ObjectKind,
    keys: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        let mut q = Sql::new("SELECT key, crm_id FROM match_key WHERE kind = ");
        q.bind(kind.as_str())
            .push(" AND key")
            .in_set(crate::sql::is_postgres(conn), chunk);
        let rows = q.fetch_all(&mut *conn).await.ctx("looking up match keys")?;
        for row in rows {
            out.push((
                row.try_get("key").ctx("reading a match key")?,
                row.try_get("crm_id").ctx("reading a match key")?,
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// Like [`find_by_keys`], leaving out every key more than `cap` records
/// share (a common name's block), which are returned apart: the lookup
/// reads at most `cap + 1` rows per key whatever the size of the store,
/// where an uncapped one would read a growing share of it on every page.
pub async fn find_by_keys_capped(
    conn: &mut AnyConnection,
    kind: ObjectKind,
    keys: &[String],
    cap: usize,
) -> Result<CappedHits, StoreError> {
    const CTX: &str = "looking up match keys";
    let limit = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
    let mut rows = Vec::new();
    if crate::sql::is_postgres(conn) {
        for chunk in keys.chunks(PG_CHUNK) {
            let Some(packed) = crate::sql::pack(chunk.iter().map(|k| Some(k.as_str()))) else {
                return find_by_keys(conn, kind, keys)
                    .await
                    .map(|hits| cap_hits(hits, cap));
            };
            let sql = format!(
                "SELECT k.key, m.crm_id FROM unnest({}) AS k(key) CROSS JOIN LATERAL \
                 (SELECT crm_id FROM match_key WHERE kind = $1 AND key = k.key \
                 ORDER BY crm_id LIMIT $3) m",
                crate::sql::unpacked(2, "text")
            );
            rows.extend(
                sqlx::query(&sql)
                    .bind(kind.as_str())
                    .bind(packed)
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await
                    .ctx(CTX)?,
            );
        }
    } else {
        // SQLite: one bounded index range per key, in compound statements.
        for chunk in keys.chunks(100) {
            let mut q = Sql::new("");
            for (i, key) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(" UNION ALL ");
                }
                q.push("SELECT * FROM (SELECT key, crm_id FROM match_key WHERE kind = ")
                    .bind(kind.as_str())
                    .push(" AND key = ")
                    .bind(key.clone())
                    .push(" ORDER BY crm_id LIMIT ")
                    .bind(limit)
                    .push(")");
            }
            rows.extend(q.fetch_all(&mut *conn).await.ctx(CTX)?);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push((
            row.try_get("key").ctx("reading a match key")?,
            row.try_get("crm_id").ctx("reading a match key")?,
        ));
    }
    out.sort();
    Ok(cap_hits(out, cap))
}

/// `(key, id)` hits in order, and the keys left out for being shared by more
/// ids than the cap.
pub type CappedHits = (Vec<(String, String)>, Vec<String>);

/// Splits sorted `(key, id)` hits: the keys more than `cap` ids share go apart.
fn cap_hits(hits: Vec<(String, String)>, cap: usize) -> CappedHits {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (k, _) in &hits {
        *counts.entry(k.as_str()).or_default() += 1;
    }
    let mut over: Vec<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > cap)
        .map(|(k, _)| k.to_string())
        .collect();
    over.sort();
    let kept = hits
        .into_iter()
        .filter(|(k, _)| over.binary_search(k).is_err())
        .collect();
    (kept, over)
}

/// Replaces the match keys of the given records.
pub async fn set_keys(
    conn: &mut AnyConnection,
    kind: ObjectKind,
    keys: &[(String, Vec<String>)],
) -> Result<(), StoreError> {
    let postgres = crate::sql::is_postgres(conn);
    let chunk_size = if postgres { PG_CHUNK } else { CHUNK };
    for chunk in keys.chunks(chunk_size) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        let mut q = Sql::new("DELETE FROM match_key WHERE crm_id");
        q.in_set(postgres, &ids);
        q.execute(&mut *conn).await.ctx("clearing match keys")?;
    }
    add_keys(conn, kind, keys).await
}

/// Adds match keys of records that have none yet (created in this
/// transaction: a first load has no old keys to delete).
pub async fn add_keys(
    conn: &mut AnyConnection,
    kind: ObjectKind,
    keys: &[(String, Vec<String>)],
) -> Result<(), StoreError> {
    let mut pairs: Vec<(&str, &str)> = keys
        .iter()
        .flat_map(|(id, ks)| ks.iter().map(move |k| (id.as_str(), k.as_str())))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    if crate::sql::is_postgres(conn) {
        for part in pairs.chunks(PG_CHUNK * 4) {
            let packed = (
                crate::sql::pack(part.iter().map(|(_, k)| Some(*k))),
                crate::sql::pack(part.iter().map(|(id, _)| Some(*id))),
            );
            let (Some(ks), Some(ids)) = packed else {
                insert_key_values(conn, kind, part).await?;
                continue;
            };
            let sql = format!(
                "INSERT INTO match_key (kind, key, crm_id) SELECT $1, r.key, r.crm_id \
                 FROM unnest({}, {}) AS r(key, crm_id) ON CONFLICT DO NOTHING",
                crate::sql::unpacked(2, "text"),
                crate::sql::unpacked(3, "text"),
            );
            sqlx::query(&sql)
                .bind(kind.as_str())
                .bind(ks)
                .bind(ids)
                .execute(&mut *conn)
                .await
                .ctx("writing match keys")?;
        }
        return Ok(());
    }
    insert_key_values(conn, kind, &pairs).await
}

async fn insert_key_values(
    conn: &mut AnyConnection,
    kind: ObjectKind,
    pairs: &[(&str, &str)],
) -> Result<(), StoreError> {
    for part in pairs.chunks(CHUNK) {
        let mut q = Sql::new("INSERT INTO match_key (kind, key, crm_id) VALUES ");
        for (i, (id, key)) in part.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.open()
                .item(kind.as_str())
                .item(key.to_string())
                .item(id.to_string())
                .close();
        }
        q.push(" ON CONFLICT DO NOTHING");
        q.execute(&mut *conn).await.ctx("writing match keys")?;
    }
    Ok(())
}

impl Store {
    /// One record by id.
    pub async fn record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.ctx("acquiring a connection")?;
        let mut map = get_many(&mut conn, &[id.to_string()]).await?;
        Ok(map.remove(id))
    }

    /// Up to `limit` live records of a kind with ids after `after`, in id
    /// order: walks a large table in bounded memory.
    pub async fn live_records_after(
        &self,
        kind: ObjectKind,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE kind = $1 AND deleted = 0 AND merged_into IS NULL AND id > $2 ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(kind.as_str())
            .bind(after.unwrap_or("").to_string())
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .ctx("listing crm records")?;
        rows.iter().map(decode_row).collect()
    }

    /// Records of a kind, ordered by id, live ones only unless `with_deleted`.
    pub async fn records(
        &self,
        kind: ObjectKind,
        with_deleted: bool,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE kind = $1 {} ORDER BY id",
            if with_deleted { "" } else { "AND deleted = 0" }
        );
        let rows = sqlx::query(&sql)
            .bind(kind.as_str())
            .fetch_all(&self.pool)
            .await
            .ctx("listing crm records")?;
        rows.iter().map(decode_row).collect()
    }

    /// Counts live records per kind.
    pub async fn record_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM crm_record WHERE deleted = 0 GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("counting crm records")?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("kind").ctx("counting")?,
                    r.try_get("n").ctx("counting")?,
                ))
            })
            .collect()
    }
}
