//! Target fields of the CRM model and how one value is written into them.

use rust_decimal::Decimal;
use serde_json::Value;
use synchub_core::model::{Address, Company, Contact, CustomFields, Order, PartyRef};
use synchub_core::{ObjectKind, Record};

use crate::transform;

/// A part of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrPart {
    Line1,
    Line2,
    City,
    Region,
    PostalCode,
    Country,
}

/// A target field, parsed once per mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Field {
    GivenName,
    FamilyName,
    FullName,
    Emails,
    Phones,
    Company,
    Title,
    BirthDate,
    AcceptsMarketing,
    OptedOut,
    Tags,
    Owner,
    Name,
    Domain,
    Website,
    TaxId,
    Number,
    Status,
    FinancialStatus,
    FulfillmentStatus,
    Currency,
    Total,
    Subtotal,
    PlacedAt,
    CustomerId,
    CustomerName,
    CustomerEmail,
    Address(usize, AddrPart),
    Custom(String),
}

impl Field {
    /// Parses a field name for an object kind; the error says what is allowed.
    pub(crate) fn parse(name: &str, kind: ObjectKind) -> Result<Field, String> {
        use ObjectKind::{Company as Co, Contact as Ct, Order as Or};
        if let Some(key) = name.strip_prefix("custom.") {
            return Ok(Field::Custom(key.to_string()));
        }
        if let Some((head, part)) = name.split_once('.') {
            let slot = match head {
                "address" => Some(0),
                "address2" => Some(1),
                _ => None,
            };
            let part = match part {
                "line1" | "street" => Some(AddrPart::Line1),
                "line2" => Some(AddrPart::Line2),
                "city" => Some(AddrPart::City),
                "region" | "state" => Some(AddrPart::Region),
                "postal_code" | "zip" => Some(AddrPart::PostalCode),
                "country" => Some(AddrPart::Country),
                _ => None,
            };
            if let (Some(slot), Some(part), true) = (slot, part, kind != Or) {
                return Ok(Field::Address(slot, part));
            }
        }
        // The csv map's spellings (deprecated aliases of the canonical
        // names, see docs/config.md "One mapping vocabulary").
        let flat = match name {
            "address_line1" => Some(AddrPart::Line1),
            "address_line2" => Some(AddrPart::Line2),
            "city" => Some(AddrPart::City),
            "region" => Some(AddrPart::Region),
            "postal_code" => Some(AddrPart::PostalCode),
            "country" => Some(AddrPart::Country),
            _ => None,
        };
        if let (Some(part), true) = (flat, kind != Or) {
            return Ok(Field::Address(0, part));
        }
        if name == "name" && kind == Ct {
            return Ok(Field::FullName);
        }
        let (field, kinds): (Field, &[ObjectKind]) = match name {
            "given_name" | "first_name" => (Field::GivenName, &[Ct]),
            "family_name" | "last_name" => (Field::FamilyName, &[Ct]),
            "full_name" => (Field::FullName, &[Ct]),
            "emails" | "email" => (Field::Emails, &[Ct, Co]),
            "phones" | "phone" => (Field::Phones, &[Ct, Co]),
            "company" => (Field::Company, &[Ct]),
            "title" => (Field::Title, &[Ct]),
            "birth_date" => (Field::BirthDate, &[Ct]),
            "accepts_marketing" => (Field::AcceptsMarketing, &[Ct]),
            "opted_out" => (Field::OptedOut, &[Ct]),
            "tags" => (Field::Tags, &[Ct, Co]),
            "owner" => (Field::Owner, &[Ct, Co, Or]),
            "name" => (Field::Name, &[Co]),
            "domain" => (Field::Domain, &[Co]),
            "website" => (Field::Website, &[Co]),
            "tax_id" => (Field::TaxId, &[Co]),
            "number" => (Field::Number, &[Or]),
            "status" => (Field::Status, &[Or]),
            "financial_status" => (Field::FinancialStatus, &[Or]),
            "fulfillment_status" => (Field::FulfillmentStatus, &[Or]),
            "currency" => (Field::Currency, &[Or]),
            "total" => (Field::Total, &[Or]),
            "subtotal" => (Field::Subtotal, &[Or]),
            "placed_at" => (Field::PlacedAt, &[Or]),
            "customer.external_id" => (Field::CustomerId, &[Or]),
            "customer.name" => (Field::CustomerName, &[Or]),
            "customer.email" => (Field::CustomerEmail, &[Or]),
            _ => {
                return Err(format!(
                    "unknown field '{name}' (see the mapping docs for {kind} fields)"
                ))
            }
        };
        if kinds.contains(&kind) {
            Ok(field)
        } else {
            Err(format!("'{name}' is not a {kind} field"))
        }
    }

    /// Whether the field holds several values (split on `;`).
    pub(crate) fn is_list(&self) -> bool {
        matches!(self, Field::Emails | Field::Phones | Field::Tags)
    }
}

/// A record being built from one row.
pub(crate) enum Draft {
    Contact(Contact),
    Company(Company),
    Order(Order, bool),
}

/// What the draft needs from the mapping while values are written.
pub(crate) struct Ctx<'a> {
    pub region: Option<phonenumber::country::Id>,
    pub owners: &'a std::collections::BTreeMap<String, String>,
}

impl Draft {
    pub(crate) fn new(kind: ObjectKind) -> Draft {
        match kind {
            ObjectKind::Company => Draft::Company(Company::default()),
            ObjectKind::Order => Draft::Order(Order::default(), false),
            _ => Draft::Contact(Contact::default()),
        }
    }

    fn custom(&mut self) -> &mut CustomFields {
        match self {
            Draft::Contact(c) => &mut c.custom,
            Draft::Company(c) => &mut c.custom,
            Draft::Order(o, _) => &mut o.custom,
        }
    }

    /// Adds a custom value; a key seen twice becomes a list.
    pub(crate) fn add_custom(&mut self, key: &str, value: &str) {
        add_custom(self.custom(), key, value);
    }

    fn addresses(&mut self) -> Option<&mut Vec<Address>> {
        match self {
            Draft::Contact(c) => Some(&mut c.addresses),
            Draft::Company(c) => Some(&mut c.addresses),
            Draft::Order(..) => None,
        }
    }

    /// Writes one non-empty value; `Err` is a reason to reject the row.
    pub(crate) fn set(
        &mut self,
        field: &Field,
        value: &str,
        column: &str,
        ctx: &Ctx<'_>,
    ) -> Result<(), String> {
        fn first(slot: &mut Option<String>, value: &str) {
            if slot.is_none() {
                *slot = Some(value.to_string());
            }
        }
        fn push_unique(list: &mut Vec<String>, value: String) {
            if !list.contains(&value) {
                list.push(value);
            }
        }
        match (self, field) {
            (d, Field::Custom(key)) => d.add_custom(key, value),
            (d, Field::Owner) => {
                let owner = ctx
                    .owners
                    .get(value)
                    .map_or(value, String::as_str)
                    .to_string();
                d.add_custom("owner", &owner);
            }
            (d, Field::Address(slot, part)) => {
                let Some(list) = d.addresses() else {
                    return Ok(());
                };
                while list.len() <= *slot {
                    list.push(Address::default());
                }
                let a = &mut list[*slot];
                let target = match part {
                    AddrPart::Line1 => &mut a.line1,
                    AddrPart::Line2 => &mut a.line2,
                    AddrPart::City => &mut a.city,
                    AddrPart::Region => &mut a.region,
                    AddrPart::PostalCode => &mut a.postal_code,
                    AddrPart::Country => &mut a.country,
                };
                first(target, value);
            }
            (Draft::Contact(c), f) => match f {
                Field::GivenName => first(&mut c.given_name, value),
                Field::FamilyName => first(&mut c.family_name, value),
                Field::FullName => first(&mut c.full_name, value),
                Field::Company => first(&mut c.company, value),
                Field::Title => first(&mut c.title, value),
                Field::Tags => push_unique(&mut c.tags, value.to_string()),
                Field::Emails => match transform::normalize_email(value) {
                    Some(e) => push_unique(&mut c.emails, e),
                    None => add_custom(&mut c.custom, "invalid_emails", value),
                },
                Field::Phones => push_unique(&mut c.phones, value.trim().to_string()),
                Field::BirthDate => match transform::parse_date(value) {
                    Some(d) => c.birth_date = c.birth_date.or(Some(d)),
                    None => add_custom(&mut c.custom, column, value),
                },
                Field::AcceptsMarketing | Field::OptedOut => {
                    let flag = transform::parse_bool(value).ok_or_else(|| {
                        format!("'{value}' in column '{column}' is not a yes/no value")
                    })?;
                    let accepts = if *f == Field::OptedOut { !flag } else { flag };
                    // Any opt-out wins over an opt-in from another column.
                    c.accepts_marketing = Some(c.accepts_marketing.unwrap_or(true) && accepts);
                }
                _ => {}
            },
            (Draft::Company(c), f) => match f {
                Field::Name if c.name.is_empty() => c.name = value.to_string(),
                Field::Domain | Field::Website => {
                    if c.domain.is_none() {
                        c.domain = transform::domain_of(value);
                    }
                    if *f == Field::Website {
                        add_custom(&mut c.custom, column, value);
                    }
                }
                Field::TaxId => first(&mut c.tax_id, value),
                Field::Tags => push_unique(&mut c.tags, value.to_string()),
                Field::Emails => match transform::normalize_email(value) {
                    Some(e) => push_unique(&mut c.emails, e),
                    None => add_custom(&mut c.custom, "invalid_emails", value),
                },
                Field::Phones => push_unique(&mut c.phones, value.trim().to_string()),
                _ => {}
            },
            (Draft::Order(o, has_total), f) => match f {
                Field::Number => first(&mut o.number, value),
                Field::Status => first(&mut o.status, &value.to_lowercase()),
                Field::FinancialStatus => first(&mut o.financial_status, &value.to_lowercase()),
                Field::FulfillmentStatus => first(&mut o.fulfillment_status, &value.to_lowercase()),
                Field::Currency if o.currency.is_empty() => {
                    o.currency = value.trim().to_ascii_uppercase();
                }
                Field::Total | Field::Subtotal => {
                    let amount = transform::parse_decimal(value).ok_or_else(|| {
                        format!("amount '{value}' in column '{column}' is not a number")
                    })?;
                    if *f == Field::Subtotal {
                        o.subtotal = o.subtotal.or(Some(amount));
                    } else if !*has_total {
                        o.total = amount;
                        *has_total = true;
                    }
                }
                Field::PlacedAt => match transform::parse_datetime(value) {
                    Some(t) => o.placed_at = o.placed_at.or(Some(t)),
                    None => add_custom(&mut o.custom, column, value),
                },
                Field::CustomerId | Field::CustomerName | Field::CustomerEmail => {
                    let party = o.customer.get_or_insert_with(PartyRef::default);
                    let slot = match f {
                        Field::CustomerId => &mut party.external_id,
                        Field::CustomerName => &mut party.name,
                        _ => &mut party.email,
                    };
                    first(slot, value);
                }
                _ => {}
            },
        }
        Ok(())
    }

    /// Completes the record, or says why it cannot be one.
    pub(crate) fn finish(
        self,
        tags: &[String],
        default_currency: &str,
        ctx: &Ctx<'_>,
    ) -> Result<Record, String> {
        match self {
            Draft::Contact(mut c) => {
                if c.given_name.is_none() && c.family_name.is_none() {
                    if let Some(full) = &c.full_name {
                        (c.given_name, c.family_name) = transform::split_name(full);
                    }
                }
                if c.full_name.is_none() {
                    if let (Some(g), Some(f)) = (&c.given_name, &c.family_name) {
                        if transform::has_han(g) || transform::has_han(f) {
                            c.full_name = Some(format!("{f}{g}"));
                        }
                    }
                }
                let named =
                    c.given_name.is_some() || c.family_name.is_some() || c.full_name.is_some();
                if !named && c.emails.is_empty() && c.phones.is_empty() {
                    return Err("contact has no name, email or phone".into());
                }
                c.addresses.retain(|a| !a.is_empty());
                c.phones = phones(
                    std::mem::take(&mut c.phones),
                    &c.addresses,
                    &mut c.custom,
                    ctx,
                );
                for t in tags {
                    if !c.tags.contains(t) {
                        c.tags.push(t.clone());
                    }
                }
                Ok(Record::Contact(c))
            }
            Draft::Company(mut c) => {
                if c.name.trim().is_empty() {
                    return Err("company has no name".into());
                }
                c.addresses.retain(|a| !a.is_empty());
                c.phones = phones(
                    std::mem::take(&mut c.phones),
                    &c.addresses,
                    &mut c.custom,
                    ctx,
                );
                for t in tags {
                    if !c.tags.contains(t) {
                        c.tags.push(t.clone());
                    }
                }
                Ok(Record::Company(c))
            }
            Draft::Order(mut o, has_total) => {
                if o.currency.is_empty() {
                    o.currency = default_currency.to_string();
                }
                if !has_total {
                    o.total = Decimal::ZERO;
                    o.custom.insert("amount_missing".into(), Value::Bool(true));
                }
                Ok(Record::Order(o))
            }
        }
    }
}

/// Adds a custom value; a key seen twice becomes a list of distinct values.
pub(crate) fn add_custom(custom: &mut CustomFields, key: &str, value: &str) {
    match custom.get_mut(key) {
        None => {
            custom.insert(key.to_string(), Value::String(value.to_string()));
        }
        Some(Value::Array(list)) => {
            if !list.iter().any(|v| v.as_str() == Some(value)) {
                list.push(Value::String(value.to_string()));
            }
        }
        Some(existing) => {
            if existing.as_str() != Some(value) {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value.to_string())]);
            }
        }
    }
}

/// Phones to E.164 where they can be read, else as written. National
/// numbers take the region of the record's own address country when it is
/// recognisable (`台灣`, `Hong Kong`, `CN`), else the default region.
///
/// Extensions are split off the same way for contacts and companies: the
/// phone is the number alone (what matching and the other systems use), and
/// the full form (`+886223456789;ext=123`, RFC 3966) is kept in
/// `custom.phone_extensions`.
fn phones(
    raw: Vec<String>,
    addresses: &[Address],
    custom: &mut CustomFields,
    ctx: &Ctx<'_>,
) -> Vec<String> {
    let region = addresses
        .iter()
        .find_map(|a| a.country.as_deref().and_then(transform::country_region))
        .or(ctx.region);
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for value in raw {
        let phone = transform::normalize_phone(&value, region).unwrap_or(value);
        let phone = match phone.split_once(";ext=") {
            Some((number, _)) => {
                add_custom(custom, "phone_extensions", &phone);
                number.to_string()
            }
            None => phone,
        };
        if !out.contains(&phone) {
            out.push(phone);
        }
    }
    out
}
