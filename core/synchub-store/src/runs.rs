//! The run log, and a canonical dump of the sync state for tests and audits.

use sqlx::Row;

use crate::{QueryContext, Store, StoreError};

/// How many runs the log keeps per pipeline; older rows are dropped.
pub const KEEP_RUNS: i64 = 500;

/// The report key counting the no-op runs a run-log row stands for.
pub const NOOP_RUNS: &str = "noop_runs";

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
    /// Logs a finished run and its JSON report, keeping the log bounded:
    /// consecutive no-op runs of a pipeline (nothing changed, nothing
    /// failed) share one row, which counts them in the report's
    /// `noop_runs` and spans from the first one's start to the last one's
    /// end; and only the latest [`KEEP_RUNS`] rows of a pipeline are kept.
    pub async fn record_run(
        &self,
        pipeline: &str,
        started_at: &str,
        report_json: &str,
        noop: bool,
    ) -> Result<(), StoreError> {
        const CTX: &str = "recording a run";
        let mut tx = self.begin().await?;
        let last = sqlx::query(
            "SELECT id, report FROM run_log WHERE pipeline = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(pipeline)
        .fetch_optional(&mut *tx)
        .await
        .ctx(CTX)?;
        // The no-op row this run joins, and how many runs it counts so far.
        let joined = match (&last, noop) {
            (Some(row), true) => {
                let id: i64 = row.try_get("id").ctx(CTX)?;
                let report: String = row.try_get("report").ctx(CTX)?;
                serde_json::from_str::<serde_json::Value>(&report)
                    .ok()
                    .and_then(|v| v.get(NOOP_RUNS).and_then(serde_json::Value::as_u64))
                    .map(|n| (id, n))
            }
            _ => None,
        };
        let mut json = report_json.to_string();
        if noop {
            if let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(report_json) {
                let n = joined.map_or(0, |(_, n)| n) + 1;
                map.insert(NOOP_RUNS.into(), n.into());
                json = serde_json::Value::Object(map).to_string();
            }
        }
        if let Some((id, _)) = joined {
            sqlx::query("UPDATE run_log SET finished_at = $1, report = $2 WHERE id = $3")
                .bind(crate::now_text())
                .bind(&json)
                .bind(id)
                .execute(&mut *tx)
                .await
                .ctx(CTX)?;
        } else {
            sqlx::query(
                "INSERT INTO run_log (pipeline, started_at, finished_at, report) VALUES ($1, $2, $3, $4)",
            )
            .bind(pipeline)
            .bind(started_at)
            .bind(crate::now_text())
            .bind(&json)
            .execute(&mut *tx)
            .await
            .ctx(CTX)?;
            sqlx::query(
                "DELETE FROM run_log WHERE pipeline = $1 AND id NOT IN \
                 (SELECT id FROM run_log WHERE pipeline = $1 ORDER BY id DESC LIMIT $2)",
            )
            .bind(pipeline)
            .bind(KEEP_RUNS)
            .execute(&mut *tx)
            .await
            .ctx(CTX)?;
        }
        tx.commit().await.ctx(CTX)
    }

    /// How many rows the run log holds for a pipeline.
    pub async fn run_log_len(&self, pipeline: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM run_log WHERE pipeline = $1")
            .bind(pipeline)
            .fetch_one(&self.pool)
            .await
            .ctx("counting runs")
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
