//! Shopify GraphQL cost throttling: the `extensions.cost` report, the
//! `THROTTLED` reply (HTTP 200 with an error body), and a local mirror of
//! the shop's cost bucket so that a query waits until its requested cost is
//! available instead of being refused.
//!
//! <https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits>

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// The cost block Shopify appends to every GraphQL reply.
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
    /// Reads `extensions.cost` from a reply body (numbers may be floats like `2000.0`).
    pub fn from_body(body: &Value) -> Option<Self> {
        let cost = body.get("extensions")?.get("cost")?;
        let status = cost.get("throttleStatus")?;
        Some(Self {
            requested: cost.get("requestedQueryCost")?.as_f64()?,
            actual: cost.get("actualQueryCost").and_then(Value::as_f64),
            maximum: status.get("maximumAvailable")?.as_f64()?,
            currently_available: status.get("currentlyAvailable")?.as_f64()?,
            restore_rate: status.get("restoreRate")?.as_f64()?,
        })
    }

    /// How long until the requested cost is available again.
    pub fn wait_for_requested(&self) -> Duration {
        if self.restore_rate <= 0.0 {
            return Duration::from_secs(1);
        }
        let missing = (self.requested.min(self.maximum) - self.currently_available).max(0.0);
        Duration::try_from_secs_f64(missing / self.restore_rate).unwrap_or(Duration::from_secs(1))
    }
}

/// True when the body is Shopify's `THROTTLED` reply.
pub fn is_throttled(body: &Value) -> bool {
    error_codes(body).any(|c| c == "THROTTLED")
}

/// The `errors[].extensions.code` values of a GraphQL reply.
pub fn error_codes(body: &Value) -> impl Iterator<Item = &str> {
    body.get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("extensions")?.get("code")?.as_str())
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

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../../shared/api-notes/fixtures/shopify/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn reads_cost_and_throttled_fixtures() {
        let page = fixture("graphql_customers_page.json");
        let cost = CostReport::from_body(&page).unwrap();
        assert_eq!(cost.requested, 502.0);
        assert_eq!(cost.actual, Some(7.0));
        assert_eq!(cost.maximum, 2000.0);
        assert!(!is_throttled(&page));

        let throttled = fixture("graphql_throttled.json");
        assert!(is_throttled(&throttled));
        let cost = CostReport::from_body(&throttled).unwrap();
        assert_eq!(cost.actual, None);
        // (502 - 143) / 100 = 3.59 s
        assert_eq!(cost.wait_for_requested(), Duration::from_millis(3590));
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
