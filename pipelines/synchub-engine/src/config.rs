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
    /// The merge policy this config describes. A custom field is written
    /// `custom.<key>` in the file; custom fields merge key by key under
    /// their bare key.
    pub fn policy(&self) -> MergePolicy {
        let base = MergePolicy::default();
        MergePolicy {
            default: self.default.clone().unwrap_or(base.default),
            fields: self
                .fields
                .iter()
                .map(|(k, v)| {
                    let key = k.strip_prefix(CUSTOM_PREFIX).unwrap_or(k);
                    (key.to_string(), v.clone())
                })
                .collect(),
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
        for field in self.merge.fields.keys() {
            if let Some(message) = check_merge_field(field) {
                add(format!("merge.fields.{field}"), message);
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

/// How a custom field is named in `[merge] fields`.
pub const CUSTOM_PREFIX: &str = "custom.";

/// The fields of the CRM model a merge rule can name: every top-level field
/// of every object kind, read from the model types themselves.
pub fn model_fields() -> Vec<&'static str> {
    use synchub_core::model::{Activity, Company, Contact, Invoice, Order};
    let mut all: Vec<&'static str> = [
        fields_of::<Contact>(),
        fields_of::<Company>(),
        fields_of::<Order>(),
        fields_of::<Invoice>(),
        fields_of::<Activity>(),
    ]
    .concat();
    all.sort_unstable();
    all.dedup();
    all
}

/// What is wrong with a `[merge] fields` key, if anything.
fn check_merge_field(field: &str) -> Option<String> {
    if let Some(custom) = field.strip_prefix(CUSTOM_PREFIX) {
        return custom
            .trim()
            .is_empty()
            .then(|| "name the custom field after `custom.`".to_string());
    }
    if field == "custom" {
        return Some("rules apply to one custom field at a time: write `custom.<key>`".into());
    }
    let fields: Vec<&str> = model_fields()
        .into_iter()
        .filter(|f| *f != "custom")
        .collect();
    if fields.contains(&field) {
        return None;
    }
    let hint = match did_you_mean(field, &fields) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => format!(
            "; the fields are {} (a custom field is written `custom.{field}`)",
            fields.join(", ")
        ),
    };
    Some(format!(
        "`{field}` is not a field of the CRM model, so this rule would never apply{hint}"
    ))
}

/// The candidate closest to `word` when it is a plausible misspelling
/// (edit distance at most a third of the word, and at least 1).
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbours (`compnay` → `company` is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The field names of a struct, read from its `Deserialize` impl (serde
/// passes them to `deserialize_struct`), so the list cannot drift from the model.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("fields read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_fields_come_from_the_model() {
        let f = model_fields();
        for name in [
            "company",
            "emails",
            "given_name",
            "total",
            "subject",
            "custom",
        ] {
            assert!(f.contains(&name), "{name} missing from {f:?}");
        }
    }

    #[test]
    fn misspelled_merge_fields_get_a_suggestion() {
        assert_eq!(did_you_mean("compnay", &model_fields()), Some("company"));
        assert_eq!(did_you_mean("emial", &["email", "phone"]), Some("email"));
        assert_eq!(did_you_mean("zzzzzz", &model_fields()), None);
        assert!(check_merge_field("company").is_none());
        assert!(check_merge_field("custom.vip").is_none());
        let msg = check_merge_field("compnay").unwrap_or_default();
        assert!(msg.contains("did you mean `company`"), "{msg}");
        assert!(check_merge_field("vip")
            .unwrap_or_default()
            .contains("custom.vip"));
    }
}
