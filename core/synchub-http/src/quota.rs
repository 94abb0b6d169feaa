//! Quotas per credential: a process-wide registry hands every client that
//! uses the same credential (the same shop, accounting tenant or company,
//! mailbox) the same [`CredentialQuota`], so two pipelines on one shop share
//! one allowance. The limits are each connector's: it ships its defaults
//! (its `default_quota`) and its config may override them.
//!
//! A quota combines the configured limits (a governor GCRA limiter for
//! rate + burst, a semaphore for concurrency, a daily cap) with the
//! server-informed [`Gate`](crate::throttle). Governor runs on a tokio-time
//! clock so that tests can use `tokio::time::pause`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::HttpError;
use crate::throttle::{Gate, Reservation, Ticket};

/// Configured limits of one credential. Connectors ship defaults; config may override.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Requests allowed per `per_secs` seconds (sustained rate).
    pub requests: u32,
    /// The period of `requests`, in seconds.
    pub per_secs: u32,
    /// Requests allowed back to back after a quiet spell.
    pub burst: u32,
    /// Requests allowed per UTC day.
    #[serde(default)]
    pub daily_cap: Option<u32>,
    /// Requests allowed in flight at once.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
}

impl QuotaConfig {
    /// `requests` per second with a burst.
    pub fn per_second(requests: u32, burst: u32) -> Self {
        Self {
            requests,
            per_secs: 1,
            burst,
            daily_cap: None,
            max_concurrency: None,
        }
    }

    /// `requests` per minute with a burst.
    pub fn per_minute(requests: u32, burst: u32) -> Self {
        Self {
            per_secs: 60,
            ..Self::per_second(requests, burst)
        }
    }

    /// Sets the daily cap.
    pub fn with_daily_cap(mut self, cap: u32) -> Self {
        self.daily_cap = Some(cap);
        self
    }

    /// Sets the concurrency limit.
    pub fn with_max_concurrency(mut self, n: u32) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    fn validate(&self) -> Result<(NonZeroU32, NonZeroU32, Duration), HttpError> {
        let requests = NonZeroU32::new(self.requests)
            .ok_or_else(|| HttpError::Config("quota `requests` must be at least 1".into()))?;
        let burst = NonZeroU32::new(self.burst)
            .ok_or_else(|| HttpError::Config("quota `burst` must be at least 1".into()))?;
        if self.per_secs == 0 || self.max_concurrency == Some(0) {
            return Err(HttpError::Config(
                "quota `per_secs` and `max_concurrency` must be at least 1".into(),
            ));
        }
        let period = Duration::from_secs(u64::from(self.per_secs)) / requests.get();
        Ok((requests, burst, period))
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.requests) / f64::from(self.per_secs.max(1))
    }
}

/// Governor's clock, driven by tokio time (so paused test time applies).
#[derive(Debug, Clone)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

type Limiter = governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Why a request could not be admitted without an unreasonable wait.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The wait the budget demands is longer than the caller accepts.
    TooLong(Duration),
    /// The configured daily cap is spent.
    DailyCap(Duration),
}

/// A request admitted by the quota; dropping it frees the concurrency slot.
#[derive(Debug)]
pub(crate) struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
    pub(crate) reservation: Reservation,
}

impl Admission {
    /// Splits into the concurrency slot and the gate reservation.
    pub(crate) fn into_parts(self) -> (Option<OwnedSemaphorePermit>, Reservation) {
        (self._slot, self.reservation)
    }
}

/// The shared allowance of one credential.
#[derive(Debug)]
pub struct CredentialQuota {
    id: String,
    config: QuotaConfig,
    limiter: Limiter,
    clock: TokioClock,
    slots: Option<Arc<Semaphore>>,
    daily: Mutex<(u64, u32)>,
    pub(crate) gate: Gate,
}

impl CredentialQuota {
    fn new(id: &str, config: QuotaConfig) -> Result<Self, HttpError> {
        let (_, burst, period) = config.validate()?;
        let quota = governor::Quota::with_period(period)
            .ok_or_else(|| HttpError::Config("quota period must be positive".into()))?
            .allow_burst(burst);
        let clock = TokioClock {
            origin: Instant::now(),
        };
        let slots = config
            .max_concurrency
            .map(|n| Arc::new(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX))));
        Ok(Self {
            id: id.to_string(),
            gate: Gate::new(config.rate_per_sec(), f64::from(config.burst)),
            limiter: Limiter::direct_with_clock(quota, &clock),
            clock,
            slots,
            daily: Mutex::new((0, 0)),
            config,
        })
    }

    /// The credential id this quota belongs to.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The configured limits.
    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    /// Waits until one request may be sent (never longer than `max_wait` at a time).
    pub(crate) async fn admit(
        &self,
        ticket: Ticket,
        max_wait: Duration,
    ) -> Result<Admission, Refusal> {
        let slot = match &self.slots {
            Some(sem) => sem.clone().acquire_owned().await.ok(),
            None => None,
        };
        loop {
            self.check_daily()?;
            let reservation = match self.gate.try_admit(Instant::now(), ticket) {
                Ok(r) => r,
                Err(wait) if wait > max_wait => return Err(Refusal::TooLong(wait)),
                Err(wait) => {
                    tracing::debug!(credential = %self.id, wait_ms = wait.as_millis(), "server budget: waiting");
                    crate::shared_budget::note_wait(wait);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            match self.limiter.check() {
                Ok(()) => {
                    self.count_daily();
                    return Ok(Admission {
                        _slot: slot,
                        reservation,
                    });
                }
                Err(not_until) => {
                    self.gate.cancel(Instant::now(), reservation);
                    let wait = not_until.wait_time_from(self.clock.now());
                    crate::shared_budget::note_wait(wait);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn check_daily(&self) -> Result<(), Refusal> {
        let Some(cap) = self.config.daily_cap else {
            return Ok(());
        };
        let (day, until_midnight) = utc_day();
        let mut d = self.daily.lock().unwrap_or_else(|p| p.into_inner());
        if d.0 != day {
            *d = (day, 0);
        }
        if d.1 >= cap {
            return Err(Refusal::DailyCap(until_midnight));
        }
        Ok(())
    }

    fn count_daily(&self) {
        if self.config.daily_cap.is_some() {
            let mut d = self.daily.lock().unwrap_or_else(|p| p.into_inner());
            d.1 = d.1.saturating_add(1);
        }
    }
}

fn utc_day() -> (u64, Duration) {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    (secs / 86_400, Duration::from_secs(86_400 - secs % 86_400))
}

/// Quotas by credential id. Use [`QuotaRegistry::global`] in production.
#[derive(Debug, Default)]
pub struct QuotaRegistry {
    quotas: Mutex<HashMap<String, Arc<CredentialQuota>>>,
}

impl QuotaRegistry {
    /// A fresh registry (tests, or isolating a tenant).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static QuotaRegistry {
        static GLOBAL: OnceLock<QuotaRegistry> = OnceLock::new();
        GLOBAL.get_or_init(QuotaRegistry::new)
    }

    /// The quota of `credential_id`, created with `config` by the first caller.
    /// Later callers share it; a differing config is ignored with a warning.
    pub fn get(
        &self,
        credential_id: &str,
        config: &QuotaConfig,
    ) -> Result<Arc<CredentialQuota>, HttpError> {
        let mut map = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = map.get(credential_id) {
            if &q.config != config {
                tracing::warn!(credential = %credential_id, "quota already configured differently; keeping the first");
            }
            return Ok(q.clone());
        }
        let q = Arc::new(CredentialQuota::new(credential_id, config.clone())?);
        map.insert(credential_id.to_string(), q.clone());
        Ok(q)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn same_credential_shares_one_quota() {
        let reg = QuotaRegistry::new();
        let a = reg
            .get("kind:shop-a", &QuotaConfig::per_second(2, 40))
            .unwrap();
        let b = reg
            .get("kind:shop-a", &QuotaConfig::per_second(2, 40))
            .unwrap();
        let c = reg
            .get("kind:shop-b", &QuotaConfig::per_second(2, 40))
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn rejects_zero_limits() {
        let reg = QuotaRegistry::new();
        assert!(reg.get("x", &QuotaConfig::per_second(0, 1)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let q = CredentialQuota::new("t", QuotaConfig::per_second(2, 4)).unwrap();
        let start = Instant::now();
        for _ in 0..8 {
            let a = q
                .admit(Ticket::default(), Duration::from_secs(60))
                .await
                .unwrap();
            q.gate.cancel(Instant::now(), a.reservation);
        }
        // 4 at once, then 4 more at 2/s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn daily_cap_refuses() {
        let q =
            CredentialQuota::new("t", QuotaConfig::per_second(100, 100).with_daily_cap(2)).unwrap();
        for _ in 0..2 {
            q.admit(Ticket::default(), Duration::from_secs(1))
                .await
                .unwrap();
        }
        assert!(matches!(
            q.admit(Ticket::default(), Duration::from_secs(1)).await,
            Err(Refusal::DailyCap(_))
        ));
    }
}
