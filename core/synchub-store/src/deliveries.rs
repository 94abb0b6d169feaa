//! Webhook state that survives restarts and is shared by every instance on
//! the store (issue 18 item 3):
//! - the replay guard (`webhook_seen`): delivery ids and body hashes taken,
//!   per connection, remembered for a retention period, so a delivery
//!   redelivered after a restart (or to another instance) is recognised;
//! - the delivery queue (`delivery_queue`): a pending wake-up per pipeline
//!   (a burst of webhooks, or a schedule tick, collapses into one pending
//!   row that any instance may take) and webhook deletes still to apply
//!   (a delete that fails stays queued with its error and is retried after
//!   a backoff, on any instance, instead of being dropped);
//! - schedule ticks (`schedule_tick`): each period of a pipeline's schedule
//!   is claimed by one instance, which runs it; the others skip it.

use std::time::Duration;

use sqlx::Row;
use synchub_http::webhook::ReplayGuard;

use crate::{now_text, QueryContext, Store, StoreError};

fn text_at(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn after(d: Duration) -> String {
    text_at(chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default())
}

fn before(d: Duration) -> String {
    text_at(chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default())
}

/// A webhook delete waiting in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedDelete {
    /// Row id.
    pub id: i64,
    /// Connection the delete came from.
    pub connection: String,
    /// Object kind, as text.
    pub object: String,
    /// The deleted record, as JSON.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// Pending work of one pipeline, by kind.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    /// Pipeline name.
    pub pipeline: String,
    /// `wake` or `delete`.
    pub kind: String,
    /// Rows pending.
    pub rows: i64,
}

impl Store {
    /// Records `id` as taken on `connection`; true the first time within
    /// `retention` (an older sighting counts as new).
    pub async fn mark_seen(
        &self,
        connection: &str,
        id: &str,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO webhook_seen (connection, id, seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connection, id) DO UPDATE SET seen_at = excluded.seen_at \
             WHERE webhook_seen.seen_at < $4",
        )
        .bind(connection)
        .bind(id)
        .bind(now_text())
        .bind(before(retention))
        .execute(self.pool())
        .await
        .ctx("recording a webhook delivery")?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets a delivery that could not be carried out.
    pub async fn forget_seen(&self, connection: &str, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_seen WHERE connection = $1 AND id = $2")
            .bind(connection)
            .bind(id)
            .execute(self.pool())
            .await
            .ctx("forgetting a webhook delivery")?;
        Ok(())
    }

    /// Drops sightings older than `retention`; returns how many.
    pub async fn prune_seen(&self, retention: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM webhook_seen WHERE seen_at < $1")
            .bind(before(retention))
            .execute(self.pool())
            .await
            .ctx("pruning webhook deliveries")?;
        Ok(done.rows_affected())
    }

    /// Asks for one more run of `pipeline`; false when one was already
    /// pending (the burst collapses into it).
    pub async fn enqueue_wake(
        &self,
        pipeline: &str,
        connection: &str,
        object: &str,
    ) -> Result<bool, StoreError> {
        let now = now_text();
        let done = sqlx::query(
            "INSERT INTO delivery_queue (pipeline, kind, connection, object, dedup_key, \
             enqueued_at, not_before) VALUES ($1, 'wake', $2, $3, $4, $5, $5) \
             ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind(pipeline)
        .bind(connection)
        .bind(object)
        .bind(format!("wake:{pipeline}"))
        .bind(now)
        .execute(self.pool())
        .await
        .ctx("queueing a pipeline wake-up")?;
        Ok(done.rows_affected() > 0)
    }

    /// Takes the pending wake-up of `pipeline`, if any (one taker wins).
    pub async fn take_wake(&self, pipeline: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM delivery_queue WHERE dedup_key = $1")
            .bind(format!("wake:{pipeline}"))
            .execute(self.pool())
            .await
            .ctx("taking a pipeline wake-up")?;
        Ok(done.rows_affected() > 0)
    }

    /// Queues a webhook delete of `pipeline` to apply; returns its id.
    pub async fn enqueue_delete(
        &self,
        pipeline: &str,
        connection: &str,
        object: &str,
        payload: &str,
    ) -> Result<i64, StoreError> {
        let now = now_text();
        let row = sqlx::query(
            "INSERT INTO delivery_queue (pipeline, kind, connection, object, payload, \
             enqueued_at, not_before) VALUES ($1, 'delete', $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(pipeline)
        .bind(connection)
        .bind(object)
        .bind(payload)
        .bind(now)
        .fetch_one(self.pool())
        .await
        .ctx("queueing a webhook delete")?;
        row.try_get::<i64, _>(0).ctx("queueing a webhook delete")
    }

    /// Claims up to `limit` deletes of `pipeline` that are due and not
    /// claimed by a live holder, for `claim_for`.
    pub async fn claim_deletes(
        &self,
        pipeline: &str,
        holder: &str,
        claim_for: Duration,
        limit: i64,
    ) -> Result<Vec<QueuedDelete>, StoreError> {
        let now = now_text();
        // The claim condition is repeated outside the sub-select: PostgreSQL
        // re-checks it on a row another claimer changed meanwhile.
        let rows = sqlx::query(
            "UPDATE delivery_queue SET claimed_by = $1, claim_until = $2, attempts = attempts + 1 \
             WHERE kind = 'delete' AND (claim_until IS NULL OR claim_until < $3) AND id IN ( \
               SELECT id FROM delivery_queue WHERE pipeline = $4 AND kind = 'delete' \
               AND not_before <= $3 AND (claim_until IS NULL OR claim_until < $3) \
               ORDER BY id LIMIT $5) \
             RETURNING id, connection, object, payload, attempts",
        )
        .bind(holder)
        .bind(after(claim_for))
        .bind(&now)
        .bind(pipeline)
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .ctx("claiming webhook deletes")?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(QueuedDelete {
                id: r.try_get(0).ctx("reading a queued delete")?,
                connection: r.try_get(1).ctx("reading a queued delete")?,
                object: r.try_get(2).ctx("reading a queued delete")?,
                payload: r
                    .try_get::<Option<String>, _>(3)
                    .ctx("reading a queued delete")?
                    .unwrap_or_default(),
                attempts: r.try_get(4).ctx("reading a queued delete")?,
            });
        }
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    /// A queued delete was applied: it leaves the queue.
    pub async fn finish_delete(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM delivery_queue WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .ctx("finishing a queued delete")?;
        Ok(())
    }

    /// A queued delete failed: it is released, with its error, to be tried
    /// again after `retry_in`.
    pub async fn fail_delete(
        &self,
        id: i64,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE delivery_queue SET claimed_by = NULL, claim_until = NULL, last_error = $2, \
             not_before = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(synchub_http::secret::redact(error).into_owned())
        .bind(after(retry_in))
        .execute(self.pool())
        .await
        .ctx("releasing a failed delete")?;
        Ok(())
    }

    /// Claims schedule tick `period` of `pipeline` (its `key`: the
    /// pipeline's name, with `#full` for complete reads) for `holder`;
    /// true when this caller is the first, so a tick runs once across
    /// every instance on the store.
    pub async fn claim_tick(
        &self,
        key: &str,
        period: i64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "claiming a schedule tick";
        let mut tx = self.pool().begin().await.ctx(CTX)?;
        sqlx::query("DELETE FROM schedule_tick WHERE pipeline = $1 AND claimed_at < $2")
            .bind(key)
            .bind(before(Duration::from_secs(24 * 3600)))
            .execute(&mut *tx)
            .await
            .ctx(CTX)?;
        let done = sqlx::query(
            "INSERT INTO schedule_tick (pipeline, period, holder, claimed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (pipeline, period) DO NOTHING",
        )
        .bind(key)
        .bind(period)
        .bind(holder)
        .bind(now_text())
        .execute(&mut *tx)
        .await
        .ctx(CTX)?;
        tx.commit().await.ctx(CTX)?;
        Ok(done.rows_affected() == 1)
    }

    /// The schedule ticks claimed for `key` (kept a day): period and holder.
    pub async fn claimed_ticks(&self, key: &str) -> Result<Vec<(i64, String)>, StoreError> {
        const CTX: &str = "listing claimed schedule ticks";
        let rows = sqlx::query(
            "SELECT period, holder FROM schedule_tick WHERE pipeline = $1 ORDER BY period",
        )
        .bind(key)
        .fetch_all(self.pool())
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).ctx(CTX)?, r.try_get(1).ctx(CTX)?)))
            .collect()
    }

    /// Rows waiting in the queue, per pipeline and kind.
    pub async fn queue_depth(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let rows = sqlx::query(
            "SELECT pipeline, kind, COUNT(*) FROM delivery_queue GROUP BY pipeline, kind \
             ORDER BY pipeline, kind",
        )
        .fetch_all(self.pool())
        .await
        .ctx("counting the delivery queue")?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(QueueDepth {
                pipeline: r.try_get(0).ctx("counting the delivery queue")?,
                kind: r.try_get(1).ctx("counting the delivery queue")?,
                rows: r.try_get(2).ctx("counting the delivery queue")?,
            });
        }
        Ok(out)
    }
}

/// A replay guard for one connection kept in the store.
#[derive(Debug, Clone)]
pub struct StoreReplayGuard {
    store: Store,
    connection: String,
    retention: Duration,
}

impl StoreReplayGuard {
    /// Remembers deliveries of `connection` for `retention`.
    pub fn new(store: Store, connection: &str, retention: Duration) -> Self {
        Self {
            store,
            connection: connection.to_string(),
            retention,
        }
    }
}

#[async_trait::async_trait]
impl ReplayGuard for StoreReplayGuard {
    async fn first_seen(&self, delivery_id: &str) -> bool {
        match self
            .store
            .mark_seen(&self.connection, delivery_id, self.retention)
            .await
        {
            Ok(first) => first,
            // Taking a repeat (applied idempotently) beats dropping an event.
            Err(e) => {
                tracing::warn!(connection = %self.connection, error = %e, "replay guard unavailable; taking the delivery");
                true
            }
        }
    }

    async fn forget(&self, delivery_id: &str) {
        if let Err(e) = self.store.forget_seen(&self.connection, delivery_id).await {
            tracing::warn!(connection = %self.connection, error = %e, "could not forget a webhook delivery");
        }
    }
}
