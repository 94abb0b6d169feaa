//! Mapping one CSV row to a contact.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::json;
use synchub_core::model::{Address, Contact};

/// The model fields a column can feed (the list `synchub dedupe --map` uses too).
pub const FIELDS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "company",
    "title",
    "address_line1",
    "address_line2",
    "city",
    "postal_code",
    "region",
    "country",
    "birth_date",
    "tags",
];

/// The canonical contact field names, shared with `synchub migrate`
/// mapping files (and the names of `[merge] fields`): what new files
/// should write. `id` is the record id (csv only).
pub const CANONICAL: &[&str] = &[
    "id",
    "given_name",
    "family_name",
    "full_name",
    "emails",
    "phones",
    "company",
    "title",
    "birth_date",
    "tags",
    "address.line1",
    "address.line2",
    "address.city",
    "address.region",
    "address.postal_code",
    "address.country",
];

/// Older spellings still accepted, by both the csv map and migrate mapping
/// files, with the canonical name each stands for. Deprecated: they keep
/// working, and `synchub check` names the canonical spelling.
pub const ALIASES: &[(&str, &str)] = &[
    ("first_name", "given_name"),
    ("last_name", "family_name"),
    ("name", "full_name"),
    ("email", "emails"),
    ("phone", "phones"),
    ("address_line1", "address.line1"),
    ("address.street", "address.line1"),
    ("address_line2", "address.line2"),
    ("city", "address.city"),
    ("region", "address.region"),
    ("address.state", "address.region"),
    ("postal_code", "address.postal_code"),
    ("address.zip", "address.postal_code"),
    ("country", "address.country"),
];

/// The canonical name `name` is a deprecated alias of, if it is one.
pub fn deprecated_alias(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, canonical)| *canonical)
}

/// A model field a column maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ContactField {
    Id,
    FirstName,
    LastName,
    FullName,
    Email,
    Phone,
    Company,
    Title,
    AddressLine1,
    AddressLine2,
    City,
    PostalCode,
    Region,
    Country,
    BirthDate,
    Tags,
}

impl ContactField {
    /// Parses a field name: a [`CANONICAL`] one or an [`ALIASES`] one.
    pub fn parse(s: &str) -> Option<ContactField> {
        use ContactField as F;
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "id" => F::Id,
            "given_name" | "first_name" => F::FirstName,
            "family_name" | "last_name" => F::LastName,
            "full_name" | "name" => F::FullName,
            "emails" | "email" => F::Email,
            "phones" | "phone" => F::Phone,
            "company" => F::Company,
            "title" => F::Title,
            "address.line1" | "address.street" | "address_line1" => F::AddressLine1,
            "address.line2" | "address_line2" => F::AddressLine2,
            "address.city" | "city" => F::City,
            "address.postal_code" | "address.zip" | "postal_code" => F::PostalCode,
            "address.region" | "address.state" | "region" => F::Region,
            "address.country" | "country" => F::Country,
            "birth_date" => F::BirthDate,
            "tags" => F::Tags,
            _ => return None,
        })
    }
}

fn set(slot: &mut Option<String>, v: &str) {
    if !v.is_empty() {
        *slot = Some(v.to_string());
    }
}

/// Maps a row; unmapped columns become custom fields.
pub(crate) fn to_contact(
    headers: &[String],
    row: &csv::StringRecord,
    map: &BTreeMap<String, ContactField>,
    id_column: Option<&str>,
    date_region: Option<&str>,
) -> Result<Contact, String> {
    let mut c = Contact::default();
    // The row's own country decides how its dates read, before the default.
    let row_region = headers
        .iter()
        .zip(row.iter())
        .find(|(h, _)| map.get(*h) == Some(&ContactField::Country))
        .and_then(|(_, v)| synchub_identity::country_code(v.trim()));
    let region = row_region.as_deref().or(date_region);
    let mut addr = Address::default();
    for (h, v) in headers.iter().zip(row.iter()) {
        let v = v.trim();
        let Some(field) = map.get(h) else {
            if Some(h.as_str()) != id_column && !v.is_empty() {
                c.custom.insert(h.clone(), json!(v));
            }
            continue;
        };
        match field {
            ContactField::Id => {}
            ContactField::FirstName => set(&mut c.given_name, v),
            ContactField::LastName => set(&mut c.family_name, v),
            ContactField::FullName => set(&mut c.full_name, v),
            ContactField::Email => c.emails.extend(split_list(v)),
            ContactField::Phone => c.phones.extend(split_list(v)),
            ContactField::Company => set(&mut c.company, v),
            ContactField::Title => set(&mut c.title, v),
            ContactField::AddressLine1 => set(&mut addr.line1, v),
            ContactField::AddressLine2 => set(&mut addr.line2, v),
            ContactField::City => set(&mut addr.city, v),
            ContactField::PostalCode => set(&mut addr.postal_code, v),
            ContactField::Region => set(&mut addr.region, v),
            ContactField::Country => set(&mut addr.country, v),
            ContactField::Tags => c.tags.extend(split_list(v)),
            ContactField::BirthDate if v.is_empty() => {}
            ContactField::BirthDate => {
                let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .or_else(|| synchub_identity::parse_birth_date(v, region))
                    .ok_or_else(|| {
                        format!(
                            "column `{h}`: `{v}` is not a date (YYYY-MM-DD; DD/MM/YYYY or \
                             MM/DD/YYYY by the row's country or `date_region`; 民國 years such \
                             as 74/05/06 or 民國74年5月6日 in TW)"
                        )
                    })?;
                c.birth_date = Some(d);
            }
        }
    }
    if !addr.is_empty() {
        c.addresses.push(addr);
    }
    Ok(c)
}

fn split_list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split([';', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
