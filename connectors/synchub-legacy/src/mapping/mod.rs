//! The mapping file: which source columns feed which CRM fields, with value
//! tables (stages, statuses), owners and transforms. Columns without a
//! mapping are kept as custom fields under their own name.
//!
//! ```toml
//! default_region = "TW"          # phones without a country code
//! default_currency = "TWD"       # orders without a currency column
//!
//! [[object]]
//! source = "Contact.csv"         # file name or glob (`*contacts*.csv`), or a table
//! object = "contact"             # contact | company | order
//! id = "Id"                      # the legacy id (`@row` = the data row number)
//! deleted = "IsDeleted"          # optional: truthy → emitted as deleted
//! updated_at = "LastModifiedDate"
//! tags = ["salesforce"]
//! [object.columns]
//! FirstName = "given_name"
//! Phone = "phones"
//! "Full Name" = "full_name"      # split into given/family when those are empty
//! StageName = [{ field = "status", values = "stage" }, "custom.stage"]
//! OwnerId = "owner"              # translated through [owners], kept as custom.owner
//!
//! [values.stage]                 # case-insensitive; "*" is the fallback
//! "Closed Won" = "won"
//! "*" = "open"
//!
//! [owners]
//! "005000000000001AAA" = "mei.lin@example.com.tw"
//! ```
//!
//! Field names: contact — `given_name family_name full_name emails phones
//! company title birth_date accepts_marketing opted_out tags owner`;
//! company — `name domain website emails phones tax_id tags owner`; order —
//! `number status financial_status fulfillment_status currency total
//! subtotal placed_at customer.external_id customer.name customer.email
//! owner`; all — `address.{line1,line2,city,region,postal_code,country}`,
//! `address2.*` (a second address) and `custom.<key>`. The csv map's older
//! spellings are deprecated aliases here too (`first_name`, `email`,
//! `phone`, `city`, `region`, `postal_code`, `country`, `address_line1`,
//! `address_line2`, and `name` for a contact's full name): one vocabulary,
//! docs/config.md "One mapping vocabulary".

mod apply;
mod field;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use synchub_core::ObjectKind;

use crate::LegacyError;

pub(crate) use apply::{Compiled, Row, Slot};

/// A parsed mapping file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Region (ISO 3166 alpha-2) for phone numbers without a country code.
    #[serde(default)]
    pub default_region: Option<String>,
    /// ISO 4217 currency for orders without a currency column.
    #[serde(default)]
    pub default_currency: Option<String>,
    /// Undo HTML entity escaping in every value (SuiteCRM stores text escaped).
    #[serde(default)]
    pub html_entities: Option<bool>,
    /// One entry per source file or table.
    #[serde(default, rename = "object")]
    pub objects: Vec<ObjectMap>,
    /// Value tables, e.g. `[values.stage]`, used by `values = "stage"`.
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// Legacy owner (user id or name) → CRM owner.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// In a `--map` file: replace the kind's built-in mapping instead of
    /// extending it.
    #[serde(default)]
    pub replace: Option<bool>,
}

/// One column name or several alternatives (the first present wins).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Names {
    /// One column.
    One(String),
    /// Alternative spellings, in order of preference.
    Many(Vec<String>),
}

impl Names {
    /// The spellings, in order of preference.
    pub fn list(&self) -> Vec<&str> {
        match self {
            Names::One(s) => vec![s.as_str()],
            Names::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// The first spelling (for messages).
    pub fn first(&self) -> &str {
        self.list().first().copied().unwrap_or("")
    }

    /// Whether this is the `@row` pseudo-column.
    pub fn is_row(&self) -> bool {
        self.list() == ["@row"]
    }
}

/// How one source file or table maps to one CRM object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMap {
    /// File name or glob (`*` wildcard, case-insensitive; alternatives
    /// separated by `|`), or table name.
    pub source: String,
    /// The CRM object the rows become.
    pub object: ObjectKind,
    /// The column holding the legacy id (or alternative spellings, the
    /// first present wins), or `@row` for the data row number.
    pub id: Names,
    /// A column whose truthy value marks a soft-deleted row.
    #[serde(default)]
    pub deleted: Option<Names>,
    /// The column with the source's last-modified time (also the version).
    #[serde(default)]
    pub updated_at: Option<Names>,
    /// A header prefix some exports leave out (Pipedrive's `Person - `):
    /// a column `Name` also matches a mapping entry `Person - Name`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// In a `--map` file: replace the built-in entry with the same
    /// `source` instead of extending it.
    #[serde(default)]
    pub replace: Option<bool>,
    /// Columns (and id / deleted / updated_at spellings) that came from a
    /// `--map` file: each must exist in the file it is applied to.
    #[serde(skip)]
    pub user_columns: Vec<String>,
    /// The `--map` file those columns came from.
    #[serde(skip)]
    pub user_file: Option<String>,
    /// Tags added to every record (contacts and companies).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Fixed custom fields added to every record, e.g. `legacy_type = "lead"`.
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
    /// Column → target(s).
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
}

/// The target(s) of one column.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    /// A field name: `"phones"`, `"custom.vip"`.
    Field(String),
    /// A field with options.
    Full(TargetSpec),
    /// Several targets fed from the same column.
    Many(Vec<OneSpec>),
}

/// One target in a list of targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneSpec {
    /// A field name.
    Field(String),
    /// A field with options.
    Full(TargetSpec),
}

/// A field with options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The field name.
    pub field: String,
    /// A value table (`[values.NAME]`) applied first.
    #[serde(default)]
    pub values: Option<String>,
    /// Split the value on `;` into several values (lists and multi-selects).
    #[serde(default)]
    pub split: Option<bool>,
}

impl ColumnSpec {
    pub(crate) fn targets(&self) -> Vec<TargetSpec> {
        let one = |s: &OneSpec| match s {
            OneSpec::Field(f) => TargetSpec {
                field: f.clone(),
                values: None,
                split: None,
            },
            OneSpec::Full(t) => t.clone(),
        };
        match self {
            ColumnSpec::Field(f) => vec![TargetSpec {
                field: f.clone(),
                values: None,
                split: None,
            }],
            ColumnSpec::Full(t) => vec![t.clone()],
            ColumnSpec::Many(list) => list.iter().map(one).collect(),
        }
    }
}

impl Mapping {
    /// Parses mapping TOML; `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Mapping, LegacyError> {
        let mapping: Mapping = toml::from_str(text).map_err(|e| LegacyError::Mapping {
            source_name: name.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        mapping.validate(name)?;
        Ok(mapping)
    }

    /// Reads and parses a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, LegacyError> {
        let text = std::fs::read_to_string(path).map_err(|e| LegacyError::Path {
            path: path.display().to_string(),
            message: format!("{e} (the --map file must be a UTF-8 TOML file)"),
        })?;
        let name = path.display().to_string();
        let mut mapping = Mapping::parse(&text, &name)?;
        for object in &mut mapping.objects {
            let mut columns: Vec<String> = object.columns.keys().cloned().collect();
            if !object.id.is_row() && matches!(object.id, Names::One(_)) {
                columns.push(object.id.first().to_string());
            }
            for names in [&object.deleted, &object.updated_at].into_iter().flatten() {
                if let Names::One(n) = names {
                    columns.push(n.clone());
                }
            }
            object.user_columns = columns;
            object.user_file = Some(name.clone());
        }
        Ok(mapping)
    }

    /// The built-in mapping of a vendor kind.
    pub fn builtin(kind: &str) -> Result<Mapping, LegacyError> {
        let text = match kind {
            "salesforce" => include_str!("../defaults/salesforce.toml"),
            "hubspot" => include_str!("../defaults/hubspot.toml"),
            "zoho" => include_str!("../defaults/zoho.toml"),
            "pipedrive" => include_str!("../defaults/pipedrive.toml"),
            "csv" => include_str!("../defaults/csv.toml"),
            "suitecrm" => include_str!("../defaults/suitecrm.toml"),
            "vtiger" => include_str!("../defaults/vtiger.toml"),
            other => {
                return Err(LegacyError::UnknownKind {
                    kind: other.to_string(),
                })
            }
        };
        Mapping::parse(text, &format!("built-in {kind}"))
    }

    /// Lays `user` over `self`. With `replace = true` at the top, `user`
    /// is the whole mapping. Otherwise an `[[object]]` with the same
    /// `source` extends the built-in one (its columns added or re-targeted,
    /// its id / deleted / updated_at / tags / constants winning) unless it
    /// says `replace = true`; new ones are added; value tables and owners
    /// merge key by key; scalar settings in `user` win.
    pub fn overlay(mut self, user: Mapping) -> Mapping {
        if user.replace == Some(true) {
            return user;
        }
        for object in user.objects {
            let key = object.source.to_lowercase();
            match self
                .objects
                .iter_mut()
                .find(|o| o.source.to_lowercase() == key)
            {
                Some(existing) if object.replace != Some(true) => {
                    let mut merged = object.clone();
                    let mut columns = existing.columns.clone();
                    // A user column re-targets the built-in one however it is spelt.
                    let user_keys: Vec<String> =
                        object.columns.keys().map(|c| header_key(c)).collect();
                    columns.retain(|c, _| !user_keys.contains(&header_key(c)));
                    columns.extend(object.columns);
                    merged.columns = columns;
                    merged.prefix = object.prefix.or_else(|| existing.prefix.clone());
                    if merged.deleted.is_none() {
                        merged.deleted = existing.deleted.clone();
                    }
                    if merged.updated_at.is_none() {
                        merged.updated_at = existing.updated_at.clone();
                    }
                    if merged.tags.is_empty() {
                        merged.tags = existing.tags.clone();
                    }
                    let mut constants = existing.constants.clone();
                    constants.extend(merged.constants);
                    merged.constants = constants;
                    *existing = merged;
                }
                Some(existing) => *existing = object,
                None => self.objects.push(object),
            }
        }
        for (name, table) in user.values {
            self.values.entry(name).or_default().extend(table);
        }
        self.owners.extend(user.owners);
        self.default_region = user.default_region.or(self.default_region);
        self.default_currency = user.default_currency.or(self.default_currency);
        self.html_entities = user.html_entities.or(self.html_entities);
        self
    }

    fn validate(&self, name: &str) -> Result<(), LegacyError> {
        let err = |message: String| LegacyError::Mapping {
            source_name: name.to_string(),
            message,
        };
        for (i, object) in self.objects.iter().enumerate() {
            let at = format!("object[{i}] (source '{}')", object.source);
            if !matches!(
                object.object,
                ObjectKind::Contact | ObjectKind::Company | ObjectKind::Order
            ) {
                return Err(err(format!(
                    "{at}: object must be contact, company or order"
                )));
            }
            for (column, spec) in &object.columns {
                for target in spec.targets() {
                    field::Field::parse(&target.field, object.object)
                        .map_err(|m| err(format!("{at}: columns.\"{column}\": {m}")))?;
                    if let Some(table) = &target.values {
                        if !self.values.contains_key(table) {
                            return Err(err(format!(
                                "{at}: columns.\"{column}\": no [values.{table}] table"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The form a header is compared in: lower-case, without spaces, `_`,
/// `-`, dots, quotes, a BOM or zero-width characters, full-width letters
/// folded (`Record ID`, `RecordId`, `record_id` and `ＲｅｃｏｒｄＩＤ` agree).
pub(crate) fn header_key(column: &str) -> String {
    column
        .chars()
        .map(|c| match c {
            // Full-width ASCII forms (U+FF01..U+FF5E) to ASCII.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
            _ => c,
        })
        .filter(|c| {
            !c.is_whitespace()
                && !matches!(
                    c,
                    '_' | '-' | '.' | '"' | '\'' | '\u{FEFF}' | '\u{200B}' | '\u{3000}'
                )
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edit distance between two short strings (for "did you mean").
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The header closest to `wanted`, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(wanted: &str, headers: &'a [String]) -> Option<&'a str> {
    let key = header_key(wanted);
    headers
        .iter()
        .map(|h| (edit_distance(&key, &header_key(h)), h))
        .filter(|(d, h)| *d <= 2.max(header_key(h).chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, h)| h.as_str())
}

/// Case-insensitive match of a file name against a pattern with `*`
/// wildcards; `|` separates alternative patterns.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    if pattern.contains('|') {
        return pattern.split('|').any(|p| glob_match(p.trim(), name));
    }
    let pattern = pattern.to_lowercase();
    let name = name.to_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_mapping_parses() {
        for kind in crate::KINDS {
            Mapping::builtin(kind).unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    #[test]
    fn bad_field_names_are_reported_with_their_key() {
        let text = "[[object]]\nsource = \"a.csv\"\nobject = \"contact\"\nid = \"Id\"\n\
                    [object.columns]\nAmount = \"total\"\n";
        let e = Mapping::parse(text, "map.toml").expect_err("total is not a contact field");
        let msg = e.to_string();
        assert!(
            msg.contains("map.toml") && msg.contains("Amount") && msg.contains("total"),
            "{msg}"
        );
    }

    #[test]
    fn globs_match_vendor_file_names() {
        assert!(glob_match(
            "*contacts*.csv",
            "hubspot-crm-exports-all-contacts-2024-05-15.csv"
        ));
        assert!(glob_match("Contact.csv", "contact.CSV"));
        assert!(!glob_match("Contact.csv", "OpportunityContactRole.csv"));
        assert!(glob_match("*", "x.csv"));
    }
}
