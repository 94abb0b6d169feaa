//! Reading a pipeline file: TOML, `${ENV_VAR}` references, then strict
//! deserialization and validation, then the connectors are built (no IO) —
//! all before any store is opened. Every problem names the file and the key,
//! and no value that came from the environment is ever printed.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use synchub_core::ObjectKind;
use synchub_engine::config::ConnectionConfig;
use synchub_engine::{Connection, PipelineConfig};

use crate::registry;

/// A loaded pipeline and the folder relative paths resolve against.
pub struct LoadedPipeline {
    pub config: PipelineConfig,
    pub base_dir: PathBuf,
    /// The pipeline file, for errors found after loading.
    pub path: PathBuf,
    /// The values `${VAR}` references were replaced with.
    pub substituted: Substitutions,
}

/// The values that came from `${VAR}` references. They may be secrets: an
/// error that would quote one quotes the reference instead.
#[derive(Debug, Clone, Default)]
pub struct Substitutions(Vec<Substituted>);

#[derive(Debug, Clone)]
struct Substituted {
    /// The dotted key, e.g. `connections.0.config.webhook_secrets`.
    key: String,
    /// The text as written, e.g. `${SHOPIFY_WEBHOOK_SECRET}`.
    template: String,
    /// What it became.
    value: String,
}

/// Values at least this long are replaced wherever they appear in an error;
/// shorter ones only where they are quoted.
const BARE_SCRUB_LEN: usize = 4;

impl Substitutions {
    /// `text` with every substituted value replaced by the reference it came from.
    pub fn scrub(&self, text: &str) -> String {
        let mut subs: Vec<&Substituted> = self.0.iter().filter(|s| !s.value.is_empty()).collect();
        subs.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
        let mut out = text.to_string();
        for s in subs {
            for (open, close) in [("\"", "\""), ("`", "`"), ("'", "'")] {
                let quoted = format!("{open}{}{close}", s.value);
                if out.contains(&quoted) {
                    out = out.replace(&quoted, &format!("{open}{}{close}", s.template));
                }
            }
            if s.value.len() >= BARE_SCRUB_LEN && out.contains(&s.value) {
                out = out.replace(&s.value, &s.template);
            }
        }
        out
    }

    /// A type error at a key filled from the environment says so.
    fn hint(&self, key: &str, message: &str) -> String {
        let Some(s) = self.0.iter().find(|s| dotted(&s.key) == dotted(key)) else {
            return String::new();
        };
        if message.contains("invalid type: string") {
            format!(
                " (`{}` is always read as a string; check that it belongs at this key)",
                s.template
            )
        } else {
            String::new()
        }
    }
}

/// `connections[0].config` and `connections.0.config` compare equal.
fn dotted(key: &str) -> String {
    key.replace('[', ".").replace(']', "")
}

/// Loads and validates a pipeline file and builds its connectors (no IO),
/// reporting every problem at once.
pub fn load(path: &Path) -> anyhow::Result<LoadedPipeline> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read pipeline file {shown}: {e}"))?;
    let mut value: toml::Value = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "pipeline file {shown} is not valid TOML: {}",
            e.to_string().replace('\n', " ")
        )
    })?;
    let substituted = substitute_env(&mut value, &mut Vec::new())
        .map_err(|e| anyhow!("pipeline file {shown}: {e}"))?;
    let config: PipelineConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.inner().to_string();
        let first = inner.lines().next().unwrap_or_default();
        let hint = substituted.hint(&key, first);
        anyhow!(
            "pipeline file {shown}: key `{key}`: {}{hint}",
            substituted.scrub(first)
        )
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut problems: Vec<String> = config
        .validate()
        .iter()
        .map(|p| format!("key `{}`: {}", p.key, p.message))
        .collect();
    if problems.is_empty() {
        for (i, c) in config.connections.iter().enumerate() {
            if let Err(e) =
                build_connection(i, c, &config, &synchub_http::Deps::new(&c.name, &base_dir))
            {
                problems.push(e.to_string());
            }
        }
    }
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| substituted.scrub(p)).collect();
        bail!("pipeline file {shown}: {}", lines.join("; "));
    }
    Ok(LoadedPipeline {
        config,
        base_dir,
        path: path.to_path_buf(),
        substituted,
    })
}

impl LoadedPipeline {
    /// Builds the connections (no IO); errors name the file and the key.
    pub fn connections(&self) -> anyhow::Result<Vec<Connection>> {
        self.connections_with(None)
    }

    /// Builds the connections with the token vault of an opened store, for
    /// connectors that sign in with OAuth.
    pub fn connections_with(
        &self,
        tokens: Option<synchub_http::TokenVault>,
    ) -> anyhow::Result<Vec<Connection>> {
        self.config
            .connections
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut deps = synchub_http::Deps::new(&c.name, &self.base_dir);
                deps.tokens = tokens.clone();
                build_connection(i, c, &self.config, &deps).map_err(|e| {
                    anyhow!(
                        "pipeline file {}: {}",
                        self.path.display(),
                        self.substituted.scrub(&e.to_string())
                    )
                })
            })
            .collect()
    }
}

/// Builds one `[[connections]]` entry and narrows its objects.
fn build_connection(
    i: usize,
    c: &ConnectionConfig,
    cfg: &PipelineConfig,
    deps: &synchub_http::Deps,
) -> anyhow::Result<Connection> {
    let connector = registry::build_with(i, c, deps)?;
    let specs = connector.objects();
    let objects: Vec<ObjectKind> = if c.objects.is_empty() {
        specs.iter().map(|s| s.kind).collect()
    } else {
        for o in &c.objects {
            if !specs.iter().any(|s| s.kind == *o) {
                bail!(
                    "key `connections[{i}].objects`: connector `{}` does not support {o} (it has: {})",
                    c.kind,
                    specs.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        c.objects.clone()
    };
    // A direction the connector cannot serve would do nothing and exit 0.
    let chosen: Vec<_> = specs.iter().filter(|s| objects.contains(&s.kind)).collect();
    if c.direction.pushes() && !chosen.iter().any(|s| s.can_write) {
        bail!(
            "key `connections[{i}].direction`: connector `{}` cannot write {}, so `{}` cannot be served; use direction = \"pull\"",
            c.kind,
            objects.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", "),
            direction_name(c.direction)
        );
    }
    if c.direction.pulls() && !chosen.iter().any(|s| s.can_read) {
        bail!(
            "key `connections[{i}].direction`: connector `{}` cannot read {}; use direction = \"push\"",
            c.kind,
            objects.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(Connection {
        name: c.name.clone(),
        connector,
        direction: c.direction,
        objects,
        region: c.region.clone().or_else(|| cfg.region.clone()),
    })
}

fn direction_name(d: synchub_engine::Direction) -> &'static str {
    match d {
        synchub_engine::Direction::Pull => "pull",
        synchub_engine::Direction::Push => "push",
        synchub_engine::Direction::TwoWay => "two-way",
    }
}

/// The pipeline files (`*.toml`) of a config folder, sorted.
pub(crate) fn toml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        anyhow!(
            "cannot read the config folder {}: {e} (pass --config-dir DIR)",
            dir.display()
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Replaces `${NAME}` in string values with the environment variable;
/// returns what was replaced, so that errors can hide it.
pub(crate) fn substitute_env(
    v: &mut toml::Value,
    path: &mut Vec<String>,
) -> Result<Substitutions, String> {
    let mut out = Substitutions::default();
    let mut missing = Vec::new();
    substitute_into(v, path, &mut out, &mut missing)?;
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    Ok(out)
}

fn substitute_into(
    v: &mut toml::Value,
    path: &mut Vec<String>,
    subs: &mut Substitutions,
    missing: &mut Vec<String>,
) -> Result<(), String> {
    match v {
        toml::Value::String(s) if s.contains("${") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            let mut complete = true;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("key `{}`: unclosed `${{`", path.join(".")))?;
                let name = &after[..end];
                match std::env::var(name) {
                    Ok(value) => out.push_str(&value),
                    Err(_) => {
                        complete = false;
                        missing.push(format!(
                            "key `{}`: environment variable {name} is not set (export it or write the value)",
                            path.join(".")
                        ));
                    }
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            if complete {
                subs.0.push(Substituted {
                    key: path.join("."),
                    template: s.clone(),
                    value: out.clone(),
                });
                *s = out;
            }
        }
        toml::Value::Table(t) => {
            for (k, child) in t.iter_mut() {
                path.push(k.clone());
                substitute_into(child, path, subs, missing)?;
                path.pop();
            }
        }
        toml::Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute_into(child, path, subs, missing)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_environment_values_with_their_reference() {
        let subs = Substitutions(vec![Substituted {
            key: "connections.0.config.webhook_secrets".into(),
            template: "${HOOK}".into(),
            value: "whsec_abcdef".into(),
        }]);
        let out = subs.scrub("invalid type: string \"whsec_abcdef\", expected a sequence");
        assert_eq!(out, "invalid type: string \"${HOOK}\", expected a sequence");
        assert!(subs
            .hint("connections[0].config.webhook_secrets", &out)
            .contains("${HOOK}"));
    }
}
