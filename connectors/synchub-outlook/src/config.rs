//! The `config` table of an `outlook` connection, strictly typed.
//!
//! ```toml
//! [[connections]]
//! name = "outlook"
//! kind = "outlook"
//! [connections.config]
//! folders = ["inbox", "sentitems", "archive"]
//! client_state = "${GRAPH_CLIENT_STATE}"     # webhook secret
//! [connections.config.oauth]                 # read by `synchub auth outlook` too
//! provider = "microsoft"
//! tenant = "common"
//! client_id = "${MS_CLIENT_ID}"
//! scopes = ["offline_access", "Mail.Read", "Contacts.ReadWrite"]
//! ```

use serde::Deserialize;
use synchub_core::ConnectorError;
use synchub_http::{OAuthProvider, OAuthSettings, QuotaConfig, SecretString};

/// The Microsoft identity platform's endpoints (`{tenant}`: `common`,
/// `organizations` or a tenant id; `common` by default) and the scopes this
/// connector needs (mail read, contacts read and write, a refresh token).
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow>
pub const OAUTH: OAuthProvider = OAuthProvider {
    name: "microsoft",
    auth_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    default_scopes: &["offline_access", "Mail.Read", "Contacts.ReadWrite"],
    default_tenant: Some("common"),
};

/// The settings of one Outlook mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlookConfig {
    /// The Graph root including the version (the sandbox's in tests).
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Mail folders followed by delta (well-known names or ids); Inbox and
    /// Sent Items by default.
    #[serde(default = "default_folders")]
    pub folders: Vec<String>,
    /// Items per page, sent as `Prefer: odata.maxpagesize` (1–1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Overrides the per-mailbox quota (10,000 requests per 10 minutes, 4 concurrent).
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
    /// The `clientState` secret of change-notification subscriptions
    /// (`${ENV}` references are expanded). Without it no subscription is made.
    #[serde(default)]
    pub client_state: Option<String>,
    /// How `synchub auth` signs in and how tokens are refreshed (the same
    /// keys for every connector; endpoints and scopes default to Microsoft's).
    pub oauth: OAuthSettings,
}

fn expand(key: &str, v: &str) -> Result<SecretString, ConnectorError> {
    synchub_http::secret::expand_env(v)
        .map_err(|e| ConnectorError::Config(format!("setting `{key}`: {e}")))
}

impl OutlookConfig {
    /// Checks the values serde cannot (pure; no IO).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if !(1..=1000).contains(&self.page_size) {
            return Err(ConnectorError::Config(format!(
                "setting `page_size`: {} is outside 1–1000",
                self.page_size
            )));
        }
        if self.folders.is_empty() {
            return Err(ConnectorError::Config(
                "setting `folders`: name at least one mail folder (e.g. \"inbox\")".into(),
            ));
        }
        if let Some(f) = self
            .folders
            .iter()
            .find(|f| f.is_empty() || f.contains('/') || f.contains('\''))
        {
            return Err(ConnectorError::Config(format!(
                "setting `folders`: `{f}` is not a folder name or id"
            )));
        }
        if !(self.graph_url.starts_with("https://") || self.graph_url.starts_with("http://")) {
            return Err(ConnectorError::Config(format!(
                "setting `graph_url`: `{}` is not an http(s) URL",
                self.graph_url
            )));
        }
        if let Some(s) = &self.client_state {
            let s = expand("client_state", s)?;
            if synchub_http::ExposeSecret::expose_secret(&s).len() > 128 {
                return Err(ConnectorError::Config(
                    "setting `client_state`: Graph allows at most 128 characters".into(),
                ));
            }
        }
        self.oauth
            .validate(&OAUTH)
            .map_err(|e| ConnectorError::Config(format!("setting {e}")))
    }
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn default_folders() -> Vec<String> {
    vec!["inbox".into(), "sentitems".into()]
}
fn default_page_size() -> u32 {
    50
}
