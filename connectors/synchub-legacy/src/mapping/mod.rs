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
//! `address2.*` (a second address) and `custom.<key>`.

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
}

/// How one source file or table maps to one CRM object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMap {
    /// File name or glob (`*` wildcard, case-insensitive), or table name.
    pub source: String,
    /// The CRM object the rows become.
    pub object: ObjectKind,
    /// The column holding the legacy id, or `@row` for the data row number.
    pub id: String,
    /// A column whose truthy value marks a soft-deleted row.
    #[serde(default)]
    pub deleted: Option<String>,
    /// The column with the source's last-modified time (also the version).
    #[serde(default)]
    pub updated_at: Option<String>,
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
        Mapping::parse(&text, &path.display().to_string())
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

    /// Lays `user` over `self`: an `[[object]]` with the same `source`
    /// replaces the built-in one, new ones are added; value tables and owners
    /// merge key by key; scalar settings in `user` win.
    pub fn overlay(mut self, user: Mapping) -> Mapping {
        for object in user.objects {
            let key = object.source.to_lowercase();
            match self
                .objects
                .iter_mut()
                .find(|o| o.source.to_lowercase() == key)
            {
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

/// Case-insensitive match of a file name against a pattern with `*` wildcards.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
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
