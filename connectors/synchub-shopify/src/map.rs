//! Pure mapping between Shopify Admin GraphQL JSON and the CRM model.
//!
//! Money arrives as decimal strings (`"12850.0"`) and is parsed straight into
//! [`Decimal`], never through a float. Names are kept as written; for CJK names
//! the full name is family + given with no space (`陳` + `大文` → `陳大文`).
//! Phones are kept raw (trimmed): the engine normalizes them.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use synchub_core::model::{Address, Contact, LineItem, Order, PartyRef};
use synchub_core::{Record, Rejected, RemoteRecord};

/// A GraphQL `MoneyV2`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Money {
    amount: String,
    currency_code: String,
}

/// A GraphQL `MoneyBag` (`shopMoney` is the shop's currency).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoneyBag {
    shop_money: Money,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailingAddress {
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    province: Option<String>,
    province_code: Option<String>,
    zip: Option<String>,
    country: Option<String>,
    country_code_v2: Option<String>,
    phone: Option<String>,
    company: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerNode {
    id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    note: Option<String>,
    state: Option<String>,
    created_at: Option<String>,
    updated_at: String,
    number_of_orders: Option<Value>,
    amount_spent: Option<Money>,
    default_address: Option<MailingAddress>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderCustomer {
    id: String,
    email: Option<String>,
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineNode {
    sku: Option<String>,
    name: Option<String>,
    title: Option<String>,
    quantity: i64,
    original_unit_price_set: MoneyBag,
    discounted_total_set: Option<MoneyBag>,
}

#[derive(Debug, Deserialize)]
struct LineConnection {
    nodes: Vec<LineNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderNode {
    id: String,
    name: Option<String>,
    email: Option<String>,
    created_at: Option<String>,
    processed_at: Option<String>,
    updated_at: String,
    cancelled_at: Option<String>,
    closed_at: Option<String>,
    display_financial_status: Option<String>,
    display_fulfillment_status: Option<String>,
    currency_code: String,
    subtotal_price_set: Option<MoneyBag>,
    total_tax_set: Option<MoneyBag>,
    total_price_set: MoneyBag,
    customer: Option<OrderCustomer>,
    line_items: Option<LineConnection>,
}

/// Maps one GraphQL `Customer` node; an unusable node becomes a [`Rejected`].
pub fn customer_to_remote(node: &Value) -> Result<RemoteRecord, Rejected> {
    let c = CustomerNode::deserialize(node)
        .map_err(|e| reject(node, format!("customer does not match the schema: {e}")))?;
    let updated_at = parse_time(&c.updated_at)
        .ok_or_else(|| reject(node, format!("bad updatedAt {:?}", c.updated_at)))?;
    let given = clean(c.first_name);
    let family = clean(c.last_name);
    let full_name = full_name(given.as_deref(), family.as_deref()).or(clean(c.display_name));
    let mut phones = Vec::new();
    push_unique(&mut phones, clean(c.phone));
    let mut contact = Contact {
        given_name: given,
        family_name: family,
        full_name,
        emails: clean(c.email).into_iter().collect(),
        tags: c
            .tags
            .into_iter()
            .filter(|t| !t.starts_with(KEY_TAG_PREFIX))
            .filter_map(|t| clean(Some(t)))
            .collect(),
        ..Contact::default()
    };
    if let Some(a) = c.default_address {
        push_unique(&mut phones, clean(a.phone));
        contact.company = clean(a.company);
        let address = Address {
            line1: clean(a.address1),
            line2: clean(a.address2),
            city: clean(a.city),
            region: clean(a.province_code).or(clean(a.province)),
            postal_code: clean(a.zip),
            country: clean(a.country_code_v2).or(clean(a.country)),
        };
        if !address.is_empty() {
            contact.addresses.push(address);
        }
    }
    contact.phones = phones;
    let custom = &mut contact.custom;
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            custom.insert(key.to_string(), v);
        }
    };
    put("note", clean(c.note).map(Value::String));
    put(
        "state",
        c.state.map(|s| Value::String(s.to_ascii_lowercase())),
    );
    put("created_at", c.created_at.map(Value::String));
    put("number_of_orders", c.number_of_orders);
    if let Some(m) = c.amount_spent {
        let amount = parse_money(&m.amount).map_err(|e| reject(node, e))?;
        custom.insert(
            "amount_spent".into(),
            json!({"amount": amount.to_string(), "currency": m.currency_code}),
        );
    }
    Ok(RemoteRecord {
        external_id: c.id,
        version: Some(c.updated_at),
        updated_at: Some(updated_at),
        deleted: false,
        record: Some(Record::Contact(contact)),
        raw: node.clone(),
    })
}

/// Maps one GraphQL `Order` node; an unusable node becomes a [`Rejected`].
pub fn order_to_remote(node: &Value) -> Result<RemoteRecord, Rejected> {
    let o = OrderNode::deserialize(node)
        .map_err(|e| reject(node, format!("order does not match the schema: {e}")))?;
    let updated_at = parse_time(&o.updated_at)
        .ok_or_else(|| reject(node, format!("bad updatedAt {:?}", o.updated_at)))?;
    let money = |bag: &MoneyBag| parse_money(&bag.shop_money.amount).map_err(|e| reject(node, e));
    let mut lines = Vec::new();
    for line in o.line_items.map(|c| c.nodes).unwrap_or_default() {
        let unit_price = money(&line.original_unit_price_set)?;
        let quantity = Decimal::from(line.quantity);
        let total = match &line.discounted_total_set {
            Some(bag) => money(bag)?,
            None => unit_price * quantity,
        };
        lines.push(LineItem {
            sku: clean(line.sku),
            description: clean(line.name).or(clean(line.title)).unwrap_or_default(),
            quantity,
            unit_price,
            tax: None,
            total,
        });
    }
    let status = if o.cancelled_at.is_some() {
        "cancelled"
    } else if o.closed_at.is_some() {
        "closed"
    } else {
        "open"
    };
    let customer = match o.customer {
        Some(c) => Some(PartyRef {
            external_id: Some(c.id),
            email: clean(c.email).or(clean(o.email.clone())),
            name: clean(c.display_name),
            crm_id: None,
        }),
        None => clean(o.email.clone()).map(|email| PartyRef {
            email: Some(email),
            ..PartyRef::default()
        }),
    };
    let placed = o.processed_at.as_deref().or(o.created_at.as_deref());
    let order = Order {
        number: clean(o.name),
        customer,
        status: Some(status.into()),
        financial_status: o.display_financial_status.map(|s| s.to_ascii_lowercase()),
        fulfillment_status: o.display_fulfillment_status.map(|s| s.to_ascii_lowercase()),
        currency: o.currency_code,
        lines,
        subtotal: o.subtotal_price_set.as_ref().map(money).transpose()?,
        tax_total: o.total_tax_set.as_ref().map(money).transpose()?,
        total: money(&o.total_price_set)?,
        placed_at: placed.and_then(parse_time),
        updated_at: Some(updated_at),
        custom: Default::default(),
    };
    Ok(RemoteRecord {
        external_id: o.id,
        version: Some(o.updated_at),
        updated_at: Some(updated_at),
        deleted: false,
        record: Some(Record::Order(order)),
        raw: node.clone(),
    })
}

/// The `CustomerInput` for `customerCreate` (`id: None`) or `customerUpdate`.
///
/// Only the fields the CRM holds are sent; Shopify leaves omitted fields
/// unchanged. Addresses are not written back (list fields are replaced whole).
/// Prefix of the tag a create carries with its idempotency key (Shopify's
/// `customerCreate` takes no idempotency key): a retried create finds the
/// customer by it instead of creating a second one. Never mapped to the CRM.
pub const KEY_TAG_PREFIX: &str = "synchub-key:";

/// The tag naming a create's idempotency key: the key's safe characters,
/// within Shopify's 255-character tag limit.
pub fn key_tag(idempotency_key: &str) -> String {
    let safe: String = idempotency_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(255 - KEY_TAG_PREFIX.len())
        .collect();
    format!("{KEY_TAG_PREFIX}{safe}")
}

pub fn contact_to_customer_input(contact: &Contact, id: Option<&str>) -> Value {
    let mut input = Map::new();
    if let Some(id) = id {
        input.insert("id".into(), Value::String(id.into()));
    }
    let (given, family) = split_name(contact);
    insert_opt(&mut input, "firstName", given.map(Value::String));
    insert_opt(&mut input, "lastName", family.map(Value::String));
    insert_opt(
        &mut input,
        "email",
        contact
            .emails
            .first()
            .map(|e| Value::String(e.trim().into())),
    );
    // Shopify refuses a phone that is not E.164 (`Phone is invalid`) and
    // would then drop the whole write: send the first phone that is, and
    // leave one the CRM could not normalize (`n/a`, `12345`) in the CRM.
    insert_opt(
        &mut input,
        "phone",
        contact
            .phones
            .iter()
            .map(|p| p.trim())
            .find(|p| is_e164(p))
            .map(|p| Value::String(p.into())),
    );
    if !contact.tags.is_empty() {
        input.insert("tags".into(), json!(contact.tags));
    }
    if let Some(Value::String(note)) = contact.custom.get("note") {
        input.insert("note".into(), Value::String(note.clone()));
    }
    Value::Object(input)
}

/// `+` and 8 to 15 digits, the only phone shape Shopify accepts.
pub fn is_e164(p: &str) -> bool {
    p.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Given and family names for a write: the parts if known, else a split of
/// the full name (CJK: first character is the family name).
fn split_name(c: &Contact) -> (Option<String>, Option<String>) {
    if c.given_name.is_some() || c.family_name.is_some() {
        return (c.given_name.clone(), c.family_name.clone());
    }
    let Some(full) = c
        .full_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return (None, None);
    };
    if is_cjk(full) && !full.contains(' ') {
        let mut chars = full.chars();
        let family: String = chars.next().map(String::from).unwrap_or_default();
        let given: String = chars.collect();
        return (Some(given).filter(|s| !s.is_empty()), Some(family));
    }
    match full.rsplit_once(' ') {
        Some((given, family)) => (Some(given.trim().into()), Some(family.trim().into())),
        None => (Some(full.into()), None),
    }
}

/// Full name: CJK family+given without a space, else `given family`.
pub fn full_name(given: Option<&str>, family: Option<&str>) -> Option<String> {
    match (given, family) {
        (Some(g), Some(f)) if is_cjk(g) || is_cjk(f) => Some(format!("{f}{g}")),
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_string()),
        (None, None) => None,
    }
}

/// True when the text contains Han, kana or hangul characters.
pub fn is_cjk(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(c as u32,
            0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
    })
}

/// Parses a decimal money string exactly.
pub fn parse_money(s: &str) -> Result<Decimal, String> {
    Decimal::from_str(s.trim()).map_err(|e| format!("bad money amount {s:?}: {e}"))
}

/// Parses an RFC 3339 time to UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn clean(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn push_unique(list: &mut Vec<String>, v: Option<String>) {
    if let Some(v) = v {
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        map.insert(key.into(), v);
    }
}

fn reject(node: &Value, reason: String) -> Rejected {
    Rejected {
        external_id: node.get("id").and_then(Value::as_str).map(String::from),
        location: None,
        reason,
        raw: node.clone(),
    }
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
