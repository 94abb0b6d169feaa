//! The configuration of one Shopify connector instance, as it appears in a
//! pipeline file's `[source]`/`[target]` table. Validation is pure: no IO.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ShopifyError;

/// The Admin API version used when the config names none. Shopify supports
/// each quarterly version for at least 12 months and falls forward past that.
pub const DEFAULT_API_VERSION: &str = "2025-01";

/// The configuration of one Shopify shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    /// The shop handle (`example-tw` or `example-tw.myshopify.com`).
    pub shop: String,
    /// Overrides `https://{shop}.myshopify.com` (sandboxes, proxies).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Admin API version, `YYYY-MM`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Admin API access token (`shpat_…`), sent as `X-Shopify-Access-Token`.
    pub access_token: SecretString,
    /// App client secret used to verify webhooks; a second one is accepted
    /// during a secret rotation.
    #[serde(default)]
    pub webhook_secrets: Vec<SecretString>,
    /// ISO 3166 region assumed for phone numbers written without a country code.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Customers per GraphQL page (at most 250).
    #[serde(default = "default_customers_page")]
    pub customers_page_size: u32,
    /// Orders per GraphQL page; with line items a page costs about
    /// `orders_page_size * (4 + 2 * line_items_per_order)` points (≤ 1000).
    #[serde(default = "default_orders_page")]
    pub orders_page_size: u32,
    /// Line items read per order.
    #[serde(default = "default_line_items")]
    pub line_items_per_order: u32,
    /// Seconds the incremental window reaches back before the watermark.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// Overrides the request quota (default: `QuotaConfig::shopify_graphql()`);
    /// the cost bucket is followed from `extensions.cost` in any case.
    #[serde(default)]
    pub quota: Option<synchub_http::QuotaConfig>,
    /// Full backfills use a bulk operation (JSONL export) instead of pages.
    #[serde(default)]
    pub bulk_backfill: bool,
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}
fn default_customers_page() -> u32 {
    250
}
fn default_orders_page() -> u32 {
    25
}
fn default_line_items() -> u32 {
    10
}
fn default_overlap() -> u32 {
    5
}

impl ShopifyConfig {
    /// A config for `shop` with every default, e.g. for tests and the demo.
    pub fn new(shop: &str, access_token: &str) -> Self {
        ShopifyConfig {
            shop: shop.to_string(),
            base_url: None,
            api_version: default_api_version(),
            access_token: SecretString::from(access_token.to_string()),
            webhook_secrets: Vec::new(),
            default_region: None,
            customers_page_size: default_customers_page(),
            orders_page_size: default_orders_page(),
            line_items_per_order: default_line_items(),
            overlap_seconds: default_overlap(),
            quota: None,
            bulk_backfill: false,
        }
    }

    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ShopifyError> {
        let mut problems = Vec::new();
        if self.shop.trim().is_empty() {
            problems.push("`shop` is empty: set it to the shop handle, e.g. `example-tw`".into());
        }
        if !valid_version(&self.api_version) {
            problems.push(format!(
                "`api_version` = {:?} is not YYYY-MM (or `unstable`)",
                self.api_version
            ));
        }
        if self.access_token.expose_secret().trim().is_empty() {
            problems.push("`access_token` is empty".into());
        }
        if let Some(url) = &self.base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!(
                    "`base_url` = {url:?} must start with http:// or https://"
                ));
            }
        }
        if let Some(region) = &self.default_region {
            if region.len() != 2 || !region.chars().all(|c| c.is_ascii_alphabetic()) {
                problems.push(format!(
                    "`default_region` = {region:?} is not a 2-letter code"
                ));
            }
        }
        if !(1..=250).contains(&self.customers_page_size) {
            problems.push("`customers_page_size` must be between 1 and 250".into());
        }
        if !(1..=250).contains(&self.orders_page_size) {
            problems.push("`orders_page_size` must be between 1 and 250".into());
        }
        if !(1..=250).contains(&self.line_items_per_order) {
            problems.push("`line_items_per_order` must be between 1 and 250".into());
        }
        let order_cost = 2 + self.orders_page_size * (4 + 2 * self.line_items_per_order);
        if order_cost > 1000 {
            problems.push(format!(
                "an orders page would cost {order_cost} points, over Shopify's 1000 per query: \
                 lower `orders_page_size` or `line_items_per_order`"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ShopifyError::Config(problems.join("; ")))
        }
    }

    /// `https://{shop}.myshopify.com` or the override, without a trailing slash.
    pub fn shop_url(&self) -> String {
        if let Some(url) = &self.base_url {
            return url.trim_end_matches('/').to_string();
        }
        let shop = self.shop.trim();
        if shop.contains('.') {
            format!("https://{shop}")
        } else {
            format!("https://{shop}.myshopify.com")
        }
    }

    /// The GraphQL endpoint, `…/admin/api/{version}/graphql.json`.
    pub fn graphql_url(&self) -> String {
        format!(
            "{}/admin/api/{}/graphql.json",
            self.shop_url(),
            self.api_version
        )
    }
}

fn valid_version(v: &str) -> bool {
    if v == "unstable" {
        return true;
    }
    let b = v.as_bytes();
    b.len() == 7 && b[4] == b'-' && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_table_and_rejects_unknown_keys() {
        let cfg: ShopifyConfig =
            serde_json::from_str(r#"{"shop":"example-tw","access_token":"shpat_x"}"#)
                .expect("parse");
        assert_eq!(cfg.api_version, DEFAULT_API_VERSION);
        assert_eq!(
            cfg.graphql_url(),
            "https://example-tw.myshopify.com/admin/api/2025-01/graphql.json"
        );
        cfg.validate().expect("valid");
        let bad = serde_json::from_str::<ShopifyConfig>(
            r#"{"shop":"x","access_token":"t","acess_token":"typo"}"#,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn reports_every_problem_and_never_the_secret() {
        let mut cfg = ShopifyConfig::new("", "shpat_secret_value");
        cfg.api_version = "2025-1".into();
        cfg.orders_page_size = 250;
        let err = cfg.validate().expect_err("invalid").to_string();
        assert!(err.contains("`shop`") && err.contains("api_version") && err.contains("1000"));
        assert!(!err.contains("shpat_secret_value"));
        assert!(!format!("{cfg:?}").contains("shpat_secret_value"));
    }
}
