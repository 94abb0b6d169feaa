//! The probabilistic matching pass as stored decisions: a plan (merges in
//! the order they are applied, and the review queue) written in one
//! transaction before anything is applied, and the pass's own cursor
//! (`applied`), moved in the transaction of the merges it counts. A pass
//! killed half-way is finished from its cursor, exactly as planned.

use sqlx::{AnyConnection, Row};

use crate::reviews::NewReview;
use crate::{corrupt, now_text, QueryContext, Store, StoreError};

/// One planned merge.
#[derive(Debug, Clone, PartialEq)]
pub struct PassStep {
    /// The contact that survives.
    pub survivor: String,
    /// The contact merged into it.
    pub loser: String,
    /// Why, as JSON text (kept with the merge).
    pub evidence: String,
}

/// Everything one pass decided.
#[derive(Debug, Clone, PartialEq)]
pub struct PassPlan {
    /// The pass's name (one per migration).
    pub name: String,
    /// The state of the import the pass decided on (its stream cursors).
    pub mark: String,
    /// Contacts compared.
    pub contacts: i64,
    /// Candidate pairs scored.
    pub candidate_pairs: i64,
    /// Merges, in order.
    pub steps: Vec<PassStep>,
    /// Pairs for a person to decide.
    pub reviews: Vec<NewReview>,
}

/// Where a stored pass stands.
#[derive(Debug, Clone, PartialEq)]
pub struct PassState {
    /// The pass's name.
    pub name: String,
    /// The import state it decided on.
    pub mark: String,
    /// Contacts compared.
    pub contacts: i64,
    /// Candidate pairs scored.
    pub candidate_pairs: i64,
    /// Planned merges.
    pub steps: i64,
    /// Merges committed so far (the pass's cursor).
    pub applied: i64,
    /// New review pairs, once finished.
    pub queued: Option<i64>,
    /// Every decision is applied.
    pub finished: bool,
}

/// Review pairs as stored: scores as their exact bits, so a resumed pass
/// queues the very numbers an uninterrupted one would.
fn reviews_text(reviews: &[NewReview]) -> String {
    let rows: Vec<serde_json::Value> = reviews
        .iter()
        .map(|r| {
            serde_json::json!([
                r.left_id,
                r.right_id,
                r.score.to_bits(),
                r.probability.to_bits(),
                r.evidence
            ])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

fn parse_reviews(text: &str) -> Result<Vec<NewReview>, StoreError> {
    const CTX: &str = "reading a matching pass's review queue";
    let rows: Vec<(String, String, u64, u64, String)> =
        serde_json::from_str(text).map_err(|e| corrupt(CTX, e))?;
    Ok(rows
        .into_iter()
        .map(
            |(left_id, right_id, score, probability, evidence)| NewReview {
                left_id,
                right_id,
                score: f64::from_bits(score),
                probability: f64::from_bits(probability),
                evidence,
            },
        )
        .collect())
}

/// Moves the pass's cursor from `from` to `to`; false when it was not at
/// `from` (another process applied these steps).
pub async fn advance(
    conn: &mut AnyConnection,
    name: &str,
    from: i64,
    to: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE match_pass SET applied = $1 WHERE name = $2 AND applied = $3")
        .bind(to)
        .bind(name)
        .bind(from)
        .execute(conn)
        .await
        .ctx("moving a matching pass's cursor")?;
    Ok(done.rows_affected() == 1)
}

/// Marks the pass finished with the number of review pairs it queued.
pub async fn finish(conn: &mut AnyConnection, name: &str, queued: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE match_pass SET finished_at = $1, queued = $2 WHERE name = $3")
        .bind(now_text())
        .bind(queued)
        .bind(name)
        .execute(conn)
        .await
        .ctx("finishing a matching pass")?;
    Ok(())
}

impl Store {
    /// The stored pass of this name.
    pub async fn match_pass(&self, name: &str) -> Result<Option<PassState>, StoreError> {
        const CTX: &str = "reading a matching pass";
        let row = sqlx::query(
            "SELECT name, mark, contacts, candidate_pairs, steps, applied, queued, finished_at \
             FROM match_pass WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .ctx(CTX)?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(PassState {
            name: r.try_get("name").ctx(CTX)?,
            mark: r.try_get("mark").ctx(CTX)?,
            contacts: r.try_get("contacts").ctx(CTX)?,
            candidate_pairs: r.try_get("candidate_pairs").ctx(CTX)?,
            steps: r.try_get("steps").ctx(CTX)?,
            applied: r.try_get("applied").ctx(CTX)?,
            queued: r.try_get("queued").ctx(CTX)?,
            finished: r
                .try_get::<Option<String>, _>("finished_at")
                .ctx(CTX)?
                .is_some(),
        }))
    }

    /// Stores a new plan (replacing any earlier pass of the name) with its
    /// cursor at 0, in one transaction.
    pub async fn start_match_pass(&self, plan: &PassPlan) -> Result<(), StoreError> {
        const CTX: &str = "storing a matching pass";
        let mut tx = self.begin().await?;
        for table in ["match_pass_step", "match_pass"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE name = $1"))
                .bind(&plan.name)
                .execute(&mut *tx)
                .await
                .ctx(CTX)?;
        }
        sqlx::query(
            "INSERT INTO match_pass (name, mark, contacts, candidate_pairs, steps, applied, \
             reviews, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        )
        .bind(&plan.name)
        .bind(&plan.mark)
        .bind(plan.contacts)
        .bind(plan.candidate_pairs)
        .bind(i64::try_from(plan.steps.len()).unwrap_or(i64::MAX))
        .bind(reviews_text(&plan.reviews))
        .bind(now_text())
        .execute(&mut *tx)
        .await
        .ctx(CTX)?;
        for (chunk_no, chunk) in plan.steps.chunks(crate::records::CHUNK).enumerate() {
            let mut q = crate::sql::Sql::new(
                "INSERT INTO match_pass_step (name, seq, survivor, loser, evidence) VALUES ",
            );
            for (i, s) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                let seq = chunk_no * crate::records::CHUNK + i;
                q.open()
                    .item(plan.name.clone())
                    .item(i64::try_from(seq).unwrap_or(i64::MAX))
                    .item(s.survivor.clone())
                    .item(s.loser.clone())
                    .item(s.evidence.clone())
                    .close();
            }
            q.execute(&mut tx).await.ctx(CTX)?;
        }
        tx.commit().await.ctx(CTX)
    }

    /// Up to `limit` planned merges from step `from` on, in order.
    pub async fn match_pass_steps(
        &self,
        name: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<PassStep>, StoreError> {
        const CTX: &str = "reading a matching pass's merges";
        let rows = sqlx::query(
            "SELECT survivor, loser, evidence FROM match_pass_step WHERE name = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(name)
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx(CTX)?;
        rows.iter()
            .map(|r| {
                Ok(PassStep {
                    survivor: r.try_get("survivor").ctx(CTX)?,
                    loser: r.try_get("loser").ctx(CTX)?,
                    evidence: r.try_get("evidence").ctx(CTX)?,
                })
            })
            .collect()
    }

    /// The review queue a pass decided.
    pub async fn match_pass_reviews(&self, name: &str) -> Result<Vec<NewReview>, StoreError> {
        const CTX: &str = "reading a matching pass's review queue";
        let text: Option<String> = sqlx::query("SELECT reviews FROM match_pass WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .ctx(CTX)?
            .map(|r| r.try_get("reviews"))
            .transpose()
            .ctx(CTX)?;
        match text {
            Some(t) => parse_reviews(&t),
            None => Ok(Vec::new()),
        }
    }
}
