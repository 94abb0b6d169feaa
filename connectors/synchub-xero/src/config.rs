//! The configuration of one Xero connection (`kind = "xero"`): one tenant
//! (organisation) of a sign-in that may reach several. Validation is pure.

use serde::Deserialize;
use synchub_core::model::Order;
use synchub_core::ConnectorError;
use synchub_http::{OAuthConfig, OAuthProvider, OAuthSettings, QuotaConfig, SecretString};

/// The Accounting API root.
pub const API_BASE: &str = "https://api.xero.com/api.xro/2.0/";
/// Xero's authorization endpoint.
pub const AUTH_URL: &str = "https://login.xero.com/identity/connect/authorize";
/// Xero's token endpoint.
pub const TOKEN_URL: &str = "https://identity.xero.com/connect/token";

/// Xero's OAuth2 endpoints and the scopes this connector needs (contacts,
/// invoices, and a refresh token).
/// <https://developer.xero.com/documentation/guides/oauth2/overview>
pub const OAUTH: OAuthProvider = OAuthProvider {
    name: "xero",
    auth_url: AUTH_URL,
    token_url: TOKEN_URL,
    default_scopes: &[
        "offline_access",
        "accounting.contacts",
        "accounting.transactions",
    ],
    default_tenant: None,
};

/// When a CRM order becomes an ACCREC invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceWhen {
    /// `financial_status = "paid"`.
    Paid,
    /// `fulfillment_status = "fulfilled"`.
    Fulfilled,
    /// `status = "closed"`.
    Closed,
    /// Every order not cancelled.
    Placed,
}

impl InvoiceWhen {
    /// Whether `order` is in the state this rule names (pure; usable by the engine).
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

/// One Xero organisation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XeroConfig {
    /// The organisation (`xero-tenant-id`), from `GET /connections`.
    pub tenant_id: String,
    /// The app's OAuth client id (or `oauth.client_id`).
    #[serde(default)]
    pub client_id: String,
    /// The app's OAuth client secret (absent for PKCE public clients).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Overrides the API root.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Overrides the token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Overrides the authorization endpoint.
    #[serde(default)]
    pub auth_url: Option<String>,
    /// When an order is invoiced; default `paid`.
    #[serde(default = "default_when")]
    pub invoice_when: InvoiceWhen,
    /// Revenue account code of invoice lines.
    #[serde(default = "default_account")]
    pub sales_account_code: String,
    /// The webhook key (`x-xero-signature`).
    #[serde(default)]
    pub webhook_key: Option<SecretString>,
    /// Items per page (Xero pages hold up to 100 with line items).
    #[serde(default = "default_page")]
    pub page_size: u32,
    /// Seconds `If-Modified-Since` reaches back before the watermark.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// The sign-in table of `synchub auth` (the same keys for every
    /// connector); its client and endpoints are used when the top-level
    /// keys are absent.
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// Overrides the per-tenant quota (default [`crate::policy::default_quota`]).
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
}

fn default_when() -> InvoiceWhen {
    InvoiceWhen::Paid
}
fn default_account() -> String {
    "200".into()
}
fn default_page() -> u32 {
    100
}
fn default_overlap() -> u32 {
    60
}

impl XeroConfig {
    /// Defaults for `tenant_id` and `client_id`.
    pub fn new(tenant_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        XeroConfig {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret: None,
            base_url: None,
            token_url: None,
            auth_url: None,
            invoice_when: InvoiceWhen::Paid,
            sales_account_code: default_account(),
            webhook_key: None,
            page_size: default_page(),
            overlap_seconds: default_overlap(),
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
        let t = &self.tenant_id;
        if t.len() != 36 || t.chars().filter(|c| *c == '-').count() != 4 {
            problems.push(format!(
                "`tenant_id` must be the organisation's tenant id (a UUID from GET /connections), got `{t}`"
            ));
        }
        let oauth = self.oauth_settings();
        if oauth.client_id.trim().is_empty() {
            problems.push("`client_id` is empty: set it or `[oauth] client_id`".to_string());
        } else if let Err(e) = oauth.validate(&OAUTH) {
            problems.push(e);
        }
        if self.page_size == 0 || self.page_size > 100 {
            problems.push(format!(
                "`page_size` must be 1..=100, got {}",
                self.page_size
            ));
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

    /// The API root, ending in `/`.
    pub fn api_base(&self) -> String {
        let b = self.base_url.as_deref().unwrap_or(API_BASE);
        if b.ends_with('/') {
            b.to_string()
        } else {
            format!("{b}/")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_reported_together() {
        let mut c = XeroConfig::new("org", "");
        c.page_size = 500;
        let e = c.validate().expect_err("invalid").to_string();
        assert!(
            e.contains("tenant_id") && e.contains("client_id") && e.contains("page_size"),
            "{e}"
        );
        assert!(XeroConfig::new("c2cc9b6e-9458-4c7d-93cc-f02b81b0594f", "x")
            .validate()
            .is_ok());
    }
}
