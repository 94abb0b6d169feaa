//! The matcher's prepared form of a contact: every field normalized once, so
//! that comparing a pair is cheap.

use chrono::NaiveDate;
use synchub_core::model::Contact;

use crate::keys::person_name;
use crate::normalize::address::{normalize_address_line, normalize_postal_code};
use crate::normalize::address_parts::address_parts;
use crate::normalize::company::normalize_company;
use crate::normalize::email::normalize_email;
use crate::normalize::fold;
use crate::normalize::name::PersonName;
use crate::normalize::phone::normalize_phone;

/// A contact with every compared field normalized.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Parsed name.
    pub name: PersonName,
    /// Normalized emails.
    pub emails: Vec<String>,
    /// E.164 phones.
    pub phones: Vec<String>,
    /// Birth date.
    pub birth_date: Option<NaiveDate>,
    /// Normalized first address line (with line 2).
    pub street: Option<String>,
    /// House number of the first address line.
    pub number: Option<String>,
    /// Street name of the first address line, type abbreviated.
    pub street_name: Option<String>,
    /// Normalized second address line (building, estate, locality).
    pub line2: Option<String>,
    /// Normalized postal code.
    pub postal_code: Option<String>,
    /// Folded city.
    pub city: Option<String>,
    /// Normalized company name.
    pub company: Option<String>,
}

impl Prepared {
    /// Prepare a contact; `default_region` applies to phones without a country code.
    pub fn new(contact: &Contact, default_region: Option<&str>) -> Self {
        let region = crate::keys::contact_region(contact, default_region);
        let default_region = region.as_deref();
        let mut emails: Vec<String> = contact
            .emails
            .iter()
            .filter_map(|e| normalize_email(e))
            .collect();
        emails.sort();
        emails.dedup();
        let mut phones: Vec<String> = contact
            .phones
            .iter()
            .filter_map(|p| normalize_phone(p, default_region))
            .collect();
        phones.sort();
        phones.dedup();
        let addr = contact.addresses.first();
        let street = addr.and_then(|a| {
            let l1 = normalize_address_line(a.line1.as_deref().unwrap_or(""));
            let l2 = normalize_address_line(a.line2.as_deref().unwrap_or(""));
            let s = if l2.is_empty() {
                l1
            } else {
                format!("{l1} {l2}")
            };
            non_empty(s)
        });
        let parts = addr
            .and_then(|a| a.line1.as_deref())
            .map(address_parts)
            .unwrap_or_default();
        let line2 = addr
            .and_then(|a| a.line2.as_deref())
            .map(normalize_address_line)
            .and_then(non_empty);
        let postal_code = addr
            .and_then(|a| a.postal_code.as_deref())
            .map(normalize_postal_code)
            .and_then(non_empty);
        let city = addr
            .and_then(|a| a.city.as_deref())
            .map(fold)
            .and_then(non_empty);
        let company = contact
            .company
            .as_deref()
            .map(normalize_company)
            .and_then(non_empty);
        Prepared {
            name: person_name(contact),
            emails,
            phones,
            birth_date: contact.birth_date,
            street,
            number: parts.number,
            street_name: parts.street,
            line2,
            postal_code,
            city,
            company,
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}
