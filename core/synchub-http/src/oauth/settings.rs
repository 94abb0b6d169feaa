//! The `oauth` table of a connection, parsed one way for every command: the
//! connector's `Config` embeds [`OAuthSettings`], the connector names its
//! provider's endpoints and default scopes as an [`OAuthProvider`]
//! constant, and both `synchub run` (the token manager) and `synchub auth`
//! (the sign-in flow) get their [`OAuthConfig`] from
//! [`OAuthSettings::oauth_config`].
//!
//! ```toml
//! [connections.config.oauth]
//! client_id = "${CLIENT_ID}"
//! client_secret = "${CLIENT_SECRET}"     # absent for public PKCE clients
//! scopes = ["offline_access", "contacts.read"]   # default: the provider's
//! redirect_uri = "http://127.0.0.1:8749/callback"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::flow::AuthFlowOptions;
use super::OAuthConfig;
use crate::secret::{expand_env, ExposeSecret, SecretString};

/// A provider's OAuth2 endpoints and the scopes a connector needs, named by
/// the connector's crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthProvider {
    /// The value of `provider` that names this provider (besides `generic`).
    pub name: &'static str,
    /// The authorization endpoint; `{tenant}` is replaced by the tenant.
    pub auth_url: &'static str,
    /// The token endpoint; `{tenant}` is replaced by the tenant.
    pub token_url: &'static str,
    /// Scopes requested when the table names none.
    pub default_scopes: &'static [&'static str],
    /// The tenant used when the table names none, for endpoints with `{tenant}`.
    pub default_tenant: Option<&'static str>,
}

/// The `oauth` table of a connection's `config`: how `synchub auth` signs
/// in and how tokens are refreshed. The same keys for every connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// The provider's name or `generic`. The connection's kind decides the
    /// endpoints; this key is checked against it when present.
    #[serde(default)]
    pub provider: Option<String>,
    /// The application's client id (`${ENV}` references are expanded).
    pub client_id: String,
    /// The client secret (absent for public PKCE clients; `${ENV}`
    /// references are expanded).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Scopes to request (default: the connector's).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Overrides the provider's authorization endpoint.
    #[serde(default)]
    pub auth_url: Option<String>,
    /// Overrides the provider's token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The tenant of providers whose endpoints name one (`common`,
    /// `organizations` or a tenant id); ignored by the others.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The loopback redirect URI registered with the provider
    /// (`http://127.0.0.1:PORT/PATH`).
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Extra authorization parameters (e.g. `prompt = "consent"`).
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Seconds `synchub auth` waits for the browser.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// What `synchub auth` needs to sign one connection in.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The provider's endpoints and the client.
    pub oauth: OAuthConfig,
    /// Where and how long to listen for the browser.
    pub flow: AuthFlowOptions,
}

impl OAuthSettings {
    /// A table with only a client id (connectors that also take the client
    /// from top-level keys start from this).
    pub fn with_client_id(client_id: impl Into<String>) -> Self {
        OAuthSettings {
            provider: None,
            client_id: client_id.into(),
            client_secret: None,
            scopes: Vec::new(),
            auth_url: None,
            token_url: None,
            tenant: None,
            redirect_uri: None,
            extra_auth_params: BTreeMap::new(),
            timeout_seconds: None,
        }
    }

    /// Checks what serde cannot (pure): the provider name, the client id,
    /// the endpoint URLs and the redirect URI. Problems name the key under
    /// `oauth.`; all are reported at once.
    pub fn validate(&self, provider: &OAuthProvider) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(p) = &self.provider {
            if p != provider.name && p != "generic" {
                problems.push(format!(
                    "`oauth.provider`: `{p}` does not sign in to this connector; use `{}` (or `generic` with both endpoints), or leave it out",
                    provider.name
                ));
            }
        }
        if self.client_id.trim().is_empty() {
            problems.push("`oauth.client_id` is empty".to_string());
        }
        for (key, url) in [("auth_url", &self.auth_url), ("token_url", &self.token_url)] {
            if let Some(u) = url {
                if reqwest::Url::parse(u).is_err() {
                    problems.push(format!("`oauth.{key}` is not a URL: `{u}`"));
                }
            }
        }
        if let Some(uri) = &self.redirect_uri {
            if let Err(e) = parse_loopback(uri) {
                problems.push(format!("`oauth.redirect_uri`: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The token and authorization endpoint settings: this table's
    /// overrides over the provider's endpoints and default scopes.
    pub fn oauth_config(&self, provider: &OAuthProvider) -> Result<OAuthConfig, String> {
        self.validate(provider)?;
        let client_id = expand_env(&self.client_id)
            .map_err(|e| format!("`oauth.client_id`: {e}"))?
            .expose_secret()
            .to_string();
        let client_secret = match &self.client_secret {
            Some(s) => Some(
                expand_env(s.expose_secret()).map_err(|e| format!("`oauth.client_secret`: {e}"))?,
            ),
            None => None,
        };
        let tenant = self
            .tenant
            .as_deref()
            .or(provider.default_tenant)
            .unwrap_or_default();
        let endpoint = |over: &Option<String>, default: &str| {
            over.clone()
                .unwrap_or_else(|| default.replace("{tenant}", tenant))
        };
        let scopes = if self.scopes.is_empty() {
            provider
                .default_scopes
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.scopes.clone()
        };
        let mut config = OAuthConfig::new(
            client_id,
            client_secret,
            &endpoint(&self.auth_url, provider.auth_url),
            &endpoint(&self.token_url, provider.token_url),
            scopes,
        );
        config.extra_auth_params = self
            .extra_auth_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(config)
    }

    /// The callback listener of `synchub auth`.
    pub fn flow_options(&self) -> Result<AuthFlowOptions, String> {
        let mut options = AuthFlowOptions::default();
        if let Some(uri) = &self.redirect_uri {
            let (listen, path) =
                parse_loopback(uri).map_err(|e| format!("`oauth.redirect_uri`: {e}"))?;
            options.listen = listen;
            options.callback_path = path;
        }
        if let Some(t) = self.timeout_seconds {
            options.timeout = Duration::from_secs(t);
        }
        Ok(options)
    }

    /// Everything `synchub auth` needs.
    pub fn sign_in(&self, provider: &OAuthProvider) -> Result<SignIn, String> {
        Ok(SignIn {
            oauth: self.oauth_config(provider)?,
            flow: self.flow_options()?,
        })
    }
}

/// `http://127.0.0.1:PORT/PATH` → listen address and path. Only loopback
/// addresses: the callback carries an authorization code.
pub fn parse_loopback(uri: &str) -> Result<(SocketAddr, String), String> {
    let rest = uri.strip_prefix("http://").ok_or_else(|| {
        format!("`{uri}` must be http://127.0.0.1:PORT/PATH (a loopback callback)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let authority = authority.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("`{uri}`: `{authority}` is not HOST:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "`{uri}` must point at a loopback address (127.0.0.1 or [::1])"
        ));
    }
    Ok((addr, path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOOKS: OAuthProvider = OAuthProvider {
        name: "books",
        auth_url: "https://login.example.test/{tenant}/authorize",
        token_url: "https://login.example.test/{tenant}/token",
        default_scopes: &["offline_access", "contacts"],
        default_tenant: Some("common"),
    };

    fn table(v: serde_json::Value) -> OAuthSettings {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn provider_endpoints_tenant_and_default_scopes_fill_what_the_table_leaves_out() {
        let c = table(json!({"client_id": "app"}))
            .oauth_config(&BOOKS)
            .unwrap();
        assert_eq!(c.auth_url, "https://login.example.test/common/authorize");
        assert_eq!(c.token_url, "https://login.example.test/common/token");
        assert_eq!(c.scopes, ["offline_access", "contacts"]);
        let c = table(json!({
            "client_id": "app", "tenant": "org-7", "scopes": ["contacts"],
            "token_url": "http://127.0.0.1:9/token", "extra_auth_params": {"prompt": "consent"}
        }))
        .oauth_config(&BOOKS)
        .unwrap();
        assert_eq!(c.auth_url, "https://login.example.test/org-7/authorize");
        assert_eq!(c.token_url, "http://127.0.0.1:9/token");
        assert_eq!(c.scopes, ["contacts"]);
        assert_eq!(c.extra_auth_params, [("prompt".into(), "consent".into())]);
    }

    #[test]
    fn unknown_keys_and_other_providers_are_refused() {
        let e = serde_json::from_value::<OAuthSettings>(json!({
            "client_id": "a", "clientsecret": "b"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("clientsecret"), "{e}");
        let e = table(json!({"client_id": "a", "provider": "elsewhere"}))
            .oauth_config(&BOOKS)
            .unwrap_err();
        assert!(e.contains("oauth.provider") && e.contains("books"), "{e}");
        for ok in ["books", "generic"] {
            let t = table(json!({"client_id": "a", "provider": ok}));
            assert!(t.oauth_config(&BOOKS).is_ok(), "{ok}");
        }
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let e = table(json!({
            "client_id": " ", "token_url": "not a url",
            "redirect_uri": "http://10.0.0.1:8749/callback"
        }))
        .validate(&BOOKS)
        .unwrap_err();
        assert!(e.contains("oauth.client_id"), "{e}");
        assert!(e.contains("oauth.token_url"), "{e}");
        assert!(
            e.contains("oauth.redirect_uri") && e.contains("loopback"),
            "{e}"
        );
    }

    #[test]
    fn loopback_redirects_parse_and_others_are_refused() {
        let (addr, path) = parse_loopback("http://127.0.0.1:8749/callback").unwrap();
        assert_eq!(addr.port(), 8749);
        assert_eq!(path, "/callback");
        let (addr, _) = parse_loopback("http://localhost:9000/cb").unwrap();
        assert!(addr.ip().is_loopback());
        assert!(parse_loopback("https://127.0.0.1:8749/callback").is_err());
        assert!(parse_loopback("http://10.0.0.1:8749/callback")
            .unwrap_err()
            .contains("loopback"));
        let t = table(json!({
            "client_id": "a", "redirect_uri": "http://127.0.0.1:0/cb", "timeout_seconds": 60
        }));
        let o = t.flow_options().unwrap();
        assert_eq!((o.listen.port(), o.callback_path.as_str()), (0, "/cb"));
        assert_eq!(o.timeout, Duration::from_secs(60));
    }
}
