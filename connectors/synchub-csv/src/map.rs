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
    /// Parses a field name.
    pub fn parse(s: &str) -> Option<ContactField> {
        use ContactField as F;
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "id" => F::Id,
            "first_name" | "given_name" => F::FirstName,
            "last_name" | "family_name" => F::LastName,
            "full_name" | "name" => F::FullName,
            "email" => F::Email,
            "phone" => F::Phone,
            "company" => F::Company,
            "title" => F::Title,
            "address_line1" => F::AddressLine1,
            "address_line2" => F::AddressLine2,
            "city" => F::City,
            "postal_code" => F::PostalCode,
            "region" => F::Region,
            "country" => F::Country,
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
) -> Result<Contact, String> {
    let mut c = Contact::default();
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
                    .or_else(|_| NaiveDate::parse_from_str(v, "%Y/%m/%d"))
                    .map_err(|_| format!("column `{h}`: `{v}` is not a date (YYYY-MM-DD)"))?;
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
