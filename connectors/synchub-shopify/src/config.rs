//! The configuration of one Shopify connector instance, as it appears in a
//! pipeline file's `[source]`/`[target]` table. Validation is pure: no IO.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::cost;
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
    /// Customers per GraphQL page (at most 250); by default the largest page
    /// whose requested cost fits the limits (see [`crate::cost`]).
    #[serde(default)]
    pub customers_page_size: Option<u32>,
    /// Orders per GraphQL page; by default the largest page whose requested
    /// cost (with `line_items_per_order` lines each) fits the limits.
    #[serde(default)]
    pub orders_page_size: Option<u32>,
    /// Line items read per order.
    #[serde(default = "default_line_items")]
    pub line_items_per_order: u32,
    /// Seconds the incremental window reaches back before the watermark.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// Overrides the request quota (default: [`crate::client::default_quota`]);
    /// the cost bucket is followed from `extensions.cost` in any case.
    #[serde(default)]
    pub quota: Option<synchub_http::QuotaConfig>,
    /// The shop's cost bucket (`throttleStatus.maximumAvailable`: 1000 on a
    /// standard plan at 50 points/s, 2000 at 100/s …). When set, pages are
    /// sized to fit it as well as the 1,000-point single-query maximum.
    #[serde(default)]
    pub bucket_size: Option<u32>,
    /// A backfill (a stream with no cursor, or a full refresh) reads a bulk
    /// operation's JSONL export instead of cost-limited pages. On by default;
    /// `false` opts out (the paged backfill's duration is then logged).
    #[serde(default = "default_bulk_backfill")]
    pub bulk_backfill: bool,
    /// A PEM file of extra CA certificates to trust for this shop (a company
    /// proxy or a private CA), on top of the system trust store.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}
fn default_bulk_backfill() -> bool {
    true
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
            customers_page_size: None,
            orders_page_size: None,
            line_items_per_order: default_line_items(),
            overlap_seconds: default_overlap(),
            quota: None,
            bucket_size: None,
            bulk_backfill: default_bulk_backfill(),
            ca_file: None,
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
        if !(1..=250).contains(&self.line_items_per_order) {
            problems.push("`line_items_per_order` must be between 1 and 250".into());
        }
        if self.bucket_size == Some(0) {
            problems.push("`bucket_size` must be at least 1 point".into());
        }
        let limit = cost::page_limit(self.bucket_size);
        let lines = self.line_items_per_order;
        let pages: [PageCheck<'_>; 2] = [
            (
                "customers_page_size",
                self.customers_page_size,
                &cost::customers_page_cost,
                "a customers page",
            ),
            (
                "orders_page_size",
                self.orders_page_size,
                &|n| cost::orders_page_cost(n, lines),
                "an orders page",
            ),
        ];
        for (key, size, cost_of, what) in pages {
            if let Some(n) = size {
                if !(1..=cost::MAX_PAGE).contains(&n) {
                    problems.push(format!("`{key}` must be between 1 and 250"));
                    continue;
                }
            }
            let n = size.or_else(|| cost::largest_page(limit, cost_of));
            let Some(n) = n else {
                problems.push(format!(
                    "{what} of one item with {lines} line items requests {} points, over {}: \
                     lower `line_items_per_order` or use `bulk_backfill`",
                    cost_of(1),
                    self.limit_name()
                ));
                continue;
            };
            let requested = cost_of(n);
            if requested > limit {
                let fits = cost::largest_page(limit, cost_of)
                    .map_or("none".to_string(), |m| m.to_string());
                problems.push(format!(
                    "{what} of {n} (`{key}`{}) requests {requested} points, over {}: \
                     the largest page that fits is {fits}",
                    if key == "orders_page_size" {
                        format!(", {lines} line items each")
                    } else {
                        String::new()
                    },
                    self.limit_name()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ShopifyError::Config(problems.join("; ")))
        }
    }

    fn limit_name(&self) -> String {
        match self.bucket_size {
            Some(b) if b < cost::MAX_SINGLE_QUERY_COST => {
                format!("the plan's cost bucket of {b} points (`bucket_size`)")
            }
            _ => format!(
                "Shopify's single-query maximum of {} points",
                cost::MAX_SINGLE_QUERY_COST
            ),
        }
    }

    /// Customers per page: the configured size or the largest that fits.
    pub fn customers_page(&self) -> u32 {
        self.customers_page_size.unwrap_or_else(|| {
            cost::largest_page(
                cost::page_limit(self.bucket_size),
                cost::customers_page_cost,
            )
            .unwrap_or(1)
        })
    }

    /// Orders per page: the configured size or the largest that fits.
    pub fn orders_page(&self) -> u32 {
        let lines = self.line_items_per_order;
        self.orders_page_size.unwrap_or_else(|| {
            cost::largest_page(cost::page_limit(self.bucket_size), |n| {
                cost::orders_page_cost(n, lines)
            })
            .unwrap_or(1)
        })
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

/// A page-size setting to check: key, configured size, cost of a page, what it is.
type PageCheck<'a> = (&'a str, Option<u32>, &'a dyn Fn(u32) -> u32, &'a str);

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
        cfg.orders_page_size = Some(250);
        let err = cfg.validate().expect_err("invalid").to_string();
        assert!(err.contains("`shop`") && err.contains("api_version") && err.contains("1000"));
        assert!(!err.contains("shpat_secret_value"));
        assert!(!format!("{cfg:?}").contains("shpat_secret_value"));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn refuses_page_sizes_the_plan_cannot_serve_naming_the_limit() {
        // GIVEN the page sizes a user set that the issue's server refused
        let mut cfg = ShopifyConfig::new("example-tw", "shpat_x");
        cfg.orders_page_size = Some(25);
        cfg.line_items_per_order = 10;
        // THEN validation refuses them with the computed cost and the limit
        let err = cfg.validate().expect_err("over the maximum").to_string();
        assert!(err.contains("requests 1502 points"), "{err}");
        assert!(err.contains("single-query maximum of 1000"), "{err}");
        assert!(err.contains("largest page that fits is 16"), "{err}");
        // a standard plan's bucket below the maximum is the tighter limit
        let mut small = ShopifyConfig::new("example-tw", "shpat_x");
        small.bucket_size = Some(500);
        small.customers_page_size = Some(250);
        let err = small.validate().expect_err("over the bucket").to_string();
        assert!(
            err.contains("cost bucket of 500 points (`bucket_size`)"),
            "{err}"
        );
        // AND the defaults are sized to fit
        let auto = ShopifyConfig::new("example-tw", "shpat_x");
        auto.validate().expect("defaults fit");
        assert_eq!((auto.customers_page(), auto.orders_page()), (250, 16));
        assert!(cost::orders_page_cost(auto.orders_page(), 10) <= 1000);
        small.customers_page_size = None;
        assert_eq!(small.customers_page(), 166);
    }
}
