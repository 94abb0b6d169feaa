//! The pipeline file: which connections take part, in which direction, with
//! which merge and delete policies. Pure data plus validation; the binary
//! reads the file and builds the connectors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::ObjectKind;

/// A pipeline file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Format version; only 1 exists.
    pub version: u32,
    /// Pipeline name, used in reports and the run log.
    pub name: String,
    /// Default phone region (ISO 3166 alpha-2) for connections without one.
    #[serde(default)]
    pub region: Option<String>,
    /// The systems taking part.
    #[serde(rename = "connections")]
    pub connections: Vec<ConnectionConfig>,
    /// Same-field conflict rules.
    #[serde(default)]
    pub merge: MergeConfig,
    /// What a delete in a source does, per object kind.
    #[serde(default)]
    pub deletes: BTreeMap<ObjectKind, DeletePolicy>,
    /// Re-run interval for `synchub run` without `--once` and for the daemon.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
}

/// Which way records flow between a connection and the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Source to CRM only.
    Pull,
    /// CRM to target only.
    Push,
    /// Both ways.
    TwoWay,
}

impl Direction {
    /// Records are read from this connection.
    pub fn pulls(self) -> bool {
        matches!(self, Direction::Pull | Direction::TwoWay)
    }
    /// CRM changes are written to this connection.
    pub fn pushes(self) -> bool {
        matches!(self, Direction::Push | Direction::TwoWay)
    }
}

/// One connector instance in a pipeline.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Instance name, unique in the pipeline (and stable: the identity map
    /// and cursors are keyed by it).
    pub name: String,
    /// Connector kind (`csv`, `shopify`, ...).
    pub kind: String,
    /// Flow direction.
    pub direction: Direction,
    /// Objects to sync; empty means every object the connector supports.
    #[serde(default)]
    pub objects: Vec<ObjectKind>,
    /// Default phone region for this source.
    #[serde(default)]
    pub region: Option<String>,
    /// Connector-specific settings.
    #[serde(default)]
    pub config: serde_json::Value,
}

/// Merge settings as written in the file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// Policy for fields not listed.
    #[serde(default)]
    pub default: Option<FieldPolicy>,
    /// Per-field policies.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldPolicy>,
    /// Change times closer than this many seconds count as simultaneous.
    #[serde(default)]
    pub clock_skew_seconds: Option<i64>,
}

impl MergeConfig {
    /// The merge policy this config describes.
    pub fn policy(&self) -> MergePolicy {
        let base = MergePolicy::default();
        MergePolicy {
            default: self.default.clone().unwrap_or(base.default),
            fields: self.fields.clone(),
            clock_skew: self
                .clock_skew_seconds
                .map(chrono::Duration::seconds)
                .unwrap_or(base.clock_skew),
        }
    }
}

/// What a delete in a source does to the CRM record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeletePolicy {
    /// Tombstone the CRM record and delete it in every other target.
    Delete,
    /// Tombstone the CRM record; other systems keep theirs.
    #[default]
    Archive,
    /// Note the remote delete; the CRM record stays live.
    Ignore,
}

/// How often a pipeline re-runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Seconds between runs.
    pub every_seconds: u64,
    /// Seconds between complete reads (the daemon): every record is read
    /// again and linked records a source no longer returns are deleted per
    /// policy — how deletes of sources without delete events are found.
    #[serde(default)]
    pub full_refresh_every_seconds: Option<u64>,
}

/// A problem found by [`PipelineConfig::validate`]: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `connections[1].name`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl PipelineConfig {
    /// Checks everything that can be checked without IO; returns every
    /// problem at once.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut add = |key: String, message: String| problems.push(ConfigProblem { key, message });
        if self.version != 1 {
            add(
                "version".into(),
                format!("unsupported version {}, expected 1", self.version),
            );
        }
        if self.name.trim().is_empty() {
            add("name".into(), "must not be empty".into());
        }
        if self.connections.is_empty() {
            add(
                "connections".into(),
                "at least one [[connections]] table is needed".into(),
            );
        }
        for (i, c) in self.connections.iter().enumerate() {
            if c.name.trim().is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
            {
                add(
                    format!("connections[{i}].name"),
                    format!("`{}` must be non-empty letters, digits, `_` or `-`", c.name),
                );
            }
            if c.name == synchub_core::merge::CRM_SOURCE {
                add(
                    format!("connections[{i}].name"),
                    "`crm` is reserved for the CRM itself".into(),
                );
            }
            if self.connections[..i].iter().any(|o| o.name == c.name) {
                add(
                    format!("connections[{i}].name"),
                    format!("`{}` is used twice", c.name),
                );
            }
            if let Some(r) = &c.region {
                if r.len() != 2 || !r.chars().all(|ch| ch.is_ascii_alphabetic()) {
                    add(
                        format!("connections[{i}].region"),
                        format!("`{r}` is not a two-letter country code such as TW, HK or CN"),
                    );
                }
            }
        }
        if let Some(r) = &self.region {
            if r.len() != 2 || !r.chars().all(|ch| ch.is_ascii_alphabetic()) {
                add(
                    "region".into(),
                    format!("`{r}` is not a two-letter country code"),
                );
            }
        }
        if let Some(s) = &self.schedule {
            if s.every_seconds == 0 {
                add("schedule.every_seconds".into(), "must be at least 1".into());
            }
        }
        problems
    }
}
