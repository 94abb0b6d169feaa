//! The configuration of one WooCommerce connector instance (a pipeline
//! file's `[source]`/`[target]` table). Validation is pure: no IO.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::WooError;

/// The REST namespace used when the config names none.
pub const DEFAULT_API_VERSION: &str = "wc/v3";

/// The configuration of one WooCommerce store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WooConfig {
    /// The store's site URL, e.g. `https://shop.example.com.tw` (the REST
    /// API lives under `{base_url}/wp-json/{api_version}`).
    pub base_url: String,
    /// REST namespace, `wc/v3`.
    #[serde(default = "default_version")]
    pub api_version: String,
    /// Consumer key (`ck_…`), the Basic-auth user name.
    pub consumer_key: String,
    /// Consumer secret (`cs_…`), the Basic-auth password.
    pub consumer_secret: SecretString,
    /// Secret set on the store's webhooks (`X-WC-Webhook-Signature`).
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// ISO 3166 region assumed for phone numbers written without a country code.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Items per page (WooCommerce allows at most 100).
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// Seconds the incremental window reaches back before the watermark.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// Overrides the request quota (default: [`crate::client::default_quota`]).
    #[serde(default)]
    pub quota: Option<synchub_http::QuotaConfig>,
    /// A PEM file of extra CA certificates to trust for this store (a
    /// company proxy or a private CA), on top of the system trust store.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_version() -> String {
    DEFAULT_API_VERSION.to_string()
}
fn default_per_page() -> u32 {
    100
}
fn default_overlap() -> u32 {
    5
}

impl WooConfig {
    /// A config with every default.
    pub fn new(base_url: &str, consumer_key: &str, consumer_secret: &str) -> Self {
        WooConfig {
            base_url: base_url.into(),
            api_version: default_version(),
            consumer_key: consumer_key.into(),
            consumer_secret: SecretString::from(consumer_secret.to_string()),
            webhook_secret: None,
            default_region: None,
            per_page: default_per_page(),
            overlap_seconds: default_overlap(),
            quota: None,
            ca_file: None,
        }
    }

    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), WooError> {
        let mut problems = Vec::new();
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            problems.push(format!(
                "`base_url` = {:?} must start with https:// (or http://)",
                self.base_url
            ));
        }
        if self.api_version.trim().is_empty() || self.api_version.contains(' ') {
            problems.push(format!(
                "`api_version` = {:?} is not a REST namespace like wc/v3",
                self.api_version
            ));
        }
        if self.consumer_key.trim().is_empty() {
            problems.push("`consumer_key` is empty".into());
        }
        if self.consumer_secret.expose_secret().trim().is_empty() {
            problems.push("`consumer_secret` is empty".into());
        }
        if !(1..=100).contains(&self.per_page) {
            problems.push("`per_page` must be between 1 and 100".into());
        }
        if let Some(region) = &self.default_region {
            if region.len() != 2 || !region.chars().all(|c| c.is_ascii_alphabetic()) {
                problems.push(format!(
                    "`default_region` = {region:?} is not a 2-letter code"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(WooError::Config(problems.join("; ")))
        }
    }

    /// `{base_url}/wp-json/{api_version}/` (with the trailing slash).
    pub fn api_root(&self) -> String {
        format!(
            "{}/wp-json/{}/",
            self.base_url.trim_end_matches('/'),
            self.api_version.trim_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_validates_and_hides_the_secret() {
        let cfg: WooConfig = serde_json::from_str(
            r#"{"base_url":"https://shop.example.com.tw/","consumer_key":"ck_1","consumer_secret":"cs_hidden_value"}"#,
        )
        .expect("parse");
        cfg.validate().expect("valid");
        assert_eq!(cfg.api_root(), "https://shop.example.com.tw/wp-json/wc/v3/");
        assert!(!format!("{cfg:?}").contains("cs_hidden_value"));
        let mut bad = cfg.clone();
        bad.per_page = 250;
        bad.base_url = "shop".into();
        let err = bad.validate().expect_err("invalid").to_string();
        assert!(
            err.contains("per_page") && err.contains("base_url"),
            "{err}"
        );
        assert!(serde_json::from_str::<WooConfig>(
            r#"{"base_url":"x","consumer_key":"k","consumer_secret":"s","perpage":1}"#
        )
        .is_err());
    }
}
