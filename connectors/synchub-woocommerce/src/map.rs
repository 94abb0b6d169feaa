//! Pure mapping between WooCommerce REST v3 JSON and the CRM model.
//!
//! Times: the `*_gmt` twins are naive UTC and are the ones used. Money is a
//! decimal string (`"29.35"`); `line_items[].price` is a JSON number in real
//! answers, so the unit price is derived exactly as `subtotal / quantity`.
//! Empty strings mean "not set". Phones are kept raw (trimmed).

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use synchub_core::model::{Address, Contact, LineItem, Order, PartyRef};
use synchub_core::{Record, Rejected, RemoteRecord};

/// Parses a WooCommerce `*_gmt` time (naive UTC, `2023-11-20T10:40:12`).
pub fn parse_gmt(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// Formats a time as WooCommerce's `*_gmt` fields and `modified_after` take it.
pub fn format_gmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn money(v: &Value, key: &str) -> Result<Option<Decimal>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Decimal::from_str(s.trim())
            .map(Some)
            .map_err(|e| format!("bad money {key} = {s:?}: {e}")),
        // numbers go through their decimal text, never through f64
        Some(Value::Number(n)) => Decimal::from_str(&n.to_string())
            .map(Some)
            .map_err(|e| format!("bad money {key} = {n}: {e}")),
        Some(other) => Err(format!("bad money {key} = {other}")),
    }
}

fn address(v: &Value) -> Option<Address> {
    let a = Address {
        line1: text(v, "address_1"),
        line2: text(v, "address_2"),
        city: text(v, "city"),
        region: text(v, "state"),
        postal_code: text(v, "postcode"),
        country: text(v, "country"),
    };
    (!a.is_empty()).then_some(a)
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id")
        .and_then(Value::as_u64)
        .filter(|id| *id != 0)
        .map(|id| id.to_string())
}

fn reject(v: &Value, reason: String) -> Rejected {
    Rejected {
        external_id: id_of(v),
        location: None,
        reason,
        raw: v.clone(),
    }
}

/// `family + given` without a space for CJK names, else `given family`.
pub fn full_name(given: Option<&str>, family: Option<&str>) -> Option<String> {
    let cjk = |s: &str| {
        s.chars().any(|c| matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF))
    };
    match (given, family) {
        (Some(g), Some(f)) if cjk(g) || cjk(f) => Some(format!("{f}{g}")),
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_string()),
        (None, None) => None,
    }
}

/// Maps one customer.
pub fn customer_to_remote(v: &Value) -> Result<RemoteRecord, Rejected> {
    let id = id_of(v).ok_or_else(|| reject(v, "customer has no id".into()))?;
    let billing = v.get("billing").cloned().unwrap_or(Value::Null);
    let shipping = v.get("shipping").cloned().unwrap_or(Value::Null);
    let given = text(v, "first_name").or(text(&billing, "first_name"));
    let family = text(v, "last_name").or(text(&billing, "last_name"));
    let mut emails = Vec::new();
    for e in [text(v, "email"), text(&billing, "email")]
        .into_iter()
        .flatten()
    {
        if !emails.iter().any(|x: &String| x.eq_ignore_ascii_case(&e)) {
            emails.push(e);
        }
    }
    let mut phones = Vec::new();
    for p in [text(&billing, "phone"), text(&shipping, "phone")]
        .into_iter()
        .flatten()
    {
        if !phones.contains(&p) {
            phones.push(p);
        }
    }
    let mut addresses: Vec<Address> = address(&billing).into_iter().collect();
    if let Some(s) = address(&shipping).filter(|s| !addresses.contains(s)) {
        addresses.push(s);
    }
    let mut contact = Contact {
        full_name: full_name(given.as_deref(), family.as_deref()),
        given_name: given,
        family_name: family,
        emails,
        phones,
        company: text(&billing, "company"),
        addresses,
        ..Contact::default()
    };
    for key in ["username", "role", "date_created_gmt"] {
        if let Some(t) = text(v, key) {
            contact.custom.insert(key.into(), Value::String(t));
        }
    }
    let version = text(v, "date_modified_gmt");
    Ok(RemoteRecord {
        external_id: id,
        updated_at: version.as_deref().and_then(parse_gmt),
        version,
        deleted: false,
        record: Some(Record::Contact(contact)),
        raw: v.clone(),
    })
}

/// Maps one order (a guest order links its buyer by billing email only).
pub fn order_to_remote(v: &Value) -> Result<RemoteRecord, Rejected> {
    let id = id_of(v).ok_or_else(|| reject(v, "order has no id".into()))?;
    let m = |key: &str| money(v, key).map_err(|e| reject(v, e));
    let mut lines = Vec::new();
    for line in v
        .get("line_items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let lm = |key: &str| money(line, key).map_err(|e| reject(v, e));
        let quantity = Decimal::from(line.get("quantity").and_then(Value::as_i64).unwrap_or(0));
        let subtotal = lm("subtotal")?.unwrap_or_default();
        let unit_price = if quantity.is_zero() {
            subtotal
        } else {
            subtotal / quantity
        };
        lines.push(LineItem {
            sku: text(line, "sku"),
            description: text(line, "name").unwrap_or_default(),
            quantity,
            unit_price,
            tax: lm("total_tax")?,
            total: lm("total")?.unwrap_or_default(),
        });
    }
    let billing = v.get("billing").cloned().unwrap_or(Value::Null);
    let buyer_name = full_name(
        text(&billing, "first_name").as_deref(),
        text(&billing, "last_name").as_deref(),
    );
    let customer = match v
        .get("customer_id")
        .and_then(Value::as_u64)
        .filter(|c| *c != 0)
    {
        Some(cid) => Some(PartyRef {
            external_id: Some(cid.to_string()),
            email: text(&billing, "email"),
            name: buyer_name,
            crm_id: None,
        }),
        None => text(&billing, "email").map(|email| PartyRef {
            email: Some(email),
            name: buyer_name,
            ..PartyRef::default()
        }),
    };
    let total = m("total")?.ok_or_else(|| reject(v, "order has no total".into()))?;
    let tax_total = m("total_tax")?;
    let shipping = m("shipping_total")?.unwrap_or_default();
    let subtotal: Decimal = lines.iter().map(|l| l.unit_price * l.quantity).sum();
    let status = text(v, "status");
    let financial = match status.as_deref() {
        Some("processing") | Some("completed") => "paid",
        Some("refunded") => "refunded",
        Some("cancelled") | Some("failed") => "voided",
        _ => "pending",
    };
    let fulfillment = if status.as_deref() == Some("completed") {
        "fulfilled"
    } else {
        "unfulfilled"
    };
    let version = text(v, "date_modified_gmt");
    let mut order = Order {
        number: text(v, "number"),
        customer,
        status: status.clone(),
        financial_status: Some(financial.into()),
        fulfillment_status: Some(fulfillment.into()),
        currency: text(v, "currency").unwrap_or_default(),
        lines,
        subtotal: Some(subtotal),
        tax_total,
        total,
        placed_at: text(v, "date_created_gmt").as_deref().and_then(parse_gmt),
        updated_at: version.as_deref().and_then(parse_gmt),
        custom: Default::default(),
    };
    if !shipping.is_zero() {
        order
            .custom
            .insert("shipping_total".into(), Value::String(shipping.to_string()));
    }
    if let Some(pm) = text(v, "payment_method_title") {
        order
            .custom
            .insert("payment_method".into(), Value::String(pm));
    }
    Ok(RemoteRecord {
        external_id: id,
        updated_at: order.updated_at,
        version,
        deleted: status.as_deref() == Some("trash"),
        record: Some(Record::Order(order)),
        raw: v.clone(),
    })
}

/// The body of `POST /customers` or `PUT /customers/{id}` (a partial body:
/// only the fields the CRM holds).
pub fn contact_to_customer(c: &Contact) -> Value {
    let mut body = Map::new();
    let (given, family) = if c.given_name.is_some() || c.family_name.is_some() {
        (c.given_name.clone(), c.family_name.clone())
    } else {
        split_full(c.full_name.as_deref())
    };
    let mut billing = Map::new();
    if let Some(g) = given {
        body.insert("first_name".into(), json!(g));
        billing.insert("first_name".into(), json!(g));
    }
    if let Some(f) = family {
        body.insert("last_name".into(), json!(f));
        billing.insert("last_name".into(), json!(f));
    }
    if let Some(e) = c.emails.first() {
        body.insert("email".into(), json!(e.trim()));
        billing.insert("email".into(), json!(e.trim()));
    }
    if let Some(p) = c.phones.first() {
        billing.insert("phone".into(), json!(p.trim()));
    }
    if let Some(company) = &c.company {
        billing.insert("company".into(), json!(company));
    }
    if !billing.is_empty() {
        body.insert("billing".into(), Value::Object(billing));
    }
    Value::Object(body)
}

fn split_full(full: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(full) = full.map(str::trim).filter(|s| !s.is_empty()) else {
        return (None, None);
    };
    if !full.contains(' ') && full.chars().count() >= 2 && full.chars().any(|c| c as u32 >= 0x3040)
    {
        let mut chars = full.chars();
        let family = chars.next().map(String::from);
        return (Some(chars.collect()), family);
    }
    match full.rsplit_once(' ') {
        Some((g, f)) => (Some(g.into()), Some(f.into())),
        None => (Some(full.into()), None),
    }
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
