//! `synchub check`: everything that can be known about a pipeline before it
//! is trusted, in seconds. Every file and key is validated (all problems at
//! once, `${VAR}`s resolved), then every connection's `check()` runs with a
//! short deadline — DNS, TLS, credentials, the shop or realm itself — and
//! prints one line per connection with what is wrong and how to fix it.
//! For Shopify the token's granted access scopes are compared with those the
//! connection's objects and direction need, and the API version the shop
//! serves with the configured one ([`crate::scopes`]).
//! `--register-webhooks --public-url URL` then subscribes each shop
//! connection that passed to the topics the daemon syncs
//! ([`crate::webhook_register`]); `--public-url` alone says which topics
//! are not subscribed yet.
//!
//! Exit codes: 0 every connection answered; 1 a connection failed its
//! check (or its webhooks could not be registered); 2 a pipeline file is
//! invalid (nothing was contacted for it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use synchub_core::{ConnectorError, ErrorClass};
use synchub_engine::config::ConnectionConfig;
use synchub_engine::Connection;

use crate::output::{emit, emit_json, Format};
use crate::pipeline;

/// The outcome of one connection's check.
#[derive(Debug, Clone)]
pub struct Checked {
    pub file: PathBuf,
    pub connection: String,
    pub kind: String,
    pub ok: bool,
    pub problem: Option<String>,
    pub fix: Option<String>,
    /// Worth saying about a connection that passed.
    pub note: Option<String>,
    pub millis: u128,
    /// What `--register-webhooks` did for it.
    pub webhooks: Option<Result<crate::webhook_register::Registration, String>>,
}

/// The pipeline files named by `path`: the file itself, or every `*.toml`
/// of a folder.
fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_dir() {
        pipeline::toml_files(path)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

pub async fn run(
    db: &str,
    path: &Path,
    timeout: Duration,
    format: Format,
    webhooks: Option<(&str, bool)>,
) -> anyhow::Result<ExitCode> {
    let files = files(path)?;
    if files.is_empty() {
        anyhow::bail!("no pipeline files (*.toml) in {}", path.display());
    }
    // Tokens of OAuth connections live in the store: use it when it exists,
    // never create one just to check.
    let tokens = existing_store(db)
        .await
        .map(|store| crate::commands::token_vault(&store));
    let mut invalid = Vec::new();
    let mut checked = Vec::new();
    for file in &files {
        let loaded = match pipeline::load(file).and_then(|l| {
            let c = l.connections_with(tokens.clone())?;
            Ok((l, c))
        }) {
            Ok(x) => x,
            Err(e) => {
                invalid.push((file.clone(), format!("{e:#}")));
                continue;
            }
        };
        let (loaded, connections) = loaded;
        let checks = connections
            .iter()
            .zip(loaded.config.connections.iter())
            .map(|(conn, cfg)| check_one(file, conn, cfg, timeout));
        let mut results = futures::future::join_all(checks).await;
        if let Some((public_url, register)) = webhooks {
            for (c, cfg) in results.iter_mut().zip(loaded.config.connections.iter()) {
                if c.ok && crate::webhook_register::supports(&cfg.kind) {
                    let done = tokio::time::timeout(
                        timeout * 4,
                        crate::webhook_register::register(cfg, public_url, !register),
                    )
                    .await;
                    c.webhooks = Some(match done {
                        Ok(Ok(r)) => Ok(r),
                        Ok(Err(e)) => Err(loaded.substituted.scrub(&format!("{e:#}"))),
                        Err(_) => Err(format!("no answer within {} s", (timeout * 4).as_secs())),
                    });
                }
            }
        }
        checked.extend(results);
    }
    let failed = checked
        .iter()
        .filter(|c| !c.ok || matches!(c.webhooks, Some(Err(_))))
        .count();
    match format {
        Format::Json => emit_json(&json!({
            "invalid_files": invalid.iter().map(|(f, e)| json!({"file": f.display().to_string(), "error": e})).collect::<Vec<_>>(),
            "connections": checked.iter().map(|c| json!({
                "file": c.file.display().to_string(),
                "connection": c.connection,
                "kind": c.kind,
                "ok": c.ok,
                "problem": c.problem,
                "fix": c.fix,
                "note": c.note,
                "millis": c.millis,
                "webhooks": c.webhooks.as_ref().map(|w| match w {
                    Ok(r) if r.dry => json!({"address": r.address, "missing": r.registered, "existing": r.existing}),
                    Ok(r) => json!({"address": r.address, "registered": r.registered, "existing": r.existing}),
                    Err(e) => json!({"error": e}),
                }),
            })).collect::<Vec<_>>(),
        }))?,
        Format::Table => {
            let mut out = String::new();
            for (file, e) in &invalid {
                out.push_str(&format!("INVALID  {}\n         {e}\n", file.display()));
            }
            let mut last: Option<&Path> = None;
            for c in &checked {
                if last != Some(c.file.as_path()) {
                    out.push_str(&format!("{}\n", c.file.display()));
                    last = Some(c.file.as_path());
                }
                if c.ok {
                    out.push_str(&format!(
                        "  ok      {} ({}) answered in {} ms\n",
                        c.connection, c.kind, c.millis
                    ));
                    if let Some(note) = &c.note {
                        out.push_str(&format!("          note: {note}\n"));
                    }
                } else {
                    out.push_str(&format!(
                        "  FAILED  {} ({}): {}\n",
                        c.connection,
                        c.kind,
                        c.problem.as_deref().unwrap_or("failed")
                    ));
                    if let Some(fix) = &c.fix {
                        out.push_str(&format!("          fix: {fix}\n"));
                    }
                }
                out.push_str(&webhook_lines(c));
            }
            out.push_str(&format!(
                "{} file(s), {} connection(s): {} ok, {} failed, {} invalid file(s)\n",
                files.len(),
                checked.len(),
                checked.len() - failed,
                failed,
                invalid.len()
            ));
            emit(&out)?;
        }
    }
    Ok(if !invalid.is_empty() {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn existing_store(db: &str) -> Option<synchub_store::Store> {
    if let Some(path) = db.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || !Path::new(path).exists() {
            return None;
        }
    }
    tokio::time::timeout(Duration::from_secs(3), synchub_store::Store::connect(db))
        .await
        .ok()?
        .ok()
}

/// The lines `--register-webhooks` adds under a connection.
fn webhook_lines(c: &Checked) -> String {
    match &c.webhooks {
        None => String::new(),
        Some(Err(e)) => format!("  FAILED  {} webhooks: {e}\n", c.connection),
        Some(Ok(r)) if r.dry && r.registered.is_empty() => format!(
            "  webhooks {}: all {} topic(s) registered at {}\n",
            c.connection,
            r.existing.len(),
            r.address
        ),
        Some(Ok(r)) if r.dry => format!(
            "  webhooks {}: {} topic(s) not registered at {}: {}; `--register-webhooks` adds them\n",
            c.connection,
            r.registered.len(),
            r.address,
            r.registered.join(", ")
        ),
        Some(Ok(r)) if r.registered.is_empty() => format!(
            "  webhooks {}: nothing new; {} topic(s) already registered at {}\n",
            c.connection,
            r.existing.len(),
            r.address
        ),
        Some(Ok(r)) => format!(
            "  webhooks {}: registered {} at {}{}\n",
            c.connection,
            r.registered.join(", "),
            r.address,
            if r.existing.is_empty() {
                String::new()
            } else {
                format!(" ({} already there)", r.existing.len())
            }
        ),
    }
}

/// A csv `map` written with the older field spellings: which canonical
/// name each stands for (docs/config.md, "One mapping vocabulary").
fn deprecated_map_names(cfg: &ConnectionConfig) -> Option<String> {
    let map = cfg.config.get("map")?.as_object()?;
    let notes: Vec<String> = map
        .iter()
        .filter_map(|(column, field)| {
            let field = field.as_str()?;
            let canonical = synchub_csv::deprecated_alias(field)?;
            Some(format!(
                "map \"{column}\": `{field}` is a deprecated alias of `{canonical}`"
            ))
        })
        .collect();
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// Why a connection failed its check.
enum Failure {
    /// The connector's own `check()`.
    Connector(ConnectorError),
    /// The credentials lack a permission the connection needs.
    Access { problem: String, fix: String },
}

/// Checks beyond the connector's own: a Shopify token's scopes. `Ok` may
/// carry a note.
async fn access(cfg: &ConnectionConfig) -> Result<Option<String>, Failure> {
    if cfg.kind == "csv" {
        return Ok(deprecated_map_names(cfg));
    }
    if cfg.kind != "shopify" {
        return Ok(None);
    }
    let shop: synchub_shopify::ShopifyConfig = serde_json::from_value(cfg.config.clone())
        .map_err(|e| Failure::Connector(ConnectorError::Config(e.to_string())))?;
    let granted = crate::scopes::shopify_granted(&shop)
        .await
        .map_err(|e| Failure::Access {
            problem: format!("{e:#}"),
            fix: "the shop answered the check but not the access-scope question: check \
                  `api_version` and any proxy in front of the shop"
                .into(),
        })?;
    let report = crate::scopes::compare(cfg, &granted);
    if report.missing.is_empty() {
        let served = crate::scopes::shopify_served_version(&shop)
            .await
            .map_err(|e| Failure::Connector(ConnectorError::Config(format!("{e:#}"))))?;
        if let Some((problem, fix)) =
            crate::scopes::version_problem(&shop.api_version, served.as_deref())
        {
            return Err(Failure::Access { problem, fix });
        }
        return Ok(report.note);
    }
    let (problem, fix) = crate::scopes::missing_line(&report.missing);
    Err(Failure::Access { problem, fix })
}

async fn check_one(
    file: &Path,
    conn: &Connection,
    cfg: &ConnectionConfig,
    timeout: Duration,
) -> Checked {
    let kind = cfg.kind.as_str();
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, async {
        conn.connector.check().await.map_err(Failure::Connector)?;
        access(cfg).await
    })
    .await;
    let millis = started.elapsed().as_millis();
    let mut note = None;
    let (ok, problem, fix) = match result {
        Ok(Ok(n)) => {
            note = n;
            (true, None, None)
        }
        Ok(Err(Failure::Access { problem, fix })) => (false, Some(problem), Some(fix)),
        Ok(Err(Failure::Connector(e))) => {
            let fix = match e.class() {
                ErrorClass::Reauth => format!(
                    "the credentials were refused: renew the token in the connection's settings, or run `synchub auth {}` for OAuth connections",
                    conn.name
                ),
                ErrorClass::Config => "correct the connection's settings named above".to_string(),
                ErrorClass::Retry => "the server is reachable but busy or down: try again later, or check its status page".to_string(),
                ErrorClass::Resync | ErrorClass::Fatal => "see the error above".to_string(),
            };
            (false, Some(e.to_string()), Some(fix))
        }
        Err(_) => (
            false,
            Some(format!("no answer within {} s", timeout.as_secs())),
            Some("check the host, port and firewall; a busy server may need a longer --timeout-seconds".into()),
        ),
    };
    Checked {
        file: file.to_path_buf(),
        connection: conn.name.clone(),
        kind: kind.to_string(),
        ok,
        problem,
        fix,
        note,
        millis,
        webhooks: None,
    }
}
