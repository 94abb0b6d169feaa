//! `synchub auth INSTANCE`: finds the connector instance in the pipeline
//! files, runs the OAuth2 authorization-code flow with PKCE and a loopback
//! callback (through `synchub-http`), and stores the tokens encrypted.
//!
//! An instance signs in with OAuth2 when its `config` has an `oauth` table:
//!
//! ```toml
//! [[connections]]
//! name = "books"
//! kind = "xero"
//! direction = "two-way"
//!
//! [connections.config.oauth]
//! provider = "xero"                          # xero, quickbooks, microsoft or generic
//! client_id = "${XERO_CLIENT_ID}"
//! client_secret = "${XERO_CLIENT_SECRET}"
//! scopes = ["offline_access", "accounting.contacts"]
//! redirect_uri = "http://127.0.0.1:8749/callback"   # as registered with the provider
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use synchub_http::{
    authorize_and_store, new_reqwest_client, AuthFlowOptions, OAuthConfig, SecretString,
    TokenCipher, TokenVault,
};
use synchub_store::tokens::SqlTokenStore;

use crate::commands::open_store;

/// The `oauth` table of a connection's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthSettings {
    provider: Provider,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Overrides the provider's authorization endpoint (required for `generic`).
    #[serde(default)]
    auth_url: Option<String>,
    /// Overrides the provider's token endpoint (required for `generic`).
    #[serde(default)]
    token_url: Option<String>,
    /// Microsoft tenant: `common`, `organizations` or a tenant id.
    #[serde(default)]
    tenant: Option<String>,
    /// The loopback redirect URI registered with the provider.
    #[serde(default)]
    redirect_uri: Option<String>,
    /// Extra authorization parameters (e.g. `prompt = "consent"`).
    #[serde(default)]
    extra_auth_params: std::collections::BTreeMap<String, String>,
    /// Seconds to wait for the browser to come back.
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Provider {
    Xero,
    Quickbooks,
    Microsoft,
    Generic,
}

/// Where an instance was found.
struct Found {
    file: PathBuf,
    settings: OAuthSettings,
}

pub async fn run(db: &str, instance: &str, config_dir: &Path) -> anyhow::Result<ExitCode> {
    let found = find_instance(config_dir, instance)?;
    let shown = found.file.display().to_string();
    let key = format!("connections.{instance}.config.oauth");
    let (config, options) = flow_settings(found.settings)
        .with_context(|| format!("pipeline file {shown}: key `{key}`"))?;
    // Fail before the user signs in when the tokens could not be stored.
    let cipher = TokenCipher::from_env()?;
    let store = open_store(db).await?;
    let vault = TokenVault::new(Arc::new(SqlTokenStore::new(store.clone())), cipher);
    let http = new_reqwest_client()?;
    println!("synchub auth {instance} (from {shown})");
    let outcome = authorize_and_store(instance, &config, &options, &vault, http, |prompt| {
        println!("open this address in a browser and sign in:");
        println!();
        println!("  {}", prompt.url);
        println!();
        println!(
            "waiting up to {} s for the provider to call back on {}",
            options.timeout.as_secs(),
            prompt.redirect_uri
        );
    })
    .await?;
    let expiry = outcome
        .tokens
        .expires_at
        .map(|t| format!("the access token expires at {}", t.to_rfc3339()))
        .unwrap_or_else(|| "the provider gave no expiry".into());
    let refresh = if outcome.tokens.refresh_token.is_some() {
        "a refresh token was stored; runs will refresh on their own"
    } else {
        "no refresh token was issued (request offline access to avoid signing in again)"
    };
    println!(
        "signed in: tokens for `{instance}` stored encrypted in {}; {expiry}; {refresh}",
        store.display_url()
    );
    for (k, v) in &outcome.tokens.extra {
        println!("  {k} = {v}");
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Looks through the pipeline files of `dir` for a connection named
/// `instance` with an `oauth` table.
fn find_instance(dir: &Path, instance: &str) -> anyhow::Result<Found> {
    let files = crate::pipeline::toml_files(dir)?;
    let mut oauth_instances = Vec::new();
    let mut hit: Option<(PathBuf, toml::Value)> = None;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        // Files that are not pipelines (or not valid TOML) are not ours to judge here.
        let Ok(value) = toml::from_str::<toml::Value>(&text) else {
            continue;
        };
        let connections = value
            .get("connections")
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default();
        for conn in connections {
            let name = conn.get("name").and_then(toml::Value::as_str);
            let oauth = conn.get("config").and_then(|c| c.get("oauth"));
            if let (Some(name), Some(oauth)) = (name, oauth) {
                oauth_instances.push(name.to_string());
                if name == instance {
                    if let Some((first, _)) = &hit {
                        bail!(
                            "instance `{instance}` has an oauth table in both {} and {}; \
                             tokens are stored per instance name, so give them different names",
                            first.display(),
                            file.display()
                        );
                    }
                    hit = Some((file.clone(), oauth.clone()));
                }
            }
        }
    }
    let Some((file, mut oauth)) = hit else {
        let known = if oauth_instances.is_empty() {
            "none has an `oauth` table in its config".to_string()
        } else {
            format!(
                "instances that sign in with OAuth2: {}",
                oauth_instances.join(", ")
            )
        };
        bail!(
            "no connection named `{instance}` with `[connections.config.oauth]` in the {} pipeline file(s) of {} ({known})",
            files.len(),
            dir.display()
        );
    };
    let shown = file.display();
    let substituted = crate::pipeline::substitute_env(
        &mut oauth,
        &mut vec![format!("connections.{instance}.config.oauth")],
    )
    .map_err(|e| anyhow!("pipeline file {shown}: {e}"))?;
    let settings: OAuthSettings = serde_path_to_error::deserialize(oauth).map_err(|e| {
        let inner = e.inner().to_string();
        anyhow!(
            "pipeline file {shown}: key `connections.{instance}.config.oauth.{}`: {}",
            e.path(),
            substituted.scrub(inner.lines().next().unwrap_or_default())
        )
    })?;
    Ok(Found { file, settings })
}

/// The provider's endpoints and the callback listener.
fn flow_settings(s: OAuthSettings) -> anyhow::Result<(OAuthConfig, AuthFlowOptions)> {
    let secret = s.client_secret.map(SecretString::from);
    let mut config = match s.provider {
        Provider::Xero => OAuthConfig::xero(s.client_id, secret, s.scopes),
        Provider::Quickbooks => {
            let mut c = OAuthConfig::quickbooks(s.client_id, secret);
            if !s.scopes.is_empty() {
                c.scopes = s.scopes;
            }
            c
        }
        Provider::Microsoft => OAuthConfig::msgraph(
            s.tenant.as_deref().unwrap_or("common"),
            s.client_id,
            secret,
            s.scopes,
        ),
        Provider::Generic => {
            let (Some(auth), Some(token)) = (&s.auth_url, &s.token_url) else {
                bail!("provider `generic` needs both `auth_url` and `token_url`");
            };
            OAuthConfig::new(s.client_id, secret, auth, token, s.scopes)
        }
    };
    if let Some(u) = s.auth_url {
        config.auth_url = u;
    }
    if let Some(u) = s.token_url {
        config.token_url = u;
    }
    config.extra_auth_params = s.extra_auth_params.into_iter().collect();

    let mut options = AuthFlowOptions::default();
    if let Some(uri) = s.redirect_uri {
        let (listen, path) = parse_loopback(&uri)?;
        options.listen = listen;
        options.callback_path = path;
    }
    if let Some(t) = s.timeout_seconds {
        options.timeout = Duration::from_secs(t);
    }
    Ok((config, options))
}

/// `http://127.0.0.1:PORT/PATH` → listen address and path. Only loopback
/// addresses: the callback carries an authorization code.
fn parse_loopback(uri: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = uri.strip_prefix("http://").ok_or_else(|| {
        anyhow!("redirect_uri `{uri}` must be http://127.0.0.1:PORT/PATH (a loopback callback)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let authority = authority.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| anyhow!("redirect_uri `{uri}`: `{authority}` is not HOST:PORT"))?;
    if !addr.ip().is_loopback() {
        bail!("redirect_uri `{uri}` must point at a loopback address (127.0.0.1 or [::1])");
    }
    Ok((addr, path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            .to_string()
            .contains("loopback"));
    }

    #[test]
    fn generic_provider_needs_both_endpoints() {
        let s: OAuthSettings = toml::from_str(
            "provider = \"generic\"\nclient_id = \"abc\"\nauth_url = \"http://127.0.0.1:1/a\"",
        )
        .unwrap();
        let err = flow_settings(s).unwrap_err().to_string();
        assert!(err.contains("token_url"), "{err}");
    }
}
