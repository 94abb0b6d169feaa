//! The rate budget shared by every instance on one PostgreSQL store: a
//! token bucket per key in `rate_budget`, implementing
//! [`synchub_http::shared_budget::SharedBudget`].
//!
//! Each take or settle is one short transaction that locks the key's row
//! (`SELECT … FOR UPDATE`), refills it by the time passed on the
//! database's clock (so instances on machines whose clocks differ agree),
//! and takes or returns points. Two instances asking at once are served one
//! after the other by the row lock; neither can see points the other took.
//!
//! A bucket whose shape is learned from the server (a Shopify cost bucket)
//! starts unknown: one instance at a time is granted a probe (for
//! [`PROBE_TTL`]) and the others wait until its answer has told the bucket
//! its size, rate and level.
//!
//! SQLite is one process by design: it has no shared budget, and each
//! process keeps to its local quota ([`Store::shared_budget`] is `None`).

use std::time::Duration;

use sqlx::{AnyPool, Row};
use synchub_http::shared_budget::{BucketShape, BudgetError, Observed, SharedBudget, Take};

use crate::{Backend, Store};

/// How long a probe of an unknown bucket may take before another instance
/// is let through to learn it.
pub const PROBE_TTL: Duration = Duration::from_secs(10);
/// How often a waiter asks again while a bucket is being learned.
const PROBE_POLL: Duration = Duration::from_millis(50);

/// The shared budget of a PostgreSQL store.
#[derive(Clone)]
pub struct StoreBudget {
    pool: AnyPool,
}

impl std::fmt::Debug for StoreBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreBudget(postgres rate_budget)")
    }
}

impl Store {
    /// The rate budget shared through this store, on PostgreSQL.
    pub fn shared_budget(&self) -> Option<StoreBudget> {
        (self.backend == Backend::Postgres).then(|| StoreBudget {
            pool: self.pool.clone(),
        })
    }
}

/// One row as locked, with the database's clock.
struct Locked {
    capacity: Option<f64>,
    refill: Option<f64>,
    level: f64,
    at: f64,
    probe_at: Option<f64>,
    now: f64,
}

impl Locked {
    /// The level refilled up to now (a known bucket).
    fn refilled(&self, capacity: f64, refill: f64) -> f64 {
        let elapsed = (self.now - self.at).max(0.0);
        (self.level + elapsed * refill).min(capacity)
    }
}

fn failed(what: &str, e: sqlx::Error) -> BudgetError {
    BudgetError(format!(
        "{what}: {}",
        synchub_http::secret::redact(&e.to_string())
    ))
}

type Conn = sqlx::Transaction<'static, sqlx::Any>;

async fn lock(tx: &mut Conn, key: &str) -> Result<Option<Locked>, BudgetError> {
    let row = sqlx::query(
        "SELECT capacity, refill_per_sec, level, at_epoch, probe_at, \
         CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION) \
         FROM rate_budget WHERE key = $1 FOR UPDATE",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| failed("reading a rate budget", e))?;
    let Some(row) = row else { return Ok(None) };
    let get = |i: usize| -> Result<Option<f64>, BudgetError> {
        row.try_get::<Option<f64>, _>(i)
            .map_err(|e| failed("decoding a rate budget", e))
    };
    Ok(Some(Locked {
        capacity: get(0)?,
        refill: get(1)?,
        level: get(2)?.unwrap_or(0.0),
        at: get(3)?.unwrap_or(0.0),
        probe_at: get(4)?,
        now: get(5)?.unwrap_or(0.0),
    }))
}

/// `$n` for a value, `NULL` for none: sqlx's `Any` driver cannot bind a
/// typed NULL float, so absent values are written into the statement.
fn param(value: Option<f64>, n: usize) -> String {
    value.map_or_else(|| "NULL".to_string(), |_| format!("${n}"))
}

async fn lock_or_create(
    tx: &mut Conn,
    key: &str,
    shape: Option<BucketShape>,
) -> Result<Locked, BudgetError> {
    if let Some(l) = lock(tx, key).await? {
        return Ok(l);
    }
    let capacity = shape.map(|s| s.capacity);
    let refill = shape.map(|s| s.refill_per_sec);
    let sql = format!(
        "INSERT INTO rate_budget (key, capacity, refill_per_sec, level, at_epoch, probe_at) \
         VALUES ($1, {}, {}, $2, CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION), NULL) \
         ON CONFLICT (key) DO NOTHING",
        param(capacity, 3),
        param(refill, 4)
    );
    let mut q = sqlx::query(&sql).bind(key).bind(capacity.unwrap_or(0.0));
    for v in [capacity, refill].into_iter().flatten() {
        q = q.bind(v);
    }
    q.execute(&mut **tx)
        .await
        .map_err(|e| failed("creating a rate budget", e))?;
    lock(tx, key)
        .await?
        .ok_or_else(|| BudgetError(format!("rate budget `{key}` vanished")))
}

async fn store_row(
    tx: &mut Conn,
    key: &str,
    capacity: Option<f64>,
    refill: Option<f64>,
    level: f64,
    at: f64,
    probe_at: Option<f64>,
) -> Result<(), BudgetError> {
    let sql = format!(
        "UPDATE rate_budget SET level = $2, at_epoch = $3, capacity = {}, refill_per_sec = {}, \
         probe_at = {} WHERE key = $1",
        param(capacity, 4),
        param(refill, 4 + usize::from(capacity.is_some())),
        param(
            probe_at,
            4 + usize::from(capacity.is_some()) + usize::from(refill.is_some())
        ),
    );
    let mut q = sqlx::query(&sql).bind(key).bind(level).bind(at);
    for v in [capacity, refill, probe_at].into_iter().flatten() {
        q = q.bind(v);
    }
    q.execute(&mut **tx)
        .await
        .map_err(|e| failed("updating a rate budget", e))?;
    Ok(())
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(1))
}

#[async_trait::async_trait]
impl SharedBudget for StoreBudget {
    async fn take(
        &self,
        key: &str,
        points: f64,
        shape: Option<BucketShape>,
    ) -> Result<Take, BudgetError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| failed("starting a rate budget transaction", e))?;
        let row = lock_or_create(&mut tx, key, shape).await?;
        // A configured shape wins over what is stored (config changed).
        let (capacity, refill, level) = match (shape, row.capacity, row.refill) {
            (Some(s), Some(c), Some(r)) if (s.capacity, s.refill_per_sec) == (c, r) => {
                (Some(c), Some(r), row.refilled(c, r))
            }
            (Some(s), Some(c), Some(r)) => (
                Some(s.capacity),
                Some(s.refill_per_sec),
                row.refilled(c, r).min(s.capacity),
            ),
            (Some(s), _, _) => (Some(s.capacity), Some(s.refill_per_sec), s.capacity),
            (None, Some(c), Some(r)) => (Some(c), Some(r), row.refilled(c, r)),
            (None, _, _) => (None, None, 0.0),
        };
        let answer = match (capacity, refill) {
            (Some(c), Some(r)) => {
                let need = points.min(c);
                if level >= need {
                    store_row(
                        &mut tx,
                        key,
                        capacity,
                        refill,
                        level - points,
                        row.now,
                        None,
                    )
                    .await?;
                    Take::Granted
                } else {
                    // Round up a millisecond so the waiter finds the points there.
                    Take::Wait(seconds((need - level) / r.max(0.001) + 0.001))
                }
            }
            _ => {
                let probing = row
                    .probe_at
                    .is_some_and(|p| row.now - p < PROBE_TTL.as_secs_f64());
                if probing {
                    Take::Wait(PROBE_POLL)
                } else {
                    store_row(&mut tx, key, None, None, 0.0, row.now, Some(row.now)).await?;
                    Take::Granted
                }
            }
        };
        tx.commit()
            .await
            .map_err(|e| failed("committing a rate budget", e))?;
        Ok(answer)
    }

    async fn settle(
        &self,
        key: &str,
        refund: f64,
        observed: Option<Observed>,
    ) -> Result<(), BudgetError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| failed("starting a rate budget transaction", e))?;
        let Some(row) = lock(&mut tx, key).await? else {
            return Ok(());
        };
        let known = row.capacity.zip(row.refill);
        let (capacity, refill, level) = match (known, observed) {
            // Learned: the server's figures are the level.
            (None, Some(o)) => (
                o.shape.capacity,
                o.shape.refill_per_sec,
                o.available.min(o.shape.capacity),
            ),
            // A probe that never executed: the next may go at once.
            (None, None) => {
                store_row(&mut tx, key, None, None, 0.0, row.now, None).await?;
                tx.commit()
                    .await
                    .map_err(|e| failed("committing a rate budget", e))?;
                return Ok(());
            }
            (Some((c, r)), Some(o)) => {
                let level = (row.refilled(c, r) + refund).min(o.shape.capacity);
                // Never above what the server says it has left: points that
                // others spent outside this budget, or refunds lost, show there.
                (
                    o.shape.capacity,
                    o.shape.refill_per_sec,
                    level.min(o.available),
                )
            }
            (Some((c, r)), None) => (c, r, (row.refilled(c, r) + refund).min(c)),
        };
        store_row(
            &mut tx,
            key,
            Some(capacity),
            Some(refill),
            level,
            row.now,
            None,
        )
        .await?;
        tx.commit()
            .await
            .map_err(|e| failed("committing a rate budget", e))?;
        Ok(())
    }
}
