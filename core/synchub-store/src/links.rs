//! The identity map: (connection, object, external id) → CRM id, with the
//! last-synced snapshot of the remote record (the base of three-way merges)
//! and the remote version (to recognise echoes of our own writes).

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};
use synchub_core::ObjectKind;

use crate::records::CHUNK;
use crate::sql::Sql;
use crate::{corrupt, now_text, QueryContext, Store, StoreError};

/// One identity link.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Connection (pipeline connector instance) name.
    pub connection: String,
    /// Object kind.
    pub object: ObjectKind,
    /// Id in the remote system.
    pub external_id: String,
    /// CRM id.
    pub crm_id: String,
    /// Remote version at the last sync.
    pub remote_version: Option<String>,
    /// Remote updated-at at the last sync (RFC 3339).
    pub remote_updated_at: Option<String>,
    /// The record's fields as last synced (both sides agreed on this).
    pub snapshot: Option<Map<String, Value>>,
    /// Hash of the snapshot.
    pub snapshot_hash: Option<String>,
    /// The remote record is deleted.
    pub deleted: bool,
}

const SELECT: &str = "SELECT connection, object, external_id, crm_id, remote_version, \
     remote_updated_at, snapshot, snapshot_hash, deleted FROM id_link";

fn decode(row: &sqlx::any::AnyRow) -> Result<Link, StoreError> {
    const CTX: &str = "reading an identity link";
    let object: String = row.try_get("object").ctx(CTX)?;
    let snapshot: Option<String> = row.try_get("snapshot").ctx(CTX)?;
    let snapshot = match snapshot {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| corrupt(CTX, e))?),
        None => None,
    };
    Ok(Link {
        connection: row.try_get("connection").ctx(CTX)?,
        object: ObjectKind::parse(&object).ok_or_else(|| corrupt(CTX, object.clone()))?,
        external_id: row.try_get("external_id").ctx(CTX)?,
        crm_id: row.try_get("crm_id").ctx(CTX)?,
        remote_version: row.try_get("remote_version").ctx(CTX)?,
        remote_updated_at: row.try_get("remote_updated_at").ctx(CTX)?,
        snapshot,
        snapshot_hash: row.try_get("snapshot_hash").ctx(CTX)?,
        deleted: row.try_get::<i64, _>("deleted").ctx(CTX)? != 0,
    })
}

/// Links for these external ids of one connection and object.
pub async fn by_external_ids(
    conn: &mut AnyConnection,
    connection: &str,
    object: ObjectKind,
    external_ids: &[String],
) -> Result<HashMap<String, Link>, StoreError> {
    let mut out = HashMap::with_capacity(external_ids.len());
    for chunk in external_ids.chunks(CHUNK) {
        let mut q = Sql::new(SELECT);
        q.push(" WHERE connection = ").bind(connection.to_string());
        q.push(" AND object = ").bind(object.as_str());
        q.push(" AND external_id")
            .in_set(crate::sql::is_postgres(conn), chunk);
        let rows = q
            .fetch_all(&mut *conn)
            .await
            .ctx("loading identity links")?;
        for row in &rows {
            let link = decode(row)?;
            out.insert(link.external_id.clone(), link);
        }
    }
    Ok(out)
}

/// Links of these CRM ids (all connections), grouped by CRM id.
pub async fn by_crm_ids(
    conn: &mut AnyConnection,
    crm_ids: &[String],
) -> Result<HashMap<String, Vec<Link>>, StoreError> {
    let mut out: HashMap<String, Vec<Link>> = HashMap::new();
    for chunk in crm_ids.chunks(CHUNK) {
        let mut q = Sql::new(SELECT);
        q.push(" WHERE crm_id IN ").list(chunk.iter().cloned());
        q.push(" ORDER BY connection, external_id");
        let rows = q
            .fetch_all(&mut *conn)
            .await
            .ctx("loading identity links")?;
        for row in &rows {
            let link = decode(row)?;
            out.entry(link.crm_id.clone()).or_default().push(link);
        }
    }
    Ok(out)
}

/// Inserts or replaces links.
pub async fn upsert_many(conn: &mut AnyConnection, links: &[Link]) -> Result<(), StoreError> {
    let now = now_text();
    if crate::sql::is_postgres(conn) {
        let mut rest = Vec::new();
        for chunk in links.chunks(crate::records::PG_CHUNK) {
            if !upsert_packed(conn, chunk, &now).await? {
                rest.extend_from_slice(chunk);
            }
        }
        return upsert_values(conn, &rest, now).await;
    }
    upsert_values(conn, links, now).await
}

/// PostgreSQL: the links as packed columns, one statement. False (nothing
/// written) when a value cannot be packed.
async fn upsert_packed(
    conn: &mut AnyConnection,
    links: &[Link],
    now: &str,
) -> Result<bool, StoreError> {
    use crate::sql::{pack, unpacked};
    let snapshots: Vec<Option<String>> = links
        .iter()
        .map(|l| {
            l.snapshot
                .as_ref()
                .map(|s| serde_json::to_string(s).unwrap_or_default())
        })
        .collect();
    let packed = [
        pack(links.iter().map(|l| Some(l.connection.as_str()))),
        pack(links.iter().map(|l| Some(l.object.as_str()))),
        pack(links.iter().map(|l| Some(l.external_id.as_str()))),
        pack(links.iter().map(|l| Some(l.crm_id.as_str()))),
        pack(links.iter().map(|l| l.remote_version.as_deref())),
        pack(links.iter().map(|l| l.remote_updated_at.as_deref())),
        pack(snapshots.iter().map(|s| s.as_deref())),
        pack(links.iter().map(|l| l.snapshot_hash.as_deref())),
        pack(
            links
                .iter()
                .map(|l| Some(if l.deleted { "1" } else { "0" })),
        ),
    ];
    if packed.iter().any(Option::is_none) {
        return Ok(false);
    }
    let cols: Vec<String> = (1..=9)
        .map(|n| unpacked(n, if n == 9 { "bigint" } else { "text" }))
        .collect();
    let sql = format!(
        "INSERT INTO id_link (connection, object, external_id, crm_id, remote_version, \
         remote_updated_at, snapshot, snapshot_hash, deleted, updated_at) \
         SELECT r.*, $10 FROM unnest({}) AS r(connection, object, external_id, crm_id, \
         remote_version, remote_updated_at, snapshot, snapshot_hash, deleted) \
         ON CONFLICT (connection, object, external_id) DO UPDATE SET crm_id = excluded.crm_id, \
         remote_version = excluded.remote_version, remote_updated_at = excluded.remote_updated_at, \
         snapshot = excluded.snapshot, snapshot_hash = excluded.snapshot_hash, \
         deleted = excluded.deleted, updated_at = excluded.updated_at",
        cols.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for p in packed.into_iter().flatten() {
        q = q.bind(p);
    }
    q.bind(now.to_string())
        .execute(&mut *conn)
        .await
        .ctx("writing identity links")?;
    Ok(true)
}

/// Multi-row `VALUES` statements of up to [`CHUNK`] rows.
async fn upsert_values(
    conn: &mut AnyConnection,
    links: &[Link],
    now: String,
) -> Result<(), StoreError> {
    for chunk in links.chunks(CHUNK) {
        let mut q = Sql::new(
            "INSERT INTO id_link (connection, object, external_id, crm_id, remote_version, \
             remote_updated_at, snapshot, snapshot_hash, deleted, updated_at) VALUES ",
        );
        for (i, l) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let snapshot = l
                .snapshot
                .as_ref()
                .map(|s| serde_json::to_string(s).unwrap_or_default());
            q.open()
                .item(l.connection.clone())
                .item(l.object.as_str())
                .item(l.external_id.clone())
                .item(l.crm_id.clone())
                .item(l.remote_version.clone())
                .item(l.remote_updated_at.clone())
                .item(snapshot)
                .item(l.snapshot_hash.clone())
                .item(i64::from(l.deleted))
                .item(now.clone())
                .close();
        }
        q.push(
            " ON CONFLICT (connection, object, external_id) DO UPDATE SET crm_id = excluded.crm_id, \
             remote_version = excluded.remote_version, remote_updated_at = excluded.remote_updated_at, \
             snapshot = excluded.snapshot, snapshot_hash = excluded.snapshot_hash, \
             deleted = excluded.deleted, updated_at = excluded.updated_at",
        );
        q.execute(&mut *conn).await.ctx("writing identity links")?;
    }
    Ok(())
}

/// Points every link of `from` at `to` (after a merge of two CRM records).
pub async fn repoint(conn: &mut AnyConnection, from: &str, to: &str) -> Result<u64, StoreError> {
    let done = sqlx::query("UPDATE id_link SET crm_id = $1, updated_at = $2 WHERE crm_id = $3")
        .bind(to)
        .bind(now_text())
        .bind(from)
        .execute(conn)
        .await
        .ctx("re-pointing identity links")?;
    Ok(done.rows_affected())
}

/// Removes one link (its remote copy is gone and will be created anew).
pub async fn remove(conn: &mut AnyConnection, link: &Link) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM id_link WHERE connection = $1 AND object = $2 AND external_id = $3")
        .bind(&link.connection)
        .bind(link.object.as_str())
        .bind(&link.external_id)
        .execute(conn)
        .await
        .ctx("removing an identity link")?;
    Ok(())
}

impl Store {
    /// External ids of one stream whose link is live (not deleted there).
    pub async fn live_external_ids(
        &self,
        connection: &str,
        object: ObjectKind,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT external_id FROM id_link WHERE connection = $1 AND object = $2 AND deleted = 0",
        )
        .bind(connection)
        .bind(object.as_str())
        .fetch_all(&self.pool)
        .await
        .ctx("listing live identity links")?;
        rows.iter()
            .map(|r| r.try_get("external_id").ctx("reading an identity link"))
            .collect()
    }

    /// All links of one CRM record.
    pub async fn links_of(&self, crm_id: &str) -> Result<Vec<Link>, StoreError> {
        let mut conn = self.pool.acquire().await.ctx("acquiring a connection")?;
        Ok(by_crm_ids(&mut conn, &[crm_id.to_string()])
            .await?
            .remove(crm_id)
            .unwrap_or_default())
    }

    /// Number of links per connection.
    pub async fn link_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, object, COUNT(*) AS n FROM id_link GROUP BY connection, object \
             ORDER BY connection, object",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("counting identity links")?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("connection").ctx("counting links")?,
                    r.try_get("object").ctx("counting links")?,
                    r.try_get("n").ctx("counting links")?,
                ))
            })
            .collect()
    }
}
