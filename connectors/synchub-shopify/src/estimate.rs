//! What a paged backfill costs when bulk operations are off: the shop's
//! record count (`customersCount` / `ordersCount`, 1 point each) times the
//! documented cost of the pages that read it, at the restore rate the shop
//! last reported (or the plan's default). Said once per stream, at WARN,
//! which `synchub run` prints on its terminal.
//!
//! <https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits>

use std::time::Duration;

use serde_json::json;
use synchub_core::ObjectKind;

use crate::connector::ShopifyConnector;
use crate::error::ShopifyError;
use crate::queries;

/// Points per second a plan restores when the shop has not said: Shopify's
/// buckets restore a twentieth of their size per second (1,000 at 50/s on a
/// standard plan, 2,000 at 100/s on Advanced).
pub fn plan_restore_rate(bucket: Option<u32>) -> f64 {
    bucket.map_or(50.0, |b| f64::from(b) / 20.0)
}

/// `6 min 40 s`, `1 h 2 min 3 s`, `45 s` (rounded to the second).
pub fn human_duration(d: Duration) -> String {
    let total = d.as_secs_f64().round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

/// `2,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_text(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

impl ShopifyConnector {
    /// How many records of `object` the shop holds (an exact count).
    pub async fn record_count(&self, object: ObjectKind) -> Result<u64, ShopifyError> {
        let (root, doc) = match object {
            ObjectKind::Contact => ("customersCount", queries::CUSTOMERS_COUNT),
            ObjectKind::Order => ("ordersCount", queries::ORDERS_COUNT),
            other => {
                return Err(ShopifyError::Config(format!(
                    "shopify has no {other} stream"
                )))
            }
        };
        let data = self.client.graphql(doc, json!({}), true).await?;
        data[root]["count"]
            .as_u64()
            .ok_or_else(|| ShopifyError::Protocol(format!("{root} answer has no count")))
    }

    /// The line a paged backfill of `object` announces:
    /// `shop_tw.order: paged backfill of 2,000 orders ≈ 40 min 5 s at 50 points/s; …`.
    pub async fn paged_backfill_notice(
        &self,
        object: ObjectKind,
    ) -> Result<Option<String>, ShopifyError> {
        let noun = match object {
            ObjectKind::Contact => "customers",
            ObjectKind::Order => "orders",
            _ => return Ok(None),
        };
        let records = self.record_count(object).await?;
        let rate = self
            .client
            .restore_rate()
            .unwrap_or_else(|| plan_restore_rate(self.cfg.bucket_size));
        let Some(takes) = self.paged_backfill_estimate(object, records, rate) else {
            return Ok(None);
        };
        Ok(Some(format!(
            "{}.{object}: paged backfill of {} {noun} ≈ {} at {} points/s; set \
             bulk_backfill = true (the default) to export them in one bulk operation \
             without the cost limit",
            self.label,
            thousands(records),
            human_duration(takes),
            rate_text(rate),
        )))
    }

    /// Logs [`Self::paged_backfill_notice`] at WARN, once per stream and
    /// instance; a failed count is logged and never fails the pull.
    pub(crate) async fn announce_paged_backfill(&self, object: ObjectKind) {
        {
            let mut done = self.announced.lock().unwrap_or_else(|p| p.into_inner());
            if !done.insert(object) {
                return;
            }
        }
        match self.paged_backfill_notice(object).await {
            Ok(Some(line)) => tracing::warn!(
                connection = %self.label, %object, "{line}"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                connection = %self.label, %object, error = %e,
                "paged backfill (bulk_backfill = false): its duration is unknown, the record count failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_counts_read_like_prose() {
        assert_eq!(human_duration(Duration::from_secs(400)), "6 min 40 s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1 h 2 min 3 s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 h");
        assert_eq!(human_duration(Duration::from_millis(300)), "0 s");
        assert_eq!(thousands(2_000), "2,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(plan_restore_rate(None), 50.0);
        assert_eq!(plan_restore_rate(Some(2000)), 100.0);
        assert_eq!(rate_text(50.0), "50");
        assert_eq!(rate_text(12.5), "12.5");
    }
}
