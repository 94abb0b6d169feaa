//! The outbox: CRM changes waiting to be written to a target connection.
//! Rows are written in the same transaction as the change they announce; the
//! push side drains them and marks them done with the target's answer.

use sqlx::{AnyConnection, Row};
use synchub_core::{ChangeOp, ObjectKind};

use crate::records::CHUNK;
use crate::sql::Sql;
use crate::{now_text, QueryContext, Store, StoreError};

/// A change to announce to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Target connection.
    pub connection: String,
    /// Object kind.
    pub object: ObjectKind,
    /// CRM id.
    pub crm_id: String,
    /// What to do.
    pub op: ChangeOp,
    /// Unique per (target, record state): replays of a page add nothing.
    pub idempotency_key: String,
}

/// A pending outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPush {
    /// Row id.
    pub id: i64,
    /// CRM id.
    pub crm_id: String,
    /// What to do.
    pub op: ChangeOp,
    /// Idempotency key to send to the target.
    pub idempotency_key: String,
    /// Failed attempts so far.
    pub attempts: i64,
}

fn op_str(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Create => "create",
        ChangeOp::Update => "update",
        ChangeOp::Delete => "delete",
    }
}

fn parse_op(s: &str) -> ChangeOp {
    match s {
        "create" => ChangeOp::Create,
        "delete" => ChangeOp::Delete,
        _ => ChangeOp::Update,
    }
}

/// Adds entries; an entry whose idempotency key exists is skipped.
pub async fn enqueue(conn: &mut AnyConnection, entries: &[OutboxEntry]) -> Result<(), StoreError> {
    let now = now_text();
    for chunk in entries.chunks(CHUNK) {
        let mut q = Sql::new(
            "INSERT INTO outbox (connection, object, crm_id, op, idempotency_key, created_at) VALUES ",
        );
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.open()
                .item(e.connection.clone())
                .item(e.object.as_str())
                .item(e.crm_id.clone())
                .item(op_str(e.op))
                .item(e.idempotency_key.clone())
                .item(now.clone())
                .close();
        }
        q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
        q.execute(&mut *conn).await.ctx("writing outbox entries")?;
    }
    Ok(())
}

/// Marks every pending entry of these records for one target done.
pub async fn complete(
    conn: &mut AnyConnection,
    connection: &str,
    object: ObjectKind,
    crm_ids: &[String],
) -> Result<(), StoreError> {
    let now = now_text();
    for chunk in crm_ids.chunks(CHUNK) {
        let mut q = Sql::new("UPDATE outbox SET done_at = ");
        q.bind(now.clone());
        q.push(", last_error = NULL WHERE done_at IS NULL AND connection = ")
            .bind(connection.to_string());
        q.push(" AND object = ").bind(object.as_str());
        q.push(" AND crm_id IN ").list(chunk.iter().cloned());
        q.execute(&mut *conn)
            .await
            .ctx("completing outbox entries")?;
    }
    Ok(())
}

/// Records a failed attempt.
pub async fn fail(conn: &mut AnyConnection, id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2")
        .bind(error)
        .bind(id)
        .execute(conn)
        .await
        .ctx("recording an outbox failure")?;
    Ok(())
}

impl Store {
    /// Pending entries of one target and object, oldest first, one per record.
    pub async fn pending_pushes(
        &self,
        connection: &str,
        object: ObjectKind,
        limit: i64,
        max_attempts: i64,
    ) -> Result<Vec<PendingPush>, StoreError> {
        const CTX: &str = "reading the outbox";
        let rows = sqlx::query(
            "SELECT id, crm_id, op, idempotency_key, attempts FROM outbox \
             WHERE connection = $1 AND object = $2 AND done_at IS NULL AND attempts < $3 \
             ORDER BY id LIMIT $4",
        )
        .bind(connection)
        .bind(object.as_str())
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        let mut out: Vec<PendingPush> = Vec::with_capacity(rows.len());
        for r in rows {
            let crm_id: String = r.try_get("crm_id").ctx(CTX)?;
            let op: String = r.try_get("op").ctx(CTX)?;
            // Several entries for one record coalesce: the latest state is pushed once.
            if let Some(existing) = out.iter_mut().find(|p| p.crm_id == crm_id) {
                if parse_op(&op) == ChangeOp::Delete {
                    existing.op = ChangeOp::Delete;
                }
                continue;
            }
            out.push(PendingPush {
                id: r.try_get("id").ctx(CTX)?,
                crm_id,
                op: parse_op(&op),
                idempotency_key: r.try_get("idempotency_key").ctx(CTX)?,
                attempts: r.try_get("attempts").ctx(CTX)?,
            });
        }
        Ok(out)
    }

    /// Pending entries per connection: (connection, pending, failing).
    pub async fn outbox_summary(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        const CTX: &str = "summarising the outbox";
        let rows = sqlx::query(
            "SELECT connection, COUNT(*) AS pending, \
             SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS failing \
             FROM outbox WHERE done_at IS NULL GROUP BY connection ORDER BY connection",
        )
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("connection").ctx(CTX)?,
                    r.try_get("pending").ctx(CTX)?,
                    r.try_get::<Option<i64>, _>("failing")
                        .ctx(CTX)?
                        .unwrap_or(0),
                ))
            })
            .collect()
    }
}
