//! The configuration of one QuickBooks Online connection (the `config`
//! table of a `[[connections]]` entry with `kind = "quickbooks"`).
//! Validation is pure: no IO.

use serde::Deserialize;
use synchub_core::model::Order;
use synchub_core::ConnectorError;
use synchub_http::{OAuthConfig, OAuthProvider, OAuthSettings, QuotaConfig, SecretString};

/// Production API host (the sandbox company host is
/// `https://sandbox-quickbooks.api.intuit.com`).
pub const PRODUCTION_BASE_URL: &str = "https://quickbooks.api.intuit.com";
/// Intuit's OAuth 2.0 token endpoint.
pub const TOKEN_URL: &str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer";
/// Intuit's OAuth 2.0 authorization endpoint.
pub const AUTH_URL: &str = "https://appcenter.intuit.com/connect/oauth2";

/// Intuit's OAuth2 endpoints and the accounting scope this connector needs.
/// <https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0>
pub const OAUTH: OAuthProvider = OAuthProvider {
    name: "quickbooks",
    auth_url: AUTH_URL,
    token_url: TOKEN_URL,
    default_scopes: &["com.intuit.quickbooks.accounting"],
    default_tenant: None,
};
/// The schema minor version requested (Intuit moved the floor to 75 in 2025).
pub const DEFAULT_MINOR_VERSION: u32 = 75;

/// When a CRM order becomes an accounting document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceWhen {
    /// The order is paid (`financial_status = "paid"`): a SalesReceipt.
    Paid,
    /// The order is fulfilled: an Invoice, or a SalesReceipt when already paid.
    Fulfilled,
    /// The order is closed (`status = "closed"`).
    Closed,
    /// Every order, as soon as it is seen.
    Placed,
}

impl InvoiceWhen {
    /// Whether `order` is in the state this rule names. Pure: the engine can
    /// use it to decide which order changes to queue for this target.
    pub fn matches(self, order: &Order) -> bool {
        let is = |v: &Option<String>, want: &[&str]| {
            v.as_deref()
                .is_some_and(|s| want.iter().any(|w| s.eq_ignore_ascii_case(w)))
        };
        match self {
            InvoiceWhen::Paid => is(&order.financial_status, &["paid"]),
            InvoiceWhen::Fulfilled => is(&order.fulfillment_status, &["fulfilled"]),
            InvoiceWhen::Closed => is(&order.status, &["closed", "completed"]),
            InvoiceWhen::Placed => !is(&order.status, &["cancelled", "canceled"]),
        }
    }
}

/// One QuickBooks Online company (realm).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickBooksConfig {
    /// The company id (`realmId` of the OAuth redirect).
    pub realm_id: String,
    /// The app's OAuth client id (or `oauth.client_id`).
    #[serde(default)]
    pub client_id: String,
    /// The app's OAuth client secret.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Overrides the API host (the Intuit sandbox company, a test server).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Overrides the OAuth token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Overrides the OAuth authorization endpoint.
    #[serde(default)]
    pub auth_url: Option<String>,
    /// `?minorversion=` sent with every request.
    #[serde(default = "default_minor_version")]
    pub minor_version: u32,
    /// When an order is invoiced; default `paid`.
    #[serde(default = "default_invoice_when")]
    pub invoice_when: InvoiceWhen,
    /// Create a missing Item for an unknown SKU (else the order is refused).
    #[serde(default)]
    pub create_items: bool,
    /// The income account (`Account.Id`) of items this connector creates.
    #[serde(default)]
    pub item_income_account: Option<String>,
    /// Prefix of the `DocNumber` carrying the CRM order (at most 21 characters in all).
    #[serde(default = "default_doc_prefix")]
    pub doc_number_prefix: String,
    /// The app's webhook verifier token (`intuit-signature` key).
    #[serde(default)]
    pub webhook_verifier_token: Option<SecretString>,
    /// Objects per query page (at most 1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Seconds the incremental window reaches back before the last position.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// Seconds to wait after a 429 (Intuit: 60, no reliable `Retry-After`).
    #[serde(default = "default_throttle_wait")]
    pub throttle_wait_seconds: u64,
    /// The sign-in table of `synchub auth` (the same keys for every
    /// connector); its client and endpoints are used when the top-level
    /// keys are absent.
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// Overrides the per-realm quota (default [`crate::policy::default_quota`]).
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
}

fn default_minor_version() -> u32 {
    DEFAULT_MINOR_VERSION
}
fn default_invoice_when() -> InvoiceWhen {
    InvoiceWhen::Paid
}
fn default_doc_prefix() -> String {
    "SH".into()
}
fn default_page_size() -> u32 {
    1000
}
fn default_overlap() -> u32 {
    60
}
fn default_throttle_wait() -> u64 {
    60
}

impl QuickBooksConfig {
    /// A configuration with defaults for `realm_id` and `client_id`.
    pub fn new(realm_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        QuickBooksConfig {
            realm_id: realm_id.into(),
            client_id: client_id.into(),
            client_secret: None,
            base_url: None,
            token_url: None,
            auth_url: None,
            minor_version: DEFAULT_MINOR_VERSION,
            invoice_when: InvoiceWhen::Paid,
            create_items: false,
            item_income_account: None,
            doc_number_prefix: default_doc_prefix(),
            webhook_verifier_token: None,
            page_size: default_page_size(),
            overlap_seconds: default_overlap(),
            throttle_wait_seconds: default_throttle_wait(),
            quota: None,
            oauth: None,
        }
    }

    /// The effective sign-in settings: the top-level client and endpoint
    /// keys over the `oauth` table.
    pub fn oauth_settings(&self) -> OAuthSettings {
        let mut o = self
            .oauth
            .clone()
            .unwrap_or_else(|| OAuthSettings::with_client_id(""));
        if !self.client_id.trim().is_empty() {
            o.client_id = self.client_id.clone();
        }
        if self.client_secret.is_some() {
            o.client_secret = self.client_secret.clone();
        }
        if self.auth_url.is_some() {
            o.auth_url = self.auth_url.clone();
        }
        if self.token_url.is_some() {
            o.token_url = self.token_url.clone();
        }
        o
    }

    /// The token and authorization endpoint settings (run and `synchub auth` alike).
    pub fn oauth_config(&self) -> Result<OAuthConfig, ConnectorError> {
        self.oauth_settings()
            .oauth_config(&OAUTH)
            .map_err(ConnectorError::Config)
    }

    /// Checks every setting and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let mut problems = Vec::new();
        if self.realm_id.trim().is_empty() || !self.realm_id.chars().all(|c| c.is_ascii_digit()) {
            problems.push(format!(
                "`realm_id` must be the numeric company id, got `{}`",
                self.realm_id
            ));
        }
        let oauth = self.oauth_settings();
        if oauth.client_id.trim().is_empty() {
            problems.push("`client_id` is empty: set it or `[oauth] client_id`".to_string());
        } else if let Err(e) = oauth.validate(&OAUTH) {
            problems.push(e);
        }
        if self.page_size == 0 || self.page_size > 1000 {
            problems.push(format!(
                "`page_size` must be 1..=1000 (QuickBooks MAXRESULTS), got {}",
                self.page_size
            ));
        }
        // DocNumber holds at most 21 characters: prefix + '-' + 16 hex digits.
        if self.doc_number_prefix.chars().count() > 4
            || !self
                .doc_number_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        {
            problems.push(format!(
                "`doc_number_prefix` must be 1-4 letters or digits (DocNumber max 21 characters), got `{}`",
                self.doc_number_prefix
            ));
        }
        if self.create_items && self.item_income_account.is_none() {
            problems.push(
                "`create_items = true` needs `item_income_account` (the Account Id new items post income to)"
                    .to_string(),
            );
        }
        for (key, url) in [
            ("base_url", &self.base_url),
            ("token_url", &self.token_url),
            ("auth_url", &self.auth_url),
        ] {
            if let Some(u) = url {
                if reqwest::Url::parse(u).is_err() {
                    problems.push(format!("`{key}` is not a URL: `{u}`"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::Config(problems.join("; ")))
        }
    }

    /// The API host.
    pub fn api_base(&self) -> &str {
        self.base_url.as_deref().unwrap_or(PRODUCTION_BASE_URL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut c = QuickBooksConfig::new("abc", "");
        c.page_size = 5000;
        c.create_items = true;
        let e = c.validate().expect_err("invalid").to_string();
        assert!(e.contains("realm_id"), "{e}");
        assert!(e.contains("client_id"), "{e}");
        assert!(e.contains("page_size"), "{e}");
        assert!(e.contains("item_income_account"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let v = serde_json::json!({"realm_id": "1", "client_id": "x", "realmid": "2"});
        let e = serde_json::from_value::<QuickBooksConfig>(v).expect_err("unknown key");
        assert!(e.to_string().contains("realmid"), "{e}");
    }

    #[test]
    fn invoice_rule_reads_the_order_state() {
        let mut o = Order::default();
        assert!(!InvoiceWhen::Paid.matches(&o));
        o.financial_status = Some("PAID".into());
        assert!(InvoiceWhen::Paid.matches(&o));
        assert!(!InvoiceWhen::Fulfilled.matches(&o));
        o.status = Some("cancelled".into());
        assert!(!InvoiceWhen::Placed.matches(&o));
    }
}
