//! Conflicts: same-field edits the pipeline's policy sends to a person.
//! One open conflict per (record, field, connection, source record): a newer
//! value of the same source record replaces the one waiting, while two source
//! records merged into one CRM record (duplicate people) each keep their own
//! row, so a conflict's remote value always comes from the record it names.

use serde::Serialize;
use sqlx::{AnyConnection, Row};
use synchub_core::ObjectKind;

use crate::{corrupt, now_text, QueryContext, Store, StoreError};

/// A conflict to record. Values are JSON text (`null` when absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewConflict {
    /// CRM id.
    pub crm_id: String,
    /// Object kind.
    pub object: ObjectKind,
    /// Field name.
    pub field: String,
    /// The connection whose edit conflicts.
    pub connection: String,
    /// Its external id.
    pub external_id: String,
    /// Last synced value.
    pub base: String,
    /// CRM value.
    pub local: String,
    /// Remote value.
    pub remote: String,
}

/// A stored conflict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// Conflict id.
    pub id: i64,
    /// What conflicts.
    #[serde(flatten)]
    pub detail: NewConflict,
    /// open or resolved.
    pub status: String,
    /// The chosen value, once resolved.
    pub resolution: Option<String>,
    /// When it was recorded.
    pub created_at: String,
}

/// Records a conflict, replacing the values of an open one on the same field
/// raised by the same source record.
/// Returns true when a new conflict was opened.
pub async fn record(conn: &mut AnyConnection, c: &NewConflict) -> Result<bool, StoreError> {
    const CTX: &str = "recording a conflict";
    let existing = sqlx::query(
        "SELECT id FROM conflict WHERE crm_id = $1 AND field = $2 AND connection = $3 \
         AND external_id = $4 AND status = 'open'",
    )
    .bind(&c.crm_id)
    .bind(&c.field)
    .bind(&c.connection)
    .bind(&c.external_id)
    .fetch_optional(&mut *conn)
    .await
    .ctx(CTX)?;
    if let Some(row) = existing {
        let id: i64 = row.try_get("id").ctx(CTX)?;
        sqlx::query("UPDATE conflict SET base = $1, local = $2, remote = $3 WHERE id = $4")
            .bind(&c.base)
            .bind(&c.local)
            .bind(&c.remote)
            .bind(id)
            .execute(&mut *conn)
            .await
            .ctx(CTX)?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO conflict (crm_id, object, field, connection, external_id, base, local, remote, \
         status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9)",
    )
    .bind(&c.crm_id)
    .bind(c.object.as_str())
    .bind(&c.field)
    .bind(&c.connection)
    .bind(&c.external_id)
    .bind(&c.base)
    .bind(&c.local)
    .bind(&c.remote)
    .bind(now_text())
    .execute(&mut *conn)
    .await
    .ctx(CTX)?;
    Ok(true)
}

/// Marks a conflict resolved with the chosen value (JSON text).
pub async fn mark_resolved(
    conn: &mut AnyConnection,
    id: i64,
    resolution: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE conflict SET status = 'resolved', resolution = $1, resolved_at = $2 WHERE id = $3",
    )
    .bind(resolution)
    .bind(now_text())
    .bind(id)
    .execute(conn)
    .await
    .ctx("resolving a conflict")?;
    Ok(())
}

fn decode(r: &sqlx::any::AnyRow) -> Result<Conflict, StoreError> {
    const CTX: &str = "reading a conflict";
    let object: String = r.try_get("object").ctx(CTX)?;
    Ok(Conflict {
        id: r.try_get("id").ctx(CTX)?,
        detail: NewConflict {
            crm_id: r.try_get("crm_id").ctx(CTX)?,
            object: ObjectKind::parse(&object).ok_or_else(|| corrupt(CTX, object.clone()))?,
            field: r.try_get("field").ctx(CTX)?,
            connection: r.try_get("connection").ctx(CTX)?,
            external_id: r.try_get("external_id").ctx(CTX)?,
            base: r
                .try_get::<Option<String>, _>("base")
                .ctx(CTX)?
                .unwrap_or_default(),
            local: r
                .try_get::<Option<String>, _>("local")
                .ctx(CTX)?
                .unwrap_or_default(),
            remote: r
                .try_get::<Option<String>, _>("remote")
                .ctx(CTX)?
                .unwrap_or_default(),
        },
        status: r.try_get("status").ctx(CTX)?,
        resolution: r.try_get("resolution").ctx(CTX)?,
        created_at: r.try_get("created_at").ctx(CTX)?,
    })
}

/// The records among `crm_ids` with an open conflict raised by `connection`.
pub async fn open_for(
    conn: &mut AnyConnection,
    connection: &str,
    crm_ids: &[String],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut out = std::collections::HashSet::new();
    for chunk in crm_ids.chunks(crate::records::CHUNK) {
        let mut q = crate::sql::Sql::new(
            "SELECT crm_id FROM conflict WHERE status = 'open' AND connection = ",
        );
        q.bind(connection.to_string())
            .push(" AND crm_id IN ")
            .list(chunk.iter().cloned());
        for row in q
            .fetch_all(&mut *conn)
            .await
            .ctx("looking up open conflicts")?
        {
            out.insert(row.try_get("crm_id").ctx("looking up open conflicts")?);
        }
    }
    Ok(out)
}

const SELECT: &str = "SELECT id, crm_id, object, field, connection, external_id, base, local, \
     remote, status, resolution, created_at FROM conflict";

impl Store {
    /// Conflicts, open ones only unless `all`.
    pub async fn conflicts(&self, all: bool) -> Result<Vec<Conflict>, StoreError> {
        let sql = format!(
            "{SELECT} {} ORDER BY id",
            if all { "" } else { "WHERE status = 'open'" }
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .ctx("listing conflicts")?;
        rows.iter().map(decode).collect()
    }

    /// One conflict.
    pub async fn conflict(&self, id: i64) -> Result<Option<Conflict>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ctx("reading a conflict")?;
        row.as_ref().map(decode).transpose()
    }
}
