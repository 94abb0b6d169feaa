//! `synchub auth INSTANCE`: finds the connection in the pipeline files,
//! loads its pipeline exactly as `synchub run` does (so a connection run
//! would refuse is refused here too), gets its sign-in settings from the
//! connector's typed `Config` (the same parse the factory uses), runs the
//! OAuth2 authorization-code flow with PKCE and a loopback callback
//! (through `synchub-http`), and stores the tokens encrypted.
//!
//! The `oauth` table has the same keys for every connector; the endpoints
//! and default scopes are the connector's:
//!
//! ```toml
//! [[connections]]
//! name = "books"
//! kind = "xero"
//! direction = "two-way"
//!
//! [connections.config]
//! tenant_id = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
//!
//! [connections.config.oauth]
//! client_id = "${XERO_CLIENT_ID}"
//! client_secret = "${XERO_CLIENT_SECRET}"
//! scopes = ["offline_access", "accounting.contacts"]
//! redirect_uri = "http://127.0.0.1:8749/callback"   # as registered with the provider
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use synchub_http::{
    authorize_and_store, new_reqwest_client, Deps, SignIn, TokenCipher, TokenVault,
};
use synchub_store::tokens::SqlTokenStore;

use crate::commands::open_store;

/// Where an instance was found.
struct Found {
    file: PathBuf,
    sign_in: SignIn,
}

pub async fn run(db: &str, instance: &str, config_dir: &Path) -> anyhow::Result<ExitCode> {
    let found = find_instance(config_dir, instance)?;
    let shown = found.file.display().to_string();
    let SignIn {
        oauth: config,
        flow: options,
    } = found.sign_in;
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

/// Looks through the pipeline files of `dir` for the connection named
/// `instance`, loads its pipeline as `synchub run` does, and asks its
/// connector how it signs in.
fn find_instance(dir: &Path, instance: &str) -> anyhow::Result<Found> {
    let files = crate::pipeline::toml_files(dir)?;
    let mut oauth_instances = Vec::new();
    let mut hit: Option<PathBuf> = None;
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
        // Only names are read here; the settings are parsed by the connector below.
        for conn in connections {
            let Some(name) = conn.get("name").and_then(toml::Value::as_str) else {
                continue;
            };
            if conn.get("config").and_then(|c| c.get("oauth")).is_some() {
                oauth_instances.push(name.to_string());
            }
            if name == instance {
                if let Some(first) = &hit {
                    bail!(
                        "a connection named `{instance}` is in both {} and {}; \
                         tokens are stored per connection name, so give them different names",
                        first.display(),
                        file.display()
                    );
                }
                hit = Some(file.clone());
            }
        }
    }
    let Some(file) = hit else {
        let known = if oauth_instances.is_empty() {
            "none has an `oauth` table in its config".to_string()
        } else {
            format!(
                "instances that sign in with OAuth2: {}",
                oauth_instances.join(", ")
            )
        };
        bail!(
            "no connection named `{instance}` in the {} pipeline file(s) of {} ({known})",
            files.len(),
            dir.display()
        );
    };
    // The pipeline as `synchub run` reads it: every setting checked and
    // every connector built (no IO), errors naming the file and the key.
    let loaded = crate::pipeline::load(&file)?;
    let shown = file.display();
    let (index, conn) = loaded
        .config
        .connections
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == instance)
        .ok_or_else(|| anyhow!("pipeline file {shown}: no connection named `{instance}`"))?;
    let factory = crate::registry::factories()
        .into_iter()
        .find(|f| f.kind() == conn.kind);
    let key = format!("connections[{index}].config");
    let deps = Deps::new(&conn.name, &loaded.base_dir);
    let sign_in = match factory {
        Some(f) => f.sign_in(&key, &conn.config, &deps).map_err(|e| {
            let text = e.to_string();
            anyhow!(
                "pipeline file {shown}: {}",
                loaded
                    .substituted
                    .scrub(text.trim_start_matches("bad configuration: "))
            )
        })?,
        None => None,
    };
    let Some(sign_in) = sign_in else {
        bail!(
            "pipeline file {shown}: connection `{instance}` (kind `{}`) does not sign in with OAuth2; \
             nothing to authorize",
            conn.kind
        );
    };
    Ok(Found { file, sign_in })
}
