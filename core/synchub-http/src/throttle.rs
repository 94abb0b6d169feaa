//! Throttles that listen to the server, one [`Gate`] per credential.
//!
//! The gate mirrors what the server has told us about the remaining
//! allowance and holds requests back until they fit. What the server told
//! us comes from the connector's [`ResponsePolicy`](crate::ResponsePolicy):
//! - a [`Budget::Bucket`] (`used/size`) drives a mirror of a leaky bucket
//!   (leak rate scaled from the configured quota);
//! - a [`CostReport`] drives a cost bucket (see [`crate::cost`]);
//! - each named [`Budget::Window`] drives a counting window;
//! - `Retry-After` on a 429/503 pauses every request on the credential.
//!
//! Every estimate errs on the cautious side: in-flight requests are counted
//! as spent until the server has reported on them.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::budget::Budget;
use crate::cost::{CostBucket, CostReport};

/// Requests kept in reserve below the server's leaky-bucket size.
const REST_MARGIN: f64 = 1.0;

/// What one request asks of the gate.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ticket {
    /// Estimated GraphQL cost, for cost-throttled endpoints.
    pub graphql_cost: Option<f64>,
}

/// What the gate reserved for a request in flight; hand it back in [`Gate::settle`].
#[derive(Debug, Default)]
pub(crate) struct Reservation {
    rest: bool,
    cost: Option<f64>,
}

#[derive(Debug)]
struct Leaky {
    capacity: f64,
    level: f64,
    leak_per_sec: f64,
    at: Instant,
    in_flight: u32,
}

impl Leaky {
    fn level_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.level - elapsed * self.leak_per_sec).max(0.0)
    }
}

#[derive(Debug)]
struct Window {
    remaining: i64,
    resets_at: Instant,
}

#[derive(Debug, Default)]
struct GateState {
    paused_until: Option<Instant>,
    rest: Option<Leaky>,
    windows: Vec<(&'static str, Window)>,
    cost: Option<CostBucket>,
    in_flight: u32,
}

/// The server-informed part of a credential's quota.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    /// Configured requests per second and burst, to scale the REST mirror.
    rate_per_sec: f64,
    burst: f64,
}

impl Gate {
    pub(crate) fn new(rate_per_sec: f64, burst: f64) -> Self {
        Self {
            state: Mutex::new(GateState::default()),
            rate_per_sec,
            burst,
        }
    }

    /// Reserves room for one request now, or says how long to wait first.
    pub(crate) fn try_admit(&self, now: Instant, ticket: Ticket) -> Result<Reservation, Duration> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        let mut wait = Duration::ZERO;
        if let Some(until) = s.paused_until {
            if until > now {
                wait = wait.max(until - now);
            } else {
                s.paused_until = None;
            }
        }
        if let Some(rest) = &s.rest {
            let needed =
                rest.level_at(now) + f64::from(rest.in_flight) + 1.0 + REST_MARGIN - rest.capacity;
            if needed > 0.0 {
                wait = wait.max(Duration::from_secs_f64(needed / rest.leak_per_sec));
            }
        }
        s.windows.retain(|(_, w)| w.resets_at > now);
        for (_, w) in &s.windows {
            if w.remaining <= 0 {
                wait = wait.max(w.resets_at - now);
            }
        }
        if let Some(cost) = ticket.graphql_cost {
            let in_flight = s.in_flight;
            match &mut s.cost {
                Some(bucket) => wait = wait.max(bucket.wait_for(now, cost)),
                // Nothing known yet: let one query through to learn the bucket.
                None if in_flight > 0 => wait = wait.max(Duration::from_millis(50)),
                None => {}
            }
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        let mut reservation = Reservation::default();
        if let Some(rest) = &mut s.rest {
            rest.in_flight += 1;
            reservation.rest = true;
        }
        for (_, w) in &mut s.windows {
            w.remaining -= 1;
        }
        if let Some(cost) = ticket.graphql_cost {
            if let Some(bucket) = &mut s.cost {
                bucket.reserve(now, cost);
            }
            reservation.cost = Some(cost);
        }
        s.in_flight += 1;
        Ok(reservation)
    }

    /// The server's cost-bucket size, once an answer has reported it.
    pub(crate) fn cost_maximum(&self) -> Option<f64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.cost.as_ref().map(CostBucket::maximum)
    }

    /// Releases a reservation whose request never reached the server.
    pub(crate) fn cancel(&self, now: Instant, reservation: Reservation) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight = s.in_flight.saturating_sub(1);
        if reservation.rest {
            if let Some(rest) = &mut s.rest {
                rest.in_flight = rest.in_flight.saturating_sub(1);
            }
        }
        if let (Some(cost), Some(bucket)) = (reservation.cost, &mut s.cost) {
            bucket.refund(now, cost);
        }
    }

    /// Learns from a response: the budget its policy read, its cost
    /// report, its Retry-After.
    pub(crate) fn settle(
        &self,
        now: Instant,
        reservation: Reservation,
        status: u16,
        budget: &[Budget],
        retry_after: Option<Duration>,
        cost: Option<&CostReport>,
    ) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        s.in_flight = s.in_flight.saturating_sub(1);
        let others = i64::from(s.in_flight);
        if let Some(ra) = retry_after.filter(|_| status == 429 || status == 503) {
            let until = now + ra;
            s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        }
        self.settle_rest(s, now, &reservation, status, budget);
        for b in budget {
            if let Budget::Window {
                name,
                remaining,
                resets_in,
            } = b
            {
                let window = Window {
                    remaining: remaining - others,
                    resets_at: now + *resets_in,
                };
                match s.windows.iter_mut().find(|(n, _)| n == name) {
                    Some((_, w)) => *w = window,
                    None => s.windows.push((name, window)),
                }
            }
        }
        match (reservation.cost, cost) {
            (reserved, Some(report)) => {
                let in_flight = s.in_flight;
                let bucket = s
                    .cost
                    .get_or_insert_with(|| CostBucket::from_report(now, report));
                bucket.settle(now, reserved, report, in_flight);
            }
            (Some(reserved), None) => {
                if let Some(bucket) = &mut s.cost {
                    bucket.refund(now, reserved);
                }
            }
            (None, None) => {}
        }
    }

    fn settle_rest(
        &self,
        s: &mut GateState,
        now: Instant,
        reservation: &Reservation,
        status: u16,
        budget: &[Budget],
    ) {
        if reservation.rest {
            if let Some(rest) = &mut s.rest {
                rest.in_flight = rest.in_flight.saturating_sub(1);
            }
        }
        let Some((used, size)) = budget.iter().find_map(|b| match b {
            Budget::Bucket { used, size } => Some((*used, *size)),
            Budget::Window { .. } => None,
        }) else {
            return;
        };
        // The leak rate scales with the bucket size (a bucket of twice the
        // configured burst leaks twice as fast).
        let leak = if self.burst > 0.0 {
            self.rate_per_sec * size / self.burst
        } else {
            self.rate_per_sec
        };
        let used = if status == 429 { size } else { used };
        let rest = s.rest.get_or_insert(Leaky {
            capacity: size,
            level: used,
            leak_per_sec: leak.max(0.01),
            at: now,
            in_flight: 0,
        });
        let current = rest.level_at(now);
        rest.capacity = size;
        rest.leak_per_sec = leak.max(0.01);
        rest.level = if rest.in_flight == 0 {
            used
        } else {
            current.max(used)
        };
        rest.at = now;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn full_leaky_bucket_makes_the_next_request_wait() {
        let gate = Gate::new(2.0, 40.0);
        let now = Instant::now();
        let r = gate.try_admit(now, Ticket::default()).unwrap();
        let b = [Budget::Bucket {
            used: 39.0,
            size: 40.0,
        }];
        gate.settle(now, r, 200, &b, None, None);
        let wait = gate.try_admit(now, Ticket::default()).unwrap_err();
        assert!(wait >= Duration::from_millis(400), "{wait:?}");
        assert!(gate.try_admit(now + wait, Ticket::default()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_window_waits_for_its_reset_and_others_count_down() {
        let gate = Gate::new(1.0, 60.0);
        let now = Instant::now();
        let r = gate.try_admit(now, Ticket::default()).unwrap();
        let b = [
            Budget::Window {
                name: "per-minute",
                remaining: 0,
                resets_in: Duration::from_secs(60),
            },
            Budget::Window {
                name: "per-day",
                remaining: 1,
                resets_in: Duration::from_secs(3600),
            },
        ];
        gate.settle(now, r, 200, &b, None, None);
        let wait = gate.try_admit(now, Ticket::default()).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        // After the minute: one request left today, then the day window holds.
        let later = now + Duration::from_secs(60);
        assert!(gate.try_admit(later, Ticket::default()).is_ok());
        assert_eq!(
            gate.try_admit(later, Ticket::default()).unwrap_err(),
            Duration::from_secs(3540)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_the_credential() {
        let gate = Gate::new(10.0, 10.0);
        let now = Instant::now();
        let r = gate.try_admit(now, Ticket::default()).unwrap();
        gate.settle(now, r, 429, &[], Some(Duration::from_secs(3)), None);
        assert_eq!(
            gate.try_admit(now, Ticket::default()).unwrap_err(),
            Duration::from_secs(3)
        );
    }
}
