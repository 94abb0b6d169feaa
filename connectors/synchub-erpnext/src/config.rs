//! The `config` table of an `erpnext` connection.

use chrono::FixedOffset;
use secrecy::SecretString;
use serde::Deserialize;
use synchub_http::QuotaConfig;

/// Settings of one ERPNext (Frappe) site.
///
/// ```toml
/// [[connections]]
/// name = "erp"
/// kind = "erpnext"
/// [connections.config]
/// url = "https://erp.example.com.tw"
/// api_key = "${ERPNEXT_API_KEY}"
/// api_secret = "${ERPNEXT_API_SECRET}"
/// utc_offset = "+08:00"
/// ```
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErpNextConfig {
    /// The site's base URL, e.g. `https://erp.example.com.tw`.
    pub url: String,
    /// The API key of the integration user (User › Settings › API Access).
    pub api_key: SecretString,
    /// The API secret shown once when the keys were generated (`${VAR}`
    /// references are expanded); sent only in the `Authorization` header.
    pub api_secret: SecretString,
    /// The site's time zone as a fixed UTC offset (`+08:00` for
    /// Asia/Taipei, Asia/Hong_Kong, Asia/Shanghai): Frappe's `modified`
    /// times are naive and in the System Settings time zone.
    #[serde(default = "default_offset")]
    pub utc_offset: String,
    /// Documents per request (`limit_page_length`, 1–500).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// How far each incremental pass looks back before the watermark, in
    /// seconds (covers clock skew and transactions committed late).
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// The Data field (a custom field added on Customer and Contact) that
    /// carries the idempotency key of documents created from the CRM,
    /// looked up before every create so a retried create makes one
    /// document.
    #[serde(default = "default_reference_field")]
    pub reference_field: String,
    /// The `customer_group` of customers created from the CRM (none: the
    /// site's Selling Settings default).
    #[serde(default)]
    pub customer_group: Option<String>,
    /// The `territory` of customers created from the CRM (none: the site's
    /// default).
    #[serde(default)]
    pub territory: Option<String>,
    /// The webhook secret of the site's Webhook documents ("Enable
    /// Security"), checked against `X-Frappe-Webhook-Signature`.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// Overrides the request budget (default 5 requests/s, burst 5: the
    /// notes advise at most 5 req/s against a self-hosted site).
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
}

fn default_offset() -> String {
    "+00:00".into()
}

fn default_page_size() -> u32 {
    100
}

fn default_overlap() -> u32 {
    300
}

fn default_reference_field() -> String {
    "synchub_key".into()
}

impl std::fmt::Debug for ErpNextConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpNextConfig")
            .field("url", &self.url)
            .field("utc_offset", &self.utc_offset)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl ErpNextConfig {
    /// A configuration with defaults for `url` and the key pair.
    pub fn new(url: impl Into<String>, api_key: &str, api_secret: &str) -> Self {
        ErpNextConfig {
            url: url.into(),
            api_key: api_key.to_string().into(),
            api_secret: api_secret.to_string().into(),
            utc_offset: default_offset(),
            page_size: default_page_size(),
            overlap_seconds: default_overlap(),
            reference_field: default_reference_field(),
            customer_group: None,
            territory: None,
            webhook_secret: None,
            quota: None,
        }
    }

    /// Checks every setting at once; the parsed offset.
    pub fn validate(&self) -> Result<FixedOffset, Vec<String>> {
        let mut problems = Vec::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            problems.push(format!("key `url`: `{}` is not an http(s) URL", self.url));
        }
        if !(1..=500).contains(&self.page_size) {
            problems.push(format!(
                "key `page_size`: {} is out of range 1–500",
                self.page_size
            ));
        }
        if self.reference_field.is_empty()
            || !self
                .reference_field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            problems.push(format!(
                "key `reference_field`: `{}` is not a field name (letters, digits, `_`)",
                self.reference_field
            ));
        }
        let offset = parse_offset(&self.utc_offset);
        if offset.is_none() {
            problems.push(format!(
                "key `utc_offset`: `{}` is not an offset like `+08:00`",
                self.utc_offset
            ));
        }
        match offset {
            Some(o) if problems.is_empty() => Ok(o),
            _ => Err(problems),
        }
    }
}

/// Parses `+08:00`, `-05:30`, `Z` or `+00:00`.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse() {
        assert_eq!(
            parse_offset("+08:00").map(|o| o.local_minus_utc()),
            Some(28_800)
        );
        assert_eq!(
            parse_offset("-05:30").map(|o| o.local_minus_utc()),
            Some(-19_800)
        );
        assert_eq!(parse_offset("Z").map(|o| o.local_minus_utc()), Some(0));
        assert_eq!(parse_offset("Asia/Taipei"), None);
        assert_eq!(parse_offset("+25:00"), None);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut c = ErpNextConfig::new("erp.example", "k", "s");
        c.page_size = 0;
        c.utc_offset = "Taipei".into();
        let problems = c.validate().expect_err("three problems");
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
