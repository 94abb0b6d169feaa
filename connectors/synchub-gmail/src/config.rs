//! The `config` table of a `gmail` connection, strictly typed.
//!
//! ```toml
//! [[connections]]
//! name = "mailbox"
//! kind = "gmail"
//! [connections.config]
//! labels = ["INBOX"]            # only messages carrying one of these labels
//! [connections.config.oauth]    # read by `synchub auth mailbox` too
//! client_id = "${GOOGLE_CLIENT_ID}"
//! client_secret = "${GOOGLE_CLIENT_SECRET}"
//! scopes = ["https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/contacts"]
//! ```

use serde::Deserialize;
use synchub_core::ConnectorError;
use synchub_http::{OAuthProvider, OAuthSettings, QuotaConfig};

/// Google's OAuth 2.0 endpoints.
pub const GOOGLE_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Google's OAuth2 endpoints and the scopes this connector needs (mail
/// read, contacts read and write). `provider = "generic"` is accepted too,
/// as earlier examples wrote it.
/// <https://developers.google.com/identity/protocols/oauth2/native-app>
pub const OAUTH: OAuthProvider = OAuthProvider {
    name: "google",
    auth_url: GOOGLE_AUTH_URL,
    token_url: GOOGLE_TOKEN_URL,
    default_scopes: &[
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/contacts",
    ],
    default_tenant: None,
};

/// The settings of one Gmail mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmailConfig {
    /// The Gmail API root (the sandbox's address in tests).
    #[serde(default = "default_gmail_url")]
    pub gmail_url: String,
    /// The People API root.
    #[serde(default = "default_people_url")]
    pub people_url: String,
    /// The mailbox: an address or `me`.
    #[serde(default = "default_user")]
    pub user_id: String,
    /// Only messages carrying one of these label ids (empty: all but spam and trash).
    #[serde(default)]
    pub labels: Vec<String>,
    /// `metadata` (headers and snippet, the default) or `full`.
    #[serde(default)]
    pub format: MessageFormat,
    /// Messages per `messages.list` / `history.list` page (1–500).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Contacts per People API page (1–1000).
    #[serde(default = "default_people_page_size")]
    pub people_page_size: u32,
    /// Overrides the per-user quota (see [`crate::policy::gmail_quota`]).
    #[serde(default)]
    pub quota: Option<QuotaConfig>,
    /// How `synchub auth` signs in and how tokens are refreshed (the same
    /// keys for every connector; endpoints and scopes default to Google's).
    pub oauth: OAuthSettings,
}

/// How much of a message is fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    /// Headers, labels and snippet (the default; works with the `gmail.metadata` scope).
    #[default]
    Metadata,
    /// The parsed body too.
    Full,
}

impl MessageFormat {
    /// The `format=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageFormat::Metadata => "metadata",
            MessageFormat::Full => "full",
        }
    }
}

impl GmailConfig {
    /// Checks the values serde cannot (pure; no IO).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if !(1..=500).contains(&self.page_size) {
            return Err(ConnectorError::Config(format!(
                "setting `page_size`: {} is outside 1–500 (Gmail's maxResults limit)",
                self.page_size
            )));
        }
        if !(1..=1000).contains(&self.people_page_size) {
            return Err(ConnectorError::Config(format!(
                "setting `people_page_size`: {} is outside 1–1000 (People API pageSize limit)",
                self.people_page_size
            )));
        }
        for (key, url) in [
            ("gmail_url", &self.gmail_url),
            ("people_url", &self.people_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConnectorError::Config(format!(
                    "setting `{key}`: `{url}` is not an http(s) URL"
                )));
            }
        }
        if self.user_id.trim().is_empty() || self.user_id.contains('/') {
            return Err(ConnectorError::Config(
                "setting `user_id`: expected an address or `me`".into(),
            ));
        }
        self.oauth
            .validate(&OAUTH)
            .map_err(|e| ConnectorError::Config(format!("setting {e}")))
    }
}

fn default_gmail_url() -> String {
    "https://gmail.googleapis.com".into()
}
fn default_people_url() -> String {
    "https://people.googleapis.com".into()
}
fn default_user() -> String {
    "me".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_people_page_size() -> u32 {
    200
}
