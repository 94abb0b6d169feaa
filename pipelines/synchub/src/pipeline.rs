//! Reading a pipeline file: TOML, `${ENV_VAR}` references, then strict
//! deserialization and validation. Every problem names the file and the key.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use synchub_engine::PipelineConfig;

/// A loaded pipeline and the folder relative paths resolve against.
pub struct LoadedPipeline {
    pub config: PipelineConfig,
    pub base_dir: PathBuf,
}

/// Loads and validates a pipeline file.
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
    substitute_env(&mut value, &mut Vec::new())
        .map_err(|e| anyhow!("pipeline file {shown}: {e}"))?;
    let config: PipelineConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.inner().to_string();
        let first = inner.lines().next().unwrap_or_default();
        anyhow!("pipeline file {shown}: key `{key}`: {first}")
    })?;
    let problems = config.validate();
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("key `{}`: {}", p.key, p.message))
            .collect();
        bail!("pipeline file {shown}: {}", lines.join("; "));
    }
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedPipeline { config, base_dir })
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

/// Replaces `${NAME}` in string values with the environment variable.
pub(crate) fn substitute_env(v: &mut toml::Value, path: &mut Vec<String>) -> Result<(), String> {
    match v {
        toml::Value::String(s) if s.contains("${") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("key `{}`: unclosed `${{`", path.join(".")))?;
                let name = &after[..end];
                let value = std::env::var(name).map_err(|_| {
                    format!(
                        "key `{}`: environment variable {name} is not set (export it or write the value)",
                        path.join(".")
                    )
                })?;
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Table(t) => {
            for (k, child) in t.iter_mut() {
                path.push(k.clone());
                substitute_env(child, path)?;
                path.pop();
            }
        }
        toml::Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute_env(child, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}
