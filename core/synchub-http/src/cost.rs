//! Cost-bucket throttling, for APIs that price each request in points
//! drawn from a bucket that refills at a steady rate (GraphQL APIs often
//! do): the [`CostReport`] a connector's [`ResponsePolicy`](crate::ResponsePolicy)
//! reads from an answer, and a local mirror of the bucket so that a request
//! waits until its requested cost is available instead of being refused.

use std::time::Duration;

use tokio::time::Instant;

/// What one answer says about the cost bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct CostReport {
    /// Worst-case cost checked before execution.
    pub requested: f64,
    /// What the query really cost; `None` when it was throttled (not executed).
    pub actual: Option<f64>,
    /// Bucket size (`maximumAvailable`).
    pub maximum: f64,
    /// Points left after this query (`currentlyAvailable`).
    pub currently_available: f64,
    /// Points restored per second (`restoreRate`).
    pub restore_rate: f64,
}

impl CostReport {
    /// How long until the requested cost is available again:
    /// `(requested − available) / restore_rate`.
    pub fn wait_for_requested(&self) -> Duration {
        if self.restore_rate <= 0.0 {
            return Duration::from_secs(1);
        }
        let missing = (self.requested.min(self.maximum) - self.currently_available).max(0.0);
        Duration::try_from_secs_f64(missing / self.restore_rate).unwrap_or(Duration::from_secs(1))
    }
}

/// A local mirror of the server's cost bucket.
#[derive(Debug)]
pub(crate) struct CostBucket {
    maximum: f64,
    /// Estimated points available on the server, not counting our in-flight queries.
    available: f64,
    /// Requested cost of queries in flight.
    reserved: f64,
    restore_rate: f64,
    at: Instant,
}

impl CostBucket {
    pub(crate) fn from_report(now: Instant, report: &CostReport) -> Self {
        Self {
            maximum: report.maximum,
            available: report.currently_available,
            reserved: 0.0,
            restore_rate: report.restore_rate.max(0.01),
            at: now,
        }
    }

    /// The bucket size (`maximumAvailable`).
    pub(crate) fn maximum(&self) -> f64 {
        self.maximum
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_rate).min(self.maximum);
        self.at = now;
    }

    /// How long until `cost` points are free (a cost above the bucket waits for a full bucket).
    pub(crate) fn wait_for(&mut self, now: Instant, cost: f64) -> Duration {
        self.refill(now);
        let need = cost.min(self.maximum);
        let free = self.available - self.reserved;
        if free >= need {
            Duration::ZERO
        } else {
            // Round up to a millisecond so that a woken waiter finds the points there.
            let secs = (need - free) / self.restore_rate + 0.001;
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(1))
        }
    }

    pub(crate) fn reserve(&mut self, now: Instant, cost: f64) {
        self.refill(now);
        self.reserved += cost;
    }

    pub(crate) fn refund(&mut self, now: Instant, cost: f64) {
        self.refill(now);
        self.reserved = (self.reserved - cost).max(0.0);
    }

    /// Applies a server report for one query whose reservation was `reserved`.
    pub(crate) fn settle(
        &mut self,
        now: Instant,
        reserved: Option<f64>,
        report: &CostReport,
        in_flight: u32,
    ) {
        self.refill(now);
        self.maximum = report.maximum;
        self.restore_rate = report.restore_rate.max(0.01);
        if let Some(r) = reserved {
            self.reserved = (self.reserved - r).max(0.0);
        }
        self.available -= report.actual.unwrap_or(0.0);
        if in_flight == 0 || self.reserved <= 0.0 {
            // Nothing else in flight: the server's figure is exact.
            self.available = report.currently_available;
            self.reserved = 0.0;
        } else {
            // Others in flight: trust whichever figure is lower.
            self.available = self.available.min(report.currently_available);
        }
        self.available = self.available.min(self.maximum);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_requested_is_the_missing_points_over_the_restore_rate() {
        let report = CostReport {
            requested: 502.0,
            actual: None,
            maximum: 2000.0,
            currently_available: 143.0,
            restore_rate: 100.0,
        };
        // (502 - 143) / 100 = 3.59 s
        assert_eq!(report.wait_for_requested(), Duration::from_millis(3590));
        let full = CostReport {
            currently_available: 600.0,
            ..report
        };
        assert_eq!(full.wait_for_requested(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_waits_for_the_requested_cost() {
        let now = Instant::now();
        let report = CostReport {
            requested: 100.0,
            actual: Some(100.0),
            maximum: 1000.0,
            currently_available: 50.0,
            restore_rate: 50.0,
        };
        let mut b = CostBucket::from_report(now, &report);
        let wait = b.wait_for(now, 100.0);
        assert!(wait >= Duration::from_secs(1) && wait < Duration::from_millis(1100));
        assert_eq!(b.wait_for(now + wait, 100.0), Duration::ZERO);
    }
}
