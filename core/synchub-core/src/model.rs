//! The CRM model: contacts, companies, orders with lines, invoices and
//! activities. Money is [`Decimal`] (serialized as a string), times are UTC.
//!
//! Every record serializes to a flat JSON object whose top-level keys are the
//! fields the merge rules work on; list fields ([`LIST_FIELDS`]) merge as sets.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connector::ObjectKind;

/// Fields that hold lists and merge as sets (an addition on one side and a
/// removal on the other both survive).
pub const LIST_FIELDS: &[&str] = &["emails", "phones", "tags", "addresses"];

/// Custom fields: anything a source has that the model has no column for.
pub type CustomFields = BTreeMap<String, Value>;

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    /// First street line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    /// Second street line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City or district.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State, province or county.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal or zip code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code where known, else as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Address {
    /// True when no part of the address is filled in.
    pub fn is_empty(&self) -> bool {
        self.line1.is_none()
            && self.line2.is_none()
            && self.city.is_none()
            && self.region.is_none()
            && self.postal_code.is_none()
            && self.country.is_none()
    }
}

/// A person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contact {
    /// Given (first) name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family (last) name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// The name as written, e.g. `陳大文` or `Dr. Jane Doe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// Email addresses, the primary first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    /// Phone numbers, E.164 where they could be normalized.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    /// Company name as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Job title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Postal addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Free tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Birth date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    /// Whether the person accepts marketing mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepts_marketing: Option<bool>,
    /// Source fields the model has no place for, kept as JSON.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: CustomFields,
}

impl Contact {
    /// The best display name: full name, else given + family, else the first email.
    pub fn display_name(&self) -> Option<String> {
        if let Some(full) = self.full_name.as_deref().filter(|s| !s.trim().is_empty()) {
            return Some(full.to_string());
        }
        let parts: Vec<&str> = [self.given_name.as_deref(), self.family_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect();
        if !parts.is_empty() {
            return Some(parts.join(" "));
        }
        self.emails.first().cloned()
    }
}

/// An organisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Company {
    /// Legal or trading name.
    pub name: String,
    /// Web domain, e.g. `example.com.tw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Email addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    /// Phone numbers, E.164 where possible.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    /// Postal addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Tax or company registration number (統一編號, VAT id...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    /// Free tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Source fields the model has no place for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: CustomFields,
}

/// A link from an order, invoice or activity to a person or company.
///
/// Connectors fill `external_id` (the id in their own system) and/or `email`;
/// the engine resolves `crm_id` through the identity map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartyRef {
    /// The party's id in the source system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The party's CRM id, once resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_id: Option<String>,
    /// An email for the party, used when no id resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One line of an order or invoice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LineItem {
    /// Stock keeping unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// What was sold.
    pub description: String,
    /// Quantity (decimal: services are sold in hours).
    pub quantity: Decimal,
    /// Price per unit, before tax.
    pub unit_price: Decimal,
    /// Tax on the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax: Option<Decimal>,
    /// Line total as the source states it.
    pub total: Decimal,
}

/// A sales order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Order {
    /// Order number as shown to the customer, e.g. `#1001`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The buyer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<PartyRef>,
    /// Order status (open, closed, cancelled...) as a lower-case word.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Payment status (pending, paid, refunded...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub financial_status: Option<String>,
    /// Fulfilment status (unfulfilled, partial, fulfilled...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fulfillment_status: Option<String>,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Order lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineItem>,
    /// Sum of lines before tax and shipping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtotal: Option<Decimal>,
    /// Total tax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_total: Option<Decimal>,
    /// Grand total.
    pub total: Decimal,
    /// When the order was placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placed_at: Option<DateTime<Utc>>,
    /// When the source last changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Source fields the model has no place for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: CustomFields,
}

/// An invoice (or sales receipt) from accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Invoice {
    /// Invoice number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Who is billed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<PartyRef>,
    /// The order it bills, by CRM id, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_crm_id: Option<String>,
    /// draft, authorised, paid, voided...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Invoice lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineItem>,
    /// Grand total.
    pub total: Decimal,
    /// What is still owed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<Decimal>,
    /// Issue date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_on: Option<NaiveDate>,
    /// Due date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_on: Option<NaiveDate>,
    /// Source fields the model has no place for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: CustomFields,
}

/// What kind of interaction an activity records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A mail message.
    #[default]
    Email,
    /// A phone call.
    Call,
    /// A meeting.
    Meeting,
    /// A free note.
    Note,
}

/// A person taking part in an activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Participant {
    /// from, to, cc, bcc, attendee, caller...
    pub role: String,
    /// Address, normalized to lower case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An interaction with a customer: a mail, a call, a meeting, a note.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Activity {
    /// What kind of interaction.
    pub kind: ActivityKind,
    /// Subject line or title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// First few hundred characters of the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// Who took part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Participant>,
    /// When it happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// RFC 5322 Message-ID for mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Conversation or thread id in the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Source fields the model has no place for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: CustomFields,
}

/// Any CRM record. Serialized with a `type` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A person.
    Contact(Contact),
    /// An organisation.
    Company(Company),
    /// A sales order.
    Order(Order),
    /// An invoice.
    Invoice(Invoice),
    /// An interaction.
    Activity(Activity),
}

impl Record {
    /// The object kind of this record.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Record::Contact(_) => ObjectKind::Contact,
            Record::Company(_) => ObjectKind::Company,
            Record::Order(_) => ObjectKind::Order,
            Record::Invoice(_) => ObjectKind::Invoice,
            Record::Activity(_) => ObjectKind::Activity,
        }
    }

    /// The record as a flat JSON object of fields (without the type tag).
    pub fn to_fields(&self) -> serde_json::Map<String, Value> {
        let mut map = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A tagged enum of structs always serializes to an object.
            _ => serde_json::Map::new(),
        };
        map.remove("type");
        map
    }

    /// Rebuilds a record of `kind` from a flat field map.
    pub fn from_fields(
        kind: ObjectKind,
        fields: serde_json::Map<String, Value>,
    ) -> Result<Record, serde_json::Error> {
        let mut map = fields;
        map.insert("type".into(), Value::String(kind.as_str().into()));
        serde_json::from_value(Value::Object(map))
    }

    /// A stable content hash (sha-256 of the canonical JSON), used to tell
    /// whether a record changed and to recognise echoes of our own writes.
    pub fn content_hash(&self) -> String {
        // serde_json::Map is a BTreeMap here (no preserve_order), so the
        // encoding is canonical.
        let canonical = serde_json::to_vec(&self.to_fields()).unwrap_or_default();
        crate::hash_bytes(&canonical)
    }

    /// The contact inside, if this is one.
    pub fn as_contact(&self) -> Option<&Contact> {
        match self {
            Record::Contact(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn money_serializes_as_string_and_round_trips_exactly() {
        let order = Record::Order(Order {
            currency: "TWD".into(),
            total: dec!(1234.10),
            lines: vec![LineItem {
                description: "茶葉".into(),
                quantity: dec!(3),
                unit_price: dec!(411.3666666666666666666666667),
                total: dec!(1234.10),
                ..LineItem::default()
            }],
            ..Order::default()
        });
        let json = serde_json::to_string(&order).expect("serialize");
        assert!(json.contains("\"total\":\"1234.10\""), "{json}");
        let back: Record = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, order);
    }

    #[test]
    fn fields_round_trip_and_hash_is_stable() {
        let c = Record::Contact(Contact {
            full_name: Some("陳大文".into()),
            emails: vec!["tai.man@example.hk".into()],
            phones: vec!["+85291234567".into()],
            ..Contact::default()
        });
        let fields = c.to_fields();
        assert!(!fields.contains_key("type"));
        let back = Record::from_fields(ObjectKind::Contact, fields).expect("from fields");
        assert_eq!(back, c);
        assert_eq!(back.content_hash(), c.content_hash());
        let mut other = c.clone();
        if let Record::Contact(ref mut inner) = other {
            inner.tags.push("vip".into());
        }
        assert_ne!(other.content_hash(), c.content_hash());
    }
}
