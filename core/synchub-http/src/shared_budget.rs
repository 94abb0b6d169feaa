//! A rate budget shared by every instance that uses one credential.
//!
//! The per-credential [`quota`](crate::quota) and the server-informed gate
//! keep one process inside an allowance. When several processes (daemons
//! on several machines, a `synchub run` beside a daemon) use the same shop
//! or tenant, each of them only sees its own spending, and together they
//! overdraw the server's bucket. A [`SharedBudget`] is a token bucket kept
//! outside the process (the PostgreSQL store, see `synchub-store`'s
//! `budget` module) that every request takes its points from before it is
//! sent, so the instances together stay inside one allowance.
//!
//! Two buckets per credential are kept:
//! - `CREDENTIAL#requests`: the configured request rate (`requests` per
//!   `per_secs`, `burst`); one point per request;
//! - `CREDENTIAL#cost`: a server cost bucket (a GraphQL cost model), whose size
//!   and restore rate are learned from the first answer's report; a request
//!   takes its requested cost, the unspent part is refunded when the answer
//!   says what it really cost, and the server's `currentlyAvailable` lowers
//!   the shared level when it is below it (another client of the shop, a
//!   lost refund).
//!
//! A 429 with `Retry-After` seen by one instance pauses them all: the
//! request bucket is lowered below zero by the wait's worth of refill
//! ([`pause`]).
//!
//! Until the size of a cost bucket is known, one instance at a time is let
//! through to learn it; the others wait.
//!
//! A backend that fails (the database restarting) leaves each process's
//! local quota in charge: the request is sent, and a warning is logged once
//! a minute.
//!
//! Install the backend once per process with [`install`]; clients built
//! before or after use it from then on.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::cost::CostReport;
use crate::quota::QuotaConfig;

/// The size and refill rate of a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketShape {
    /// Points the bucket holds when full.
    pub capacity: f64,
    /// Points restored per second.
    pub refill_per_sec: f64,
}

/// What the server said about a shared bucket in one answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// The bucket's size and restore rate.
    pub shape: BucketShape,
    /// The points available after the request.
    pub available: f64,
}

/// The answer of a backend to a take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    /// The points are taken.
    Granted,
    /// Not enough points: ask again after this wait.
    Wait(Duration),
}

/// An error of a shared-budget backend (its message names no secret).
#[derive(Debug, thiserror::Error)]
#[error("shared rate budget unavailable: {0}")]
pub struct BudgetError(pub String);

/// A token bucket per key, shared by every process that uses the backend.
#[async_trait::async_trait]
pub trait SharedBudget: Send + Sync + fmt::Debug {
    /// Takes `points` from bucket `key`. `shape` is the bucket's size and
    /// rate when the caller knows them (configured rates); `None` for a
    /// bucket learned from the server, which is let through for one probe
    /// at a time until [`SharedBudget::settle`] reports its shape.
    async fn take(
        &self,
        key: &str,
        points: f64,
        shape: Option<BucketShape>,
    ) -> Result<Take, BudgetError>;

    /// Gives back `refund` points taken but not spent and, when the server
    /// reported on the bucket, learns its shape and lowers the level to what
    /// the server has left.
    async fn settle(
        &self,
        key: &str,
        refund: f64,
        observed: Option<Observed>,
    ) -> Result<(), BudgetError>;
}

fn slot() -> &'static RwLock<Option<Arc<dyn SharedBudget>>> {
    static SLOT: OnceLock<RwLock<Option<Arc<dyn SharedBudget>>>> = OnceLock::new();
    SLOT.get_or_init(|| RwLock::new(None))
}

/// Makes every client of this process take its points from `budget`.
pub fn install(budget: Arc<dyn SharedBudget>) {
    tracing::info!(backend = ?budget, "rate budgets shared across instances");
    *slot().write().unwrap_or_else(|p| p.into_inner()) = Some(budget);
}

/// Goes back to process-local budgets.
pub fn uninstall() {
    *slot().write().unwrap_or_else(|p| p.into_inner()) = None;
}

/// The installed backend, if any.
pub fn installed() -> Option<Arc<dyn SharedBudget>> {
    slot().read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn warn_unavailable(e: &BudgetError) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if last.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(60)) {
        *last = Some(now);
        tracing::warn!(error = %e, "shared rate budget failed; this instance keeps to its local quota");
    }
}

/// Points one request holds in the shared buckets until its answer.
#[derive(Debug)]
pub(crate) struct SharedTicket {
    budget: Arc<dyn SharedBudget>,
    cost_key: String,
    cost: Option<f64>,
}

/// The wait a take implies, or a refusal when it exceeds `max_wait`.
pub(crate) enum Admitted {
    /// Taken (or no backend / backend down).
    Ready(Option<SharedTicket>),
    /// The shared budget demands a wait longer than the caller accepts.
    TooLong(Duration),
}

fn requests_shape(config: &QuotaConfig) -> BucketShape {
    BucketShape {
        capacity: f64::from(config.burst.max(1)),
        refill_per_sec: f64::from(config.requests) / f64::from(config.per_secs.max(1)),
    }
}

/// Takes what one request needs from the shared buckets of `credential`,
/// waiting (never longer than `max_wait` at a time) until they hold it.
pub(crate) async fn admit(
    credential: &str,
    config: &QuotaConfig,
    graphql_cost: Option<f64>,
    max_wait: Duration,
) -> Admitted {
    let Some(budget) = installed() else {
        return Admitted::Ready(None);
    };
    let requests_key = format!("{credential}#requests");
    let cost_key = format!("{credential}#cost");
    if let Err(wait) = take(
        &*budget,
        &requests_key,
        1.0,
        Some(requests_shape(config)),
        max_wait,
    )
    .await
    {
        return Admitted::TooLong(wait);
    }
    let mut taken = None;
    if let Some(cost) = graphql_cost {
        match take(&*budget, &cost_key, cost, None, max_wait).await {
            Ok(true) => taken = Some(cost),
            Ok(false) => {}
            Err(wait) => return Admitted::TooLong(wait),
        }
    }
    Admitted::Ready(Some(SharedTicket {
        budget,
        cost_key,
        cost: taken,
    }))
}

/// A server's 429 with `Retry-After: wait` for `credential`: every instance
/// sharing the credential's budget pauses for `wait`, not only the one
/// that was told. The credential's request bucket is lowered to minus
/// `wait` worth of refill, so each instance's next take waits until it has
/// refilled past zero.
pub(crate) async fn pause(credential: &str, config: &QuotaConfig, wait: Duration) {
    let Some(budget) = installed() else {
        return;
    };
    let shape = requests_shape(config);
    let observed = Observed {
        shape,
        available: -(wait.as_secs_f64() * shape.refill_per_sec),
    };
    tracing::info!(
        wait_ms = wait.as_millis(),
        "the server asked to wait; pausing every instance sharing the credential"
    );
    if let Err(e) = budget
        .settle(&format!("{credential}#requests"), 0.0, Some(observed))
        .await
    {
        warn_unavailable(&e);
    }
}

/// Ok(true) taken, Ok(false) backend down (go on locally), Err(wait) too long.
async fn take(
    budget: &dyn SharedBudget,
    key: &str,
    points: f64,
    shape: Option<BucketShape>,
    max_wait: Duration,
) -> Result<bool, Duration> {
    loop {
        match budget.take(key, points, shape).await {
            Ok(Take::Granted) => return Ok(true),
            Ok(Take::Wait(wait)) if wait > max_wait => return Err(wait),
            Ok(Take::Wait(wait)) => {
                tracing::debug!(key, wait_ms = wait.as_millis(), "shared budget: waiting");
                note_wait(wait);
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                warn_unavailable(&e);
                return Ok(false);
            }
        }
    }
}

/// Total time this process waited on shared budgets, for `/metrics`.
pub fn total_wait() -> Duration {
    Duration::from_micros(WAITED_MICROS.load(std::sync::atomic::Ordering::Relaxed))
}

static WAITED_MICROS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts `wait` as time spent waiting on a rate budget.
pub(crate) fn note_wait(wait: Duration) {
    let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
    WAITED_MICROS.fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
}

impl SharedTicket {
    /// Settles the request's cost once its answer is in (`report` is the
    /// server's cost report, `None` when the request never executed).
    pub(crate) async fn settle(self, report: Option<&CostReport>) {
        let observed = report.map(|r| Observed {
            shape: BucketShape {
                capacity: r.maximum,
                refill_per_sec: r.restore_rate,
            },
            available: r.currently_available,
        });
        let refund = match (self.cost, report) {
            (Some(taken), Some(r)) => (taken - r.actual.unwrap_or(0.0)).max(0.0),
            (Some(taken), None) => taken,
            (None, _) => 0.0,
        };
        if refund <= 0.0 && observed.is_none() {
            return;
        }
        if let Err(e) = self.budget.settle(&self.cost_key, refund, observed).await {
            warn_unavailable(&e);
        }
    }
}
