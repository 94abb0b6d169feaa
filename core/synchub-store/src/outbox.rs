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

/// Records a refusal for good: the entry is not tried again by any run
/// (its attempts are set past every limit) and keeps the target's reason.
pub async fn refuse(conn: &mut AnyConnection, id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET attempts = $1, last_error = $2 WHERE id = $3")
        .bind(REFUSED_ATTEMPTS)
        .bind(error)
        .bind(id)
        .execute(conn)
        .await
        .ctx("recording an outbox refusal")?;
    Ok(())
}

/// The attempt count that marks an entry refused for good.
pub const REFUSED_ATTEMPTS: i64 = 1_000_000;

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

/// An outbox entry that failed: refused for good, or failing and retried.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedPush {
    /// Row id.
    pub id: i64,
    /// Target connection.
    pub connection: String,
    /// Object kind (text).
    pub object: String,
    /// CRM id.
    pub crm_id: String,
    /// What was to be done.
    pub op: ChangeOp,
    /// Failed attempts ([`REFUSED_ATTEMPTS`] when refused for good).
    pub attempts: i64,
    /// The target's last answer.
    pub last_error: Option<String>,
    /// When the change was queued (RFC 3339).
    pub created_at: String,
}

impl FailedPush {
    /// The target refused it for good: it is not tried again.
    pub fn refused(&self) -> bool {
        self.attempts >= REFUSED_ATTEMPTS
    }
}

impl Store {
    /// Entries not done that failed at least once: refused ones first, then
    /// those still retrying, oldest first within each.
    pub async fn failed_pushes(&self, limit: i64) -> Result<Vec<FailedPush>, StoreError> {
        const CTX: &str = "listing failed pushes";
        let rows = sqlx::query(
            "SELECT id, connection, object, crm_id, op, attempts, last_error, created_at \
             FROM outbox WHERE done_at IS NULL AND attempts > 0 \
             ORDER BY CASE WHEN attempts >= $1 THEN 0 ELSE 1 END, id LIMIT $2",
        )
        .bind(REFUSED_ATTEMPTS)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                let op: String = r.try_get("op").ctx(CTX)?;
                Ok(FailedPush {
                    id: r.try_get("id").ctx(CTX)?,
                    connection: r.try_get("connection").ctx(CTX)?,
                    object: r.try_get("object").ctx(CTX)?,
                    crm_id: r.try_get("crm_id").ctx(CTX)?,
                    op: parse_op(&op),
                    attempts: r.try_get("attempts").ctx(CTX)?,
                    last_error: r.try_get("last_error").ctx(CTX)?,
                    created_at: r.try_get("created_at").ctx(CTX)?,
                })
            })
            .collect()
    }
}

/// Who claims outbox entries, when, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ClaimBy<'a> {
    /// The drain's unique id.
    pub holder: &'a str,
    /// Now, by the claiming process's clock.
    pub now: chrono::DateTime<chrono::Utc>,
    /// How long the claim lasts (past it, another drain may take the rows).
    pub ttl: std::time::Duration,
}

/// The columns a claim returns.
const CLAIMED: &str = "id, crm_id, op, idempotency_key, attempts";

impl Store {
    /// Claims up to `limit` records' pending entries of one target and
    /// object for `holder` until `now + ttl`, oldest first, one entry per
    /// record (its oldest; the others follow it, since `complete` marks every
    /// entry of the record done). A record is claimed through its oldest
    /// pending entry, so two drains never hold one record: on PostgreSQL the
    /// rows are locked `FOR UPDATE SKIP LOCKED` (a concurrent drain passes
    /// over them), on SQLite the statement runs under the writer lock.
    /// Entries already claimed by `holder` are returned again; a claim that
    /// has expired (its drain died) may be taken. A later delete entry of a
    /// record turns its claim into a delete.
    pub async fn claim_pushes(
        &self,
        connection: &str,
        object: ObjectKind,
        limit: i64,
        max_attempts: i64,
        by: &ClaimBy<'_>,
    ) -> Result<Vec<PendingPush>, StoreError> {
        const CTX: &str = "claiming outbox entries";
        let (holder, now, ttl) = (by.holder, by.now, by.ttl);
        let at = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let until =
            now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::hours(1));
        let lock = if self.backend == crate::Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, claim_until = $2 WHERE id IN ( \
             SELECT o.id FROM outbox o WHERE o.connection = $3 AND o.object = $4 \
             AND o.done_at IS NULL AND o.attempts < $5 \
             AND (o.claim_until IS NULL OR o.claim_until < $6 OR o.claimed_by = $7) \
             AND o.id = (SELECT MIN(h.id) FROM outbox h WHERE h.connection = o.connection \
             AND h.object = o.object AND h.crm_id = o.crm_id AND h.done_at IS NULL \
             AND h.attempts < $8) \
             ORDER BY o.id LIMIT $9{lock}) RETURNING {CLAIMED}"
        );
        let rows = sqlx::query(&sql)
            .bind(holder)
            .bind(at(until))
            .bind(connection)
            .bind(object.as_str())
            .bind(max_attempts)
            .bind(at(now))
            .bind(holder)
            .bind(max_attempts)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .ctx(CTX)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let op: String = r.try_get("op").ctx(CTX)?;
            out.push(PendingPush {
                id: r.try_get("id").ctx(CTX)?,
                crm_id: r.try_get("crm_id").ctx(CTX)?,
                op: parse_op(&op),
                idempotency_key: r.try_get("idempotency_key").ctx(CTX)?,
                attempts: r.try_get("attempts").ctx(CTX)?,
            });
        }
        out.sort_by_key(|p| p.id);
        if out.is_empty() {
            return Ok(out);
        }
        let ids: Vec<String> = out.iter().map(|p| p.crm_id.clone()).collect();
        let mut conn = self.pool.acquire().await.ctx(CTX)?;
        let mut deletes = std::collections::HashSet::new();
        for chunk in ids.chunks(CHUNK) {
            let mut q = Sql::new("SELECT DISTINCT crm_id FROM outbox WHERE connection = ");
            q.bind(connection.to_string());
            q.push(" AND object = ").bind(object.as_str());
            q.push(" AND done_at IS NULL AND op = 'delete' AND crm_id IN ")
                .list(chunk.iter().cloned());
            for r in q.fetch_all(&mut conn).await.ctx(CTX)? {
                deletes.insert(r.try_get::<String, _>("crm_id").ctx(CTX)?);
            }
        }
        for p in &mut out {
            if deletes.contains(&p.crm_id) {
                p.op = ChangeOp::Delete;
            }
        }
        Ok(out)
    }

    /// Ends the claims on one target's and object's pending entries whose
    /// drain was a process of this host that has ended (a `synchub run`
    /// killed mid-push), so the next drain pushes them at once instead of
    /// after the claim's TTL. Their idempotency keys are kept: a create the
    /// dead drain sent is found, not made twice. Returns how many holders'
    /// claims were ended.
    pub async fn release_dead_claims(
        &self,
        connection: &str,
        object: ObjectKind,
    ) -> Result<usize, StoreError> {
        const CTX: &str = "reading outbox claims";
        let rows = sqlx::query(
            "SELECT DISTINCT claimed_by FROM outbox WHERE connection = $1 AND object = $2 \
             AND done_at IS NULL AND claimed_by IS NOT NULL",
        )
        .bind(connection)
        .bind(object.as_str())
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        let mut ended = 0;
        for r in rows {
            let holder: String = r.try_get("claimed_by").ctx(CTX)?;
            if crate::leases::holder_id_is_dead(&holder) {
                tracing::info!(%connection, %object, %holder, "taking over the outbox claims of an ended process");
                self.release_claims(&holder).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Ends every claim `holder` still has on pending entries (done ones
    /// keep theirs as a record of who pushed them).
    pub async fn release_claims(&self, holder: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claim_until = NULL \
             WHERE claimed_by = $1 AND done_at IS NULL",
        )
        .bind(holder)
        .execute(&self.pool)
        .await
        .ctx("releasing outbox claims")?;
        Ok(())
    }

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
