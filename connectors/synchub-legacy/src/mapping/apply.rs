//! A mapping compiled for one source, and one row mapped to a record.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use synchub_core::{ObjectKind, Rejected, RemoteRecord};

use super::field::{Ctx, Draft, Field};
use super::{did_you_mean, header_key, Mapping, Names, ObjectMap};
use crate::transform;

/// What one source column does.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The column name as the source spells it.
    pub name: String,
    role: Role,
    targets: Vec<Target>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The id column; the rank orders alternative spellings (0 = preferred).
    Id(usize),
    Deleted,
    UpdatedAt,
    Value,
}

#[derive(Debug, Clone)]
struct Target {
    field: Field,
    /// Lower-cased keys.
    values: Option<BTreeMap<String, String>>,
    split: bool,
}

/// One source row: the slots of its columns and their (decoded) values.
pub(crate) struct Row<'a> {
    /// `(slot, value)` per column; empty values are skipped.
    pub cells: Vec<(&'a Slot, &'a str)>,
    /// 1-based data row number (used by `id = "@row"`).
    pub number: u64,
    /// Where the row is, for rejects: `Contact.csv row 17 (line 18)`.
    pub location: String,
}

/// An [`ObjectMap`] compiled against its mapping file.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// The CRM object kind.
    pub kind: ObjectKind,
    id_column: Names,
    by_name: HashMap<String, Slot>,
    /// Columns from a `--map` file, which every file must have.
    user_columns: Vec<String>,
    user_file: Option<String>,
    source: String,
    /// Position of the object in its mapping (earlier wins a tie).
    pub order: usize,
    tags: Vec<String>,
    constants: BTreeMap<String, String>,
    region: Option<phonenumber::country::Id>,
    currency: String,
    html: bool,
    owners: BTreeMap<String, String>,
}

impl Compiled {
    /// Compiles `object`; `region` overrides the mapping's `default_region`.
    pub(crate) fn new(mapping: &Mapping, object: &ObjectMap, region: Option<&str>) -> Compiled {
        let mut by_name = HashMap::new();
        for (column, spec) in &object.columns {
            let targets = spec
                .targets()
                .into_iter()
                .filter_map(|t| {
                    let field = Field::parse(&t.field, object.object).ok()?;
                    let values = t
                        .values
                        .as_ref()
                        .and_then(|name| mapping.values.get(name))
                        .map(|table| {
                            table
                                .iter()
                                .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                                .collect()
                        });
                    let split = t.split.unwrap_or_else(|| field.is_list());
                    Some(Target {
                        field,
                        values,
                        split,
                    })
                })
                .collect();
            let slot = Slot {
                name: column.clone(),
                role: Role::Value,
                targets,
            };
            // Without the export's optional prefix (`Person - Name` → `Name`);
            // a column spelt without it in the mapping wins.
            if let Some(bare) = strip_prefix(column, object.prefix.as_deref()) {
                by_name.entry(bare).or_insert_with(|| slot.clone());
            }
            by_name.insert(key(column), slot);
        }
        let mut roles: Vec<(String, Role)> = Vec::new();
        if !object.id.is_row() {
            for (rank, name) in object.id.list().into_iter().enumerate() {
                roles.push((name.to_string(), Role::Id(rank)));
            }
        }
        for (names, role) in [
            (object.deleted.as_ref(), Role::Deleted),
            (object.updated_at.as_ref(), Role::UpdatedAt),
        ] {
            for name in names.map(Names::list).unwrap_or_default() {
                roles.push((name.to_string(), role));
            }
        }
        for (column, role) in roles {
            let mut keys = vec![key(&column)];
            keys.extend(strip_prefix(&column, object.prefix.as_deref()));
            for k in keys {
                let slot = by_name.entry(k).or_insert_with(|| Slot {
                    name: column.clone(),
                    role,
                    targets: Vec::new(),
                });
                slot.role = role;
            }
        }
        let region = region
            .or(mapping.default_region.as_deref())
            .and_then(transform::parse_region);
        Compiled {
            kind: object.object,
            id_column: object.id.clone(),
            by_name,
            user_columns: object.user_columns.clone(),
            user_file: object.user_file.clone(),
            source: object.source.clone(),
            order: mapping
                .objects
                .iter()
                .position(|o| o.source == object.source)
                .unwrap_or(usize::MAX),
            tags: object.tags.clone(),
            constants: object.constants.clone(),
            region,
            currency: mapping
                .default_currency
                .clone()
                .unwrap_or_else(|| "USD".into()),
            html: mapping.html_entities.unwrap_or(false),
            owners: mapping.owners.clone(),
        }
    }

    /// The slot of a column: its mapping, or a custom field under its own name.
    pub(crate) fn slot(&self, column: &str) -> Slot {
        self.by_name
            .get(&key(column))
            .cloned()
            .unwrap_or_else(|| Slot {
                name: column.to_string(),
                role: Role::Value,
                targets: vec![Target {
                    field: Field::Custom(column.trim().to_string()),
                    values: None,
                    split: false,
                }],
            })
    }

    /// The id column's spellings, when the source has to have one (not `@row`).
    pub(crate) fn id_columns(&self) -> Option<Vec<&str>> {
        (!self.id_column.is_row()).then(|| self.id_column.list())
    }

    /// Whether `headers` hold an id column (always true for `@row`).
    pub(crate) fn has_id(&self, headers: &[String]) -> bool {
        self.id_column.is_row()
            || headers
                .iter()
                .any(|h| matches!(self.slot(h).role, Role::Id(_)))
    }

    /// Whether `headers` hold an id column spelt distinctively enough to
    /// recognise the export by (`Contact ID`, `Record ID`; not a bare `Id`,
    /// which every export has).
    pub(crate) fn has_telling_id(&self, headers: &[String]) -> bool {
        headers
            .iter()
            .any(|h| matches!(self.slot(h).role, Role::Id(_)) && key(h) != "id")
    }

    /// How many of `headers` this mapping knows (to recognise an export
    /// from its columns when its file name says nothing).
    pub(crate) fn score(&self, headers: &[String]) -> usize {
        headers
            .iter()
            .filter(|h| self.by_name.contains_key(&key(h)))
            .count()
    }

    /// Checks that every column a `--map` file names is in `headers`.
    pub(crate) fn check_user_columns(&self, file: &str, headers: &[String]) -> Result<(), String> {
        let have: Vec<String> = headers.iter().map(|h| key(h)).collect();
        for column in &self.user_columns {
            if have.contains(&key(column)) {
                continue;
            }
            let hint = match did_you_mean(column, headers) {
                Some(close) => format!(" (did you mean '{close}'?)"),
                None => format!(" (its columns: {})", headers.join(", ")),
            };
            return Err(format!(
                "{}: [[object]] source '{}': column '{column}' is not in {file}{hint}",
                self.user_file.as_deref().unwrap_or("--map file"),
                self.source
            ));
        }
        Ok(())
    }

    /// Maps one row.
    pub(crate) fn map_row(&self, row: &Row<'_>) -> Result<RemoteRecord, Box<Rejected>> {
        let ctx = Ctx {
            region: self.region,
            owners: &self.owners,
        };
        let mut raw = Map::new();
        let mut draft = Draft::new(self.kind);
        let mut id = self.id_column.is_row().then(|| row.number.to_string());
        let mut id_rank = usize::MAX;
        let mut deleted = false;
        let mut updated = None;
        let mut problem = None;
        for (slot, value) in &row.cells {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            raw.insert(slot.name.clone(), Value::String(value.to_string()));
            let unescaped = if self.html {
                transform::unescape_html(value)
            } else {
                value.into()
            };
            let value = unescaped.as_ref();
            match slot.role {
                Role::Id(rank) => {
                    if rank < id_rank {
                        id = Some(value.to_string());
                        id_rank = rank;
                    }
                }
                Role::Deleted => match transform::parse_bool(value) {
                    Some(flag) => deleted |= flag,
                    None => {
                        problem.get_or_insert(format!(
                            "'{value}' in column '{}' is not a yes/no value",
                            slot.name
                        ));
                    }
                },
                Role::UpdatedAt => match transform::parse_datetime(value) {
                    Some(t) => updated = Some((t, value.to_string())),
                    None => draft.add_custom(&slot.name, value),
                },
                Role::Value => {}
            }
            for target in &slot.targets {
                let mapped = match &target.values {
                    Some(table) => table
                        .get(&value.to_lowercase())
                        .or_else(|| table.get("*"))
                        .map_or(value, String::as_str),
                    None => value,
                };
                let parts: Vec<&str> = if target.split {
                    mapped
                        .split([';', '；'])
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .collect()
                } else {
                    vec![mapped]
                };
                for part in parts {
                    if let Err(reason) = draft.set(&target.field, part, &slot.name, &ctx) {
                        problem.get_or_insert(reason);
                    }
                }
            }
        }
        let raw = Value::Object(raw);
        let reject = |external_id: Option<String>, reason: String| {
            Box::new(Rejected {
                external_id,
                location: Some(row.location.clone()),
                reason,
                raw: raw.clone(),
            })
        };
        let Some(id) = id else {
            return Err(reject(
                None,
                format!("empty id column '{}'", self.id_column.first()),
            ));
        };
        let (updated_at, version) = updated.map_or((None, None), |(t, v)| (Some(t), Some(v)));
        if deleted {
            return Ok(RemoteRecord {
                external_id: id,
                version,
                updated_at,
                deleted: true,
                record: None,
                raw,
            });
        }
        if let Some(reason) = problem {
            return Err(reject(Some(id), reason));
        }
        for (k, v) in &self.constants {
            draft.add_custom(k, v);
        }
        match draft.finish(&self.tags, &self.currency, &ctx) {
            Ok(record) => Ok(RemoteRecord {
                external_id: id,
                version,
                updated_at,
                deleted: false,
                record: Some(record),
                raw,
            }),
            Err(reason) => Err(reject(Some(id), reason)),
        }
    }
}

fn key(column: &str) -> String {
    header_key(column)
}

/// The key of `column` without the export's optional prefix, if it has it.
fn strip_prefix(column: &str, prefix: Option<&str>) -> Option<String> {
    let prefix = header_key(prefix?);
    let k = header_key(column);
    k.strip_prefix(&prefix)
        .filter(|rest| !rest.is_empty())
        .map(str::to_string)
}
