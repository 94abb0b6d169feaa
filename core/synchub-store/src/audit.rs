//! The audit log (migration 0008): who resolved, replayed, merged, kept
//! apart or unmerged what, and when, with the CRM records each entry
//! concerns so a customer's page lists what was done to it and to the
//! contacts merged into it.

use sqlx::Row;

use crate::{now_text, QueryContext, Store, StoreError};

/// An audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// The user who did it.
    pub actor: String,
    /// What, e.g. `conflict.resolve`, `dead_letter.replay`, `review.merge`,
    /// `review.keep_apart`, `merge.unmerge`.
    pub action: String,
    /// One line for people.
    pub summary: String,
    /// The particulars, as JSON text.
    pub detail: String,
}

const COLUMNS: &str = "a.id, a.at, a.actor, a.action, a.summary, a.detail";

fn decode(r: &sqlx::any::AnyRow) -> Result<AuditEntry, StoreError> {
    const CTX: &str = "reading the audit log";
    Ok(AuditEntry {
        id: r.try_get("id").ctx(CTX)?,
        at: r.try_get("at").ctx(CTX)?,
        actor: r.try_get("actor").ctx(CTX)?,
        action: r.try_get("action").ctx(CTX)?,
        summary: r.try_get("summary").ctx(CTX)?,
        detail: r.try_get("detail").ctx(CTX)?,
    })
}

impl Store {
    /// Records what `actor` did, concerning the CRM records `crm_ids`.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        summary: &str,
        detail: &serde_json::Value,
        crm_ids: &[String],
    ) -> Result<i64, StoreError> {
        const CTX: &str = "writing the audit log";
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, summary, detail) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(now_text())
        .bind(actor)
        .bind(action)
        .bind(summary)
        .bind(detail.to_string())
        .fetch_one(&mut *tx)
        .await
        .ctx(CTX)?;
        let mut ids: Vec<&String> = crm_ids.iter().collect();
        ids.sort();
        ids.dedup();
        for crm_id in ids {
            sqlx::query("INSERT INTO audit_record (crm_id, audit_id) VALUES ($1, $2)")
                .bind(crm_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .ctx(CTX)?;
        }
        tx.commit().await.ctx(CTX)?;
        Ok(id)
    }

    /// Entries about a contact or any contact merged into it, newest first.
    pub async fn audit_of_contact(
        &self,
        contact_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log a WHERE a.id IN ( \
               SELECT r.audit_id FROM audit_record r WHERE r.crm_id = $1 \
                 OR r.crm_id IN (SELECT id FROM contact_ids WHERE contact_id = $2)) \
             ORDER BY a.id DESC LIMIT $3"
        ))
        .bind(contact_id)
        .bind(contact_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx("reading a contact's audit entries")?;
        rows.iter().map(decode).collect()
    }

    /// The CRM id a source item is linked to, if it is: what a replayed
    /// dead letter landed as, so its audit entry shows on that customer.
    pub async fn linked_crm_id(
        &self,
        connection: &str,
        object: synchub_core::ObjectKind,
        external_id: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT crm_id FROM id_link WHERE connection = $1 AND object = $2 AND external_id = $3",
        )
        .bind(connection)
        .bind(object.as_str())
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .ctx("reading an identity link")
    }

    /// The latest entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log a ORDER BY a.id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx("reading the audit log")?;
        rows.iter().map(decode).collect()
    }
}
