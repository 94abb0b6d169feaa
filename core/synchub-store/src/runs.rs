//! The run log, and a canonical dump of the sync state for tests and audits.

use sqlx::Row;

use crate::{QueryContext, Store, StoreError};

/// Tables and the columns that describe their content (timestamps and
/// surrogate ids left out: two runs that did the same work dump the same).
const DUMP: &[(&str, &str)] = &[
    ("crm_record", "id, kind, data, hash, version, deleted, merged_into"),
    ("match_key", "kind, key, crm_id"),
    (
        "id_link",
        "connection, object, external_id, crm_id, remote_version, remote_updated_at, snapshot, snapshot_hash, deleted",
    ),
    ("sync_cursor", "connection, object, cursor, seq"),
    ("outbox", "connection, object, crm_id, op, idempotency_key, done_at IS NULL"),
    ("dead_letter", "fingerprint, connection, object, external_id, location, reason, payload"),
    (
        "conflict",
        "crm_id, object, field, connection, external_id, base, local, remote, status, resolution",
    ),
];

impl Store {
    /// Appends a finished run and its JSON report.
    pub async fn record_run(
        &self,
        pipeline: &str,
        started_at: &str,
        report_json: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO run_log (pipeline, started_at, finished_at, report) VALUES ($1, $2, $3, $4)",
        )
        .bind(pipeline)
        .bind(started_at)
        .bind(crate::now_text())
        .bind(report_json)
        .execute(&self.pool)
        .await
        .ctx("recording a run")?;
        Ok(())
    }

    /// The latest runs: (pipeline, started_at, finished_at, report JSON).
    pub async fn recent_runs(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        const CTX: &str = "listing runs";
        let rows = sqlx::query(
            "SELECT pipeline, started_at, finished_at, report FROM run_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("pipeline").ctx(CTX)?,
                    r.try_get("started_at").ctx(CTX)?,
                    r.try_get("finished_at").ctx(CTX)?,
                    r.try_get("report").ctx(CTX)?,
                ))
            })
            .collect()
    }

    /// Every row of the sync state as sorted text lines, for comparing two
    /// stores (crash-recovery tests) and for audits.
    pub async fn canonical_dump(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for (table, cols) in DUMP {
            let n = cols.split(',').count();
            let select: Vec<String> = cols
                .split(',')
                .map(|c| format!("CAST({} AS TEXT)", c.trim()))
                .collect();
            let sql = format!("SELECT {} FROM {table}", select.join(", "));
            let rows = sqlx::query(&sql)
                .fetch_all(&self.pool)
                .await
                .ctx("dumping the store")?;
            let mut lines = Vec::with_capacity(rows.len());
            for r in rows {
                let mut parts = Vec::with_capacity(n);
                for i in 0..n {
                    let v: Option<String> = r.try_get(i).ctx("dumping the store")?;
                    parts.push(v.unwrap_or_else(|| "∅".into()));
                }
                lines.push(format!("{table}|{}", parts.join("|")));
            }
            lines.sort();
            out.extend(lines);
        }
        Ok(out)
    }
}
