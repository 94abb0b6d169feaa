//! The `config` table of an `imap` connection.

use serde::Deserialize;
use synchub_core::ConnectorError;
use synchub_http::secret::expand_env;
use synchub_http::SecretString;

use crate::client::Security;

fn yes() -> bool {
    true
}
fn default_folders() -> Vec<String> {
    vec!["INBOX".into(), "Sent".into()]
}
fn default_page_size() -> usize {
    200
}
fn default_timeout() -> u64 {
    60
}

/// Settings of one mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// Server host name.
    pub host: String,
    /// Port; 993 with `tls`, else 143.
    #[serde(default)]
    pub port: Option<u16>,
    /// Login name.
    pub user: String,
    /// Password, normally a `${ENV_VAR}` reference.
    pub password: String,
    /// TLS from the first byte (port 993). `false` is allowed only for a
    /// loopback host unless `starttls` is set.
    #[serde(default = "yes")]
    pub tls: bool,
    /// Plain connection upgraded with `STARTTLS` (port 143); needs `tls = false`.
    #[serde(default)]
    pub starttls: bool,
    /// Folders to read, UTF-8 names (`INBOX`, `Sent`, `客戶/報價`).
    #[serde(default = "default_folders")]
    pub folders: Vec<String>,
    /// Messages per page (1..=1000).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Read the first 2 KB of each body for a snippet (never the whole body).
    #[serde(default = "yes")]
    pub snippet: bool,
    /// Connect and per-command timeout, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Which change-tracking extensions to use when the server offers them:
    /// `qresync` (default: flags, expunges and new mail from one MODSEQ),
    /// `condstore` (flags by MODSEQ; expunges by comparing UIDs) or `uids`
    /// (new mail and expunges by UID only; flag changes are not seen) for
    /// servers whose extensions misbehave.
    #[serde(default)]
    pub changes: Changes,
    /// Where the uid → message index is kept (relative to the pipeline
    /// file); default `.synchub-imap`.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// A PEM file of the certificates to trust instead of the system's (a
    /// private CA or a self-signed server); relative to the pipeline file.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// How changes are tracked (the most a server may be asked for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Changes {
    /// UIDs only.
    Uids,
    /// CONDSTORE (RFC 7162 §3.1).
    Condstore,
    /// QRESYNC (RFC 7162 §3.2).
    #[default]
    Qresync,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: SecretString,
    /// Transport security.
    pub security: Security,
    /// Folders.
    pub folders: Vec<String>,
    /// Page size.
    pub page_size: usize,
    /// Snippets on.
    pub snippet: bool,
    /// Timeout.
    pub timeout: std::time::Duration,
    /// Change tracking.
    pub changes: Changes,
    /// Index directory (relative paths resolved against the base dir).
    pub state_dir: std::path::PathBuf,
    /// Certificates to trust instead of the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl ImapConfig {
    /// Validates without IO (reads the password's environment variable).
    pub fn check(self, base_dir: &std::path::Path) -> Result<Settings, ConnectorError> {
        let bad = |key: &str, m: String| ConnectorError::Config(format!("key `{key}`: {m}"));
        if self.host.trim().is_empty() {
            return Err(bad("host", "is empty".into()));
        }
        if self.user.trim().is_empty() {
            return Err(bad("user", "is empty".into()));
        }
        let security = match (self.tls, self.starttls) {
            (true, true) => {
                return Err(bad(
                    "starttls",
                    "set `tls = false` with `starttls = true` (STARTTLS upgrades a plain connection)".into(),
                ))
            }
            (true, false) => Security::Tls,
            (false, true) => Security::StartTls,
            (false, false) if is_loopback(&self.host) => Security::Plain,
            (false, false) => {
                return Err(bad(
                    "tls",
                    format!(
                        "`tls = false` sends the password in clear text; allowed only for a loopback host, not `{}` (use `starttls = true` or remove `tls`)",
                        self.host
                    ),
                ))
            }
        };
        if self.ca_file.is_some() && security == Security::Plain {
            return Err(bad(
                "ca_file",
                "is used only with TLS: set `starttls = true` or remove `tls = false`".into(),
            ));
        }
        if self.folders.is_empty() {
            return Err(bad("folders", "names no folder".into()));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(bad(
                "page_size",
                format!("{} is not within 1..=1000", self.page_size),
            ));
        }
        let password = expand_env(&self.password).map_err(|e| bad("password", e.to_string()))?;
        synchub_http::secret::register(&password);
        let port = self
            .port
            .unwrap_or(if security == Security::Tls { 993 } else { 143 });
        let state_dir = base_dir.join(self.state_dir.as_deref().unwrap_or(".synchub-imap"));
        let ca_file = self.ca_file.as_deref().map(|f| base_dir.join(f));
        Ok(Settings {
            host: self.host,
            port,
            user: self.user,
            password,
            security,
            folders: self.folders,
            page_size: self.page_size,
            snippet: self.snippet,
            timeout: std::time::Duration::from_secs(self.timeout_secs.max(1)),
            changes: self.changes,
            state_dir,
            ca_file,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn cfg(json: serde_json::Value) -> Result<Settings, ConnectorError> {
        let c: ImapConfig =
            serde_json::from_value(json).map_err(|e| ConnectorError::Config(e.to_string()))?;
        c.check(std::path::Path::new("/base"))
    }

    #[test]
    fn plain_text_only_on_loopback() {
        let ok = cfg(serde_json::json!({"host":"127.0.0.1","user":"a","password":"p","tls":false}))
            .unwrap();
        assert_eq!(ok.security, Security::Plain);
        assert_eq!(ok.port, 143);
        assert_eq!(ok.folders, vec!["INBOX", "Sent"]);
        let err = cfg(
            serde_json::json!({"host":"mail.example.com","user":"a","password":"p","tls":false}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("key `tls`"), "{err}");
        let tls =
            cfg(serde_json::json!({"host":"mail.example.com","user":"a","password":"p"})).unwrap();
        assert_eq!((tls.security, tls.port), (Security::Tls, 993));
        let st = cfg(serde_json::json!({"host":"mail.example.com","user":"a","password":"p","tls":false,"starttls":true,"ca_file":"ca.pem"})).unwrap();
        assert_eq!(st.security, Security::StartTls);
        assert_eq!(
            st.ca_file.as_deref(),
            Some(std::path::Path::new("/base/ca.pem"))
        );
        let err = cfg(serde_json::json!({"host":"127.0.0.1","user":"a","password":"p","tls":false,"ca_file":"ca.pem"})).unwrap_err();
        assert!(err.to_string().contains("key `ca_file`"), "{err}");
    }

    #[test]
    fn rejects_unknown_keys_missing_env_and_bad_sizes() {
        assert!(
            cfg(serde_json::json!({"host":"h","user":"a","password":"p","folder":"x"})).is_err()
        );
        let err = cfg(
            serde_json::json!({"host":"h","user":"a","password":"${SYNCHUB_IMAP_TEST_UNSET_VAR}"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("key `password`"), "{err}");
        assert!(!err.to_string().contains("secret"));
        let err = cfg(serde_json::json!({"host":"h","user":"a","password":"p","page_size":0}))
            .unwrap_err();
        assert!(err.to_string().contains("page_size"));
    }
}
