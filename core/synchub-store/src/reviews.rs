//! The match review queue: contact pairs the probabilistic matcher scored
//! between its auto-merge and keep-apart thresholds, with the score and the
//! per-field evidence, waiting for a person to decide.

use sqlx::Row;

use crate::{now_text, QueryContext, Store, StoreError};

/// A pair to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReview {
    /// One contact (the smaller id).
    pub left_id: String,
    /// The other.
    pub right_id: String,
    /// Match weight (log-likelihood ratio).
    pub score: f64,
    /// Match probability under the fitted model.
    pub probability: f64,
    /// Per-field evidence, as JSON.
    pub evidence: String,
}

/// A queued pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Review id.
    pub id: i64,
    /// One contact.
    pub left_id: String,
    /// The other.
    pub right_id: String,
    /// Match weight.
    pub score: f64,
    /// Match probability.
    pub probability: f64,
    /// Per-field evidence, as JSON.
    pub evidence: String,
    /// `open`, `merged` or `kept_apart`.
    pub status: String,
    /// When it was queued.
    pub created_at: String,
}

const SELECT: &str = "SELECT id, left_id, right_id, score, probability, evidence, status, created_at FROM match_review";

fn decode(row: &sqlx::any::AnyRow) -> Result<Review, StoreError> {
    const CTX: &str = "reading the review queue";
    Ok(Review {
        id: row.try_get("id").ctx(CTX)?,
        left_id: row.try_get("left_id").ctx(CTX)?,
        right_id: row.try_get("right_id").ctx(CTX)?,
        score: row.try_get("score").ctx(CTX)?,
        probability: row.try_get("probability").ctx(CTX)?,
        evidence: row.try_get("evidence").ctx(CTX)?,
        status: row.try_get("status").ctx(CTX)?,
        created_at: row.try_get("created_at").ctx(CTX)?,
    })
}

/// Queues pairs not queued before, inside the caller's transaction;
/// returns how many are new.
pub async fn queue(conn: &mut sqlx::AnyConnection, pairs: &[NewReview]) -> Result<u64, StoreError> {
    let now = now_text();
    let mut added = 0;
    for p in pairs {
        let (left, right) = if p.left_id <= p.right_id {
            (&p.left_id, &p.right_id)
        } else {
            (&p.right_id, &p.left_id)
        };
        let done = sqlx::query(
            "INSERT INTO match_review (left_id, right_id, score, probability, evidence, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'open', $6) ON CONFLICT (left_id, right_id) DO NOTHING",
        )
        .bind(left.clone())
        .bind(right.clone())
        .bind(p.score)
        .bind(p.probability)
        .bind(p.evidence.clone())
        .bind(now.clone())
        .execute(&mut *conn)
        .await
        .ctx("queueing a review")?;
        added += done.rows_affected();
    }
    Ok(added)
}

impl Store {
    /// Queues pairs not queued before (a pair is queued once, whatever was
    /// decided about it); returns how many are new.
    pub async fn queue_reviews(&self, pairs: &[NewReview]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let added = queue(&mut tx, pairs).await?;
        tx.commit().await.ctx("queueing reviews")?;
        Ok(added)
    }

    /// The queue, best score first; only open pairs unless `all`.
    pub async fn reviews(&self, all: bool) -> Result<Vec<Review>, StoreError> {
        let sql = format!(
            "{SELECT} {} ORDER BY probability DESC, id",
            if all { "" } else { "WHERE status = 'open'" }
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .ctx("listing reviews")?;
        rows.iter().map(decode).collect()
    }

    /// One queued pair.
    pub async fn review(&self, id: i64) -> Result<Option<Review>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ctx("reading a review")?;
        row.as_ref().map(decode).transpose()
    }

    /// Records the decision on an open pair; false when it was not open.
    pub async fn decide_review(&self, id: i64, status: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE match_review SET status = $1, decided_at = $2 WHERE id = $3 AND status = 'open'",
        )
        .bind(status)
        .bind(now_text())
        .bind(id)
        .execute(&self.pool)
        .await
        .ctx("deciding a review")?;
        Ok(done.rows_affected() == 1)
    }
}
