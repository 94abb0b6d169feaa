//! Pure mapping between Frappe documents and the CRM model.
//!
//! * `Contact` ↔ [`Contact`]: the `email_ids` (`Contact Email`) and
//!   `phone_nos` (`Contact Phone`) child tables ↔ `emails` and `phones`,
//!   the primary row first; `first_name` / `last_name` ↔ given / family
//!   name. Frappe computes `full_name` as "first middle last" with spaces;
//!   for CJK names (family first, no space) the CRM's full name is family +
//!   given, so 陳 + 大文 stays 陳大文 both ways. A name with only a first
//!   name is a full name (陳大文 alone in `first_name`).
//! * `Customer` ↔ [`Company`] (a Customer of either `customer_type` is the
//!   party orders belong to); its linked `Address` documents become
//!   `addresses` (read only).
//! * `Sales Order` → [`Order`], money from JSON numbers into decimals
//!   without passing through a float's arithmetic.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use synchub_core::model::{Address, Company, Contact, LineItem, Order, PartyRef};

use crate::client::Doc;

/// The `custom` key holding the Customer a Contact is linked to.
pub const CUSTOMER_KEY: &str = "erpnext_customer";
/// The `custom` key holding a Customer's `customer_type`.
pub const CUSTOMER_TYPE_KEY: &str = "erpnext_customer_type";
/// The `custom` key holding a Customer's `customer_group`.
pub const CUSTOMER_GROUP_KEY: &str = "erpnext_customer_group";
/// The `custom` key holding a Customer's `territory`.
pub const TERRITORY_KEY: &str = "erpnext_territory";

/// Text of a field; empty strings and nulls are `None`.
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A JSON number (or numeric string) as a decimal, from its shortest
/// decimal text (`10500.0`, `0.1`), never through float arithmetic.
pub fn decimal(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::Number(n) => {
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
                .map(|d| d.normalize())
        }
        Value::String(s) => Decimal::from_str(s.trim()).ok().map(|d| d.normalize()),
        _ => None,
    }
}

/// A decimal as a JSON number (Frappe's Float and Currency fields).
pub fn decimal_json(d: Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1",
        _ => false,
    }
}

fn rows<'a>(doc: &'a Doc, table: &str) -> Vec<&'a Map<String, Value>> {
    let mut rows: Vec<&Map<String, Value>> = doc
        .get(table)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    rows.sort_by_key(|r| r.get("idx").and_then(Value::as_i64).unwrap_or(i64::MAX));
    rows
}

/// True when every letter of `s` is of a script written without spaces
/// between family and given name (Han, kana, Hangul).
pub fn is_cjk(s: &str) -> bool {
    let mut any = false;
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        let u = u32::from(c);
        let cjk = matches!(u,
            0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF
            | 0xF900..=0xFAFF | 0x20000..=0x2FA1F);
        if !cjk {
            return false;
        }
        any = true;
    }
    any
}

/// Maps a `Contact` document (with its child tables).
pub fn contact(doc: &Doc) -> Contact {
    let first = text(doc.get("first_name"));
    let middle = text(doc.get("middle_name"));
    let last = text(doc.get("last_name"));
    let (given_name, family_name, full_name) = match (&first, &last) {
        (Some(f), None) if middle.is_none() => (None, None, Some(f.clone())),
        (f, l) => {
            let full = match (f, l) {
                (Some(f), Some(l)) if is_cjk(f) && is_cjk(l) && middle.is_none() => {
                    Some(format!("{l}{f}"))
                }
                _ => text(doc.get("full_name")).or_else(|| {
                    let parts: Vec<&str> = [f.as_deref(), middle.as_deref(), l.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect();
                    (!parts.is_empty()).then(|| parts.join(" "))
                }),
            };
            (f.clone(), l.clone(), full)
        }
    };
    let mut emails_rows = rows(doc, "email_ids");
    emails_rows.sort_by_key(|r| !flag(r.get("is_primary")));
    let mut emails: Vec<String> = Vec::new();
    for r in emails_rows {
        if let Some(e) = text(r.get("email_id")) {
            if !emails.contains(&e) {
                emails.push(e);
            }
        }
    }
    if emails.is_empty() {
        emails.extend(text(doc.get("email_id")));
    }
    let mut phone_rows = rows(doc, "phone_nos");
    phone_rows
        .sort_by_key(|r| !(flag(r.get("is_primary_phone")) || flag(r.get("is_primary_mobile_no"))));
    let mut phones: Vec<String> = Vec::new();
    for r in phone_rows {
        if let Some(p) = text(r.get("phone")) {
            if !phones.contains(&p) {
                phones.push(p);
            }
        }
    }
    if phones.is_empty() {
        for k in ["mobile_no", "phone"] {
            if let Some(p) = text(doc.get(k)) {
                if !phones.contains(&p) {
                    phones.push(p);
                }
            }
        }
    }
    let customer_link = rows(doc, "links")
        .into_iter()
        .find(|l| l.get("link_doctype").and_then(Value::as_str) == Some("Customer"))
        .cloned();
    let company = text(doc.get("company_name")).or_else(|| {
        customer_link
            .as_ref()
            .and_then(|l| text(l.get("link_title")).or_else(|| text(l.get("link_name"))))
    });
    let mut custom = Map::new();
    if let Some(l) = customer_link
        .as_ref()
        .and_then(|l| text(l.get("link_name")))
    {
        custom.insert(CUSTOMER_KEY.into(), json!(l));
    }
    if let Some(m) = middle {
        custom.insert("erpnext_middle_name".into(), json!(m));
    }
    Contact {
        given_name,
        family_name,
        full_name,
        emails,
        phones,
        company,
        title: text(doc.get("designation")),
        custom: custom.into_iter().collect(),
        ..Contact::default()
    }
}

/// The `Contact` fields for `fields` of the CRM contact (all of them for a
/// create). Child tables are sent whole: Frappe replaces a table given in
/// an update.
pub fn contact_body(c: &Contact, fields: &[String]) -> Map<String, Value> {
    let has = |f: &str| fields.iter().any(|x| x == f);
    let mut body = Map::new();
    if has("given_name") || has("family_name") || has("full_name") {
        let first = c
            .given_name
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| c.display_name());
        body.insert(
            "first_name".into(),
            first.map_or(Value::Null, Value::String),
        );
        body.insert(
            "last_name".into(),
            json!(c.family_name.clone().unwrap_or_default()),
        );
    }
    if has("emails") {
        let rows: Vec<Value> = c
            .emails
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"email_id": e, "is_primary": i32::from(i == 0)}))
            .collect();
        body.insert("email_ids".into(), Value::Array(rows));
    }
    if has("phones") {
        let rows: Vec<Value> = c
            .phones
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"phone": p, "is_primary_phone": i32::from(i == 0),
                       "is_primary_mobile_no": i32::from(i == 0)})
            })
            .collect();
        body.insert("phone_nos".into(), Value::Array(rows));
    }
    if has("title") {
        body.insert(
            "designation".into(),
            json!(c.title.clone().unwrap_or_default()),
        );
    }
    if has("company") {
        body.insert(
            "company_name".into(),
            json!(c.company.clone().unwrap_or_default()),
        );
    }
    if has("custom") {
        if let Some(m) = c.custom.get("erpnext_middle_name") {
            body.insert("middle_name".into(), m.clone());
        }
    }
    body
}

/// Maps an `Address` document.
pub fn address(doc: &Doc) -> Address {
    Address {
        line1: text(doc.get("address_line1")),
        line2: text(doc.get("address_line2")),
        city: text(doc.get("city")),
        region: text(doc.get("state")),
        postal_code: text(doc.get("pincode")),
        country: text(doc.get("country")),
    }
}

/// Maps a `Customer` with the addresses linked to it.
pub fn customer(doc: &Doc, addresses: Vec<Address>) -> Company {
    let mut custom = Map::new();
    for (field, key) in [
        ("customer_type", CUSTOMER_TYPE_KEY),
        ("customer_group", CUSTOMER_GROUP_KEY),
        ("territory", TERRITORY_KEY),
    ] {
        if let Some(v) = text(doc.get(field)) {
            custom.insert(key.into(), json!(v));
        }
    }
    Company {
        name: text(doc.get("customer_name"))
            .or_else(|| text(doc.get("name")))
            .unwrap_or_default(),
        emails: text(doc.get("email_id")).into_iter().collect(),
        phones: text(doc.get("mobile_no")).into_iter().collect(),
        addresses,
        tax_id: text(doc.get("tax_id")),
        custom: custom.into_iter().collect(),
        ..Company::default()
    }
}

/// The `Customer` fields for `fields` of the CRM company. `addresses` are
/// not written (Address documents are read only in this connector).
pub fn customer_body(c: &Company, fields: &[String]) -> Map<String, Value> {
    let has = |f: &str| fields.iter().any(|x| x == f);
    let mut body = Map::new();
    if has("name") {
        body.insert("customer_name".into(), json!(c.name));
    }
    if has("tax_id") {
        body.insert("tax_id".into(), json!(c.tax_id.clone().unwrap_or_default()));
    }
    if has("emails") {
        body.insert(
            "email_id".into(),
            json!(c.emails.first().cloned().unwrap_or_default()),
        );
    }
    if has("phones") {
        body.insert(
            "mobile_no".into(),
            json!(c.phones.first().cloned().unwrap_or_default()),
        );
    }
    if has("custom") {
        for (field, key) in [
            ("customer_type", CUSTOMER_TYPE_KEY),
            ("customer_group", CUSTOMER_GROUP_KEY),
            ("territory", TERRITORY_KEY),
        ] {
            if let Some(v) = c.custom.get(key).filter(|v| v.is_string()) {
                body.insert(field.into(), v.clone());
            }
        }
    }
    body
}

/// A site-local date's midnight as UTC, given the site's `to_utc`.
fn date(v: Option<&Value>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v?.as_str()?, "%Y-%m-%d").ok()
}

/// Maps a `Sales Order` (with `items`); `party` is its customer as the
/// CRM links it; `placed_at` the transaction date's start at the site.
pub fn order(
    doc: &Doc,
    party: PartyRef,
    placed_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
) -> Order {
    let docstatus = doc.get("docstatus").and_then(Value::as_i64).unwrap_or(0);
    let status = if docstatus == 2 {
        Some("cancelled".to_string())
    } else {
        text(doc.get("status")).map(|s| s.to_lowercase())
    };
    let fulfillment_status = decimal(doc.get("per_delivered")).map(|p| {
        if p.is_zero() {
            "unfulfilled".to_string()
        } else if p >= Decimal::ONE_HUNDRED {
            "fulfilled".to_string()
        } else {
            "partial".to_string()
        }
    });
    let financial_status = decimal(doc.get("per_billed")).map(|p| {
        if p.is_zero() {
            "unbilled".to_string()
        } else if p >= Decimal::ONE_HUNDRED {
            "billed".to_string()
        } else {
            "partially_billed".to_string()
        }
    });
    let lines = rows(doc, "items")
        .into_iter()
        .map(|l| LineItem {
            sku: text(l.get("item_code")),
            description: text(l.get("item_name"))
                .or_else(|| text(l.get("description")))
                .or_else(|| text(l.get("item_code")))
                .unwrap_or_default(),
            quantity: decimal(l.get("qty")).unwrap_or_default(),
            unit_price: decimal(l.get("rate")).unwrap_or_default(),
            tax: None,
            total: decimal(l.get("amount")).unwrap_or_default(),
        })
        .collect();
    let mut custom = Map::new();
    for (field, key) in [
        ("customer", CUSTOMER_KEY),
        ("po_no", "erpnext_po_no"),
        ("delivery_date", "erpnext_delivery_date"),
        ("company", "erpnext_company"),
    ] {
        if let Some(v) = text(doc.get(field)) {
            custom.insert(key.into(), json!(v));
        }
    }
    if let Some(r) = decimal(doc.get("rounded_total")) {
        custom.insert("erpnext_rounded_total".into(), json!(r.to_string()));
    }
    Order {
        number: text(doc.get("name")),
        customer: Some(party),
        status,
        financial_status,
        fulfillment_status,
        currency: text(doc.get("currency")).unwrap_or_default(),
        lines,
        subtotal: decimal(doc.get("net_total")),
        tax_total: decimal(doc.get("total_taxes_and_charges")),
        total: decimal(doc.get("grand_total")).unwrap_or_default(),
        placed_at,
        updated_at,
        custom: custom.into_iter().collect(),
    }
}

/// The transaction date of a sales order.
pub fn transaction_date(doc: &Doc) -> Option<NaiveDate> {
    date(doc.get("transaction_date"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn doc(v: Value) -> Doc {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn cjk_names_keep_family_first_without_a_space() {
        let d = doc(json!({"first_name": "大文", "last_name": "陳", "full_name": "大文 陳"}));
        let c = contact(&d);
        assert_eq!(c.full_name.as_deref(), Some("陳大文"));
        assert_eq!(
            (c.given_name.as_deref(), c.family_name.as_deref()),
            (Some("大文"), Some("陳"))
        );
        let only = contact(&doc(json!({"first_name": "陳大文", "full_name": "陳大文"})));
        assert_eq!(only.full_name.as_deref(), Some("陳大文"));
        assert_eq!(only.given_name, None);
        let western = contact(&doc(
            json!({"first_name": "Jane", "last_name": "Doe", "full_name": "Jane Doe"}),
        ));
        assert_eq!(western.full_name.as_deref(), Some("Jane Doe"));
    }

    #[test]
    fn child_tables_map_primary_first_and_back() {
        let d = doc(json!({
            "first_name": "陳大文",
            "email_ids": [
                {"email_id": "other@example.hk", "is_primary": 0, "idx": 1},
                {"email_id": "tm.chan@example.hk", "is_primary": 1, "idx": 2}
            ],
            "phone_nos": [
                {"phone": "+852 2345 6789", "is_primary_phone": 0, "is_primary_mobile_no": 0, "idx": 1},
                {"phone": "+852 9123 4567", "is_primary_phone": 0, "is_primary_mobile_no": 1, "idx": 2}
            ]
        }));
        let c = contact(&d);
        assert_eq!(c.emails, vec!["tm.chan@example.hk", "other@example.hk"]);
        assert_eq!(c.phones, vec!["+852 9123 4567", "+852 2345 6789"]);
        let all: Vec<String> = ["emails", "phones"].iter().map(|s| s.to_string()).collect();
        let body = contact_body(&c, &all);
        assert_eq!(
            body["email_ids"][0],
            json!({"email_id": "tm.chan@example.hk", "is_primary": 1})
        );
        assert_eq!(body["phone_nos"][1]["phone"], json!("+852 2345 6789"));
        assert_eq!(body["phone_nos"][1]["is_primary_phone"], json!(0));
    }

    #[test]
    fn the_fixture_sales_order_maps_with_exact_money() {
        let text = include_str!("../tests/fixtures/sales_order.json");
        let v: Value = serde_json::from_str(text).expect("json");
        let d = doc(v["data"].clone());
        let o = order(&d, PartyRef::default(), None, None);
        assert_eq!(o.number.as_deref(), Some("SAL-ORD-2024-00042"));
        assert_eq!(o.total, dec!(10500));
        assert_eq!(o.tax_total, Some(dec!(500)));
        assert_eq!(o.lines.len(), 2);
        assert_eq!(o.lines[0].description, "凍頂烏龍茶 500g");
        assert_eq!(o.lines[0].unit_price, dec!(800));
        assert_eq!(o.status.as_deref(), Some("to deliver and bill"));
        assert_eq!(o.fulfillment_status.as_deref(), Some("unfulfilled"));
        assert_eq!(o.custom.get(CUSTOMER_KEY), Some(&json!("CUST-2024-00012")));
        assert_eq!(decimal(Some(&json!(0.1))), Some(dec!(0.1)));
    }
}
