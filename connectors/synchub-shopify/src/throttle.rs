//! How Shopify reports its rate limits, for the runtime's throttle:
//! - the Admin GraphQL API appends `extensions.cost` (requested and actual
//!   cost, and the bucket's `throttleStatus`) to every answer and answers a
//!   query the bucket cannot pay for with HTTP 200 and a `THROTTLED` error
//!   (read by [`crate::client::ShopifyGraphqlPolicy`]);
//! - the REST Admin API reports its leaky bucket as
//!   `X-Shopify-Shop-Api-Call-Limit: used/size` ([`CALL_LIMIT`]), read by the
//!   same policy when an answer carries it.
//!
//! <https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits>,
//! <https://shopify.dev/docs/api/usage/limits#rest-admin-api-rate-limits>

use synchub_http::BudgetHeader;

/// The REST Admin API's leaky bucket, `used/size` (e.g. `32/40`).
pub const CALL_LIMIT: BudgetHeader = BudgetHeader::UsedOfSize("x-shopify-shop-api-call-limit");

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use http::{HeaderMap, HeaderValue};
    use serde_json::Value;
    use synchub_http::{Budget, ResponsePolicy, Verdict};

    use super::*;
    use crate::client::{cost_report, ShopifyGraphqlPolicy};

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
        let cost = cost_report(&page).unwrap();
        assert_eq!(cost.requested, 502.0);
        assert_eq!(cost.actual, Some(7.0));
        assert_eq!(cost.maximum, 2000.0);
        let body = serde_json::to_vec(&page).unwrap();
        let a = ShopifyGraphqlPolicy.assess(200, &HeaderMap::new(), &body);
        assert_eq!(a.verdict, Verdict::Ok);
        assert_eq!(a.cost, Some(cost));

        let throttled = fixture("graphql_throttled.json");
        let body = serde_json::to_vec(&throttled).unwrap();
        let a = ShopifyGraphqlPolicy.assess(200, &HeaderMap::new(), &body);
        // (502 - 143) / 100 = 3.59 s
        assert_eq!(
            a.verdict,
            Verdict::Throttled {
                wait: Some(Duration::from_millis(3590))
            }
        );
        assert_eq!(a.cost.unwrap().actual, None);
    }

    #[test]
    fn the_call_limit_header_is_the_rest_bucket() {
        let mut h = HeaderMap::new();
        h.insert(
            "X-Shopify-Shop-Api-Call-Limit",
            HeaderValue::from_static("39/40"),
        );
        let bucket = Budget::Bucket {
            used: 39.0,
            size: 40.0,
        };
        assert_eq!(CALL_LIMIT.read(&h), Some(bucket.clone()));
        assert_eq!(ShopifyGraphqlPolicy.budget(200, &h), vec![bucket]);
        assert!(ShopifyGraphqlPolicy
            .budget(200, &HeaderMap::new())
            .is_empty());
    }
}
