//! Pure mapping between QuickBooks JSON (PascalCase) and the CRM model.
//!
//! Money: QuickBooks sends amounts as JSON numbers. serde_json (without
//! `arbitrary_precision`) holds them as f64 and prints them back in the
//! shortest form that round-trips, which is the decimal that was written
//! for any amount of up to 15 significant digits; that text is parsed into
//! a [`Decimal`], never computed on as a float.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use synchub_core::model::{Address, Contact, Invoice, LineItem, Order, PartyRef, Record};
use synchub_core::RemoteRecord;

/// Reads a money or quantity field as a decimal (number or numeric string).
pub fn decimal(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

/// Writes a decimal as a JSON number (QuickBooks wants numbers).
pub fn money(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0 {
        if let Some(i) = d.to_i64() {
            return json!(i);
        }
    }
    d.to_f64()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn nested(v: &Value, outer: &str, inner: &str) -> Option<String> {
    v.get(outer).and_then(|o| text(o, inner))
}

/// `MetaData.LastUpdatedTime` as UTC.
pub fn last_updated(v: &Value) -> Option<DateTime<Utc>> {
    v.get("MetaData")
        .and_then(|m| m.get("LastUpdatedTime"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn address(v: Option<&Value>) -> Option<Address> {
    let v = v?;
    let lines: Vec<String> = (1..=5)
        .filter_map(|i| text(v, &format!("Line{i}")))
        .collect();
    let a = Address {
        line1: lines.first().cloned(),
        line2: (lines.len() > 1).then(|| lines[1..].join(", ")),
        city: text(v, "City"),
        region: text(v, "CountrySubDivisionCode"),
        postal_code: text(v, "PostalCode"),
        country: text(v, "Country"),
    };
    (!a.is_empty()).then_some(a)
}

fn address_json(a: &Address) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    put("Line1", &a.line1);
    put("Line2", &a.line2);
    put("City", &a.city);
    put("CountrySubDivisionCode", &a.region);
    put("PostalCode", &a.postal_code);
    put("Country", &a.country);
    Value::Object(m)
}

/// A QuickBooks Customer as a CRM contact record. Inactive = deleted.
pub fn customer_to_remote(v: &Value) -> Result<RemoteRecord, String> {
    let id = text(v, "Id").ok_or("customer without Id")?;
    let active = v.get("Active").and_then(Value::as_bool).unwrap_or(true);
    let mut addresses = Vec::new();
    for key in ["BillAddr", "ShipAddr"] {
        if let Some(a) = address(v.get(key)) {
            if !addresses.contains(&a) {
                addresses.push(a);
            }
        }
    }
    let mut custom = std::collections::BTreeMap::new();
    if let Some(b) = decimal(v.get("Balance")) {
        custom.insert("qbo_balance".to_string(), json!(b.normalize().to_string()));
    }
    if let Some(c) = nested(v, "CurrencyRef", "value") {
        custom.insert("qbo_currency".to_string(), json!(c));
    }
    let contact = Contact {
        given_name: text(v, "GivenName"),
        family_name: text(v, "FamilyName"),
        full_name: text(v, "DisplayName"),
        emails: nested(v, "PrimaryEmailAddr", "Address")
            .into_iter()
            .collect(),
        phones: ["PrimaryPhone", "Mobile"]
            .iter()
            .filter_map(|k| nested(v, k, "FreeFormNumber"))
            .collect(),
        company: text(v, "CompanyName"),
        title: text(v, "Title"),
        addresses,
        custom,
        ..Contact::default()
    };
    Ok(RemoteRecord {
        external_id: id,
        version: text(v, "SyncToken"),
        updated_at: last_updated(v),
        deleted: !active || v.get("status").and_then(Value::as_str) == Some("Deleted"),
        record: Some(Record::Contact(contact)),
        raw: v.clone(),
    })
}

/// The DisplayName QuickBooks requires (unique across customers, vendors, employees).
pub fn display_name(c: &Contact) -> Option<String> {
    c.full_name
        .clone()
        .or_else(|| {
            let joined = [c.given_name.as_deref(), c.family_name.as_deref()]
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            (!joined.is_empty()).then_some(joined)
        })
        .or_else(|| c.company.clone())
        .or_else(|| c.emails.first().cloned())
}

/// The Customer fields for `fields` of `c` (all writable fields when `fields` is `None`).
pub fn contact_to_customer(c: &Contact, fields: Option<&[String]>) -> Map<String, Value> {
    let want = |f: &str| fields.is_none_or(|fs| fs.iter().any(|x| x == f));
    let mut m = Map::new();
    let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    if want("full_name") || want("given_name") || want("family_name") || fields.is_none() {
        if let Some(d) = display_name(c) {
            m.insert("DisplayName".into(), json!(d));
        }
    }
    if want("given_name") {
        m.insert("GivenName".into(), opt(&c.given_name));
    }
    if want("family_name") {
        m.insert("FamilyName".into(), opt(&c.family_name));
    }
    if want("company") {
        m.insert("CompanyName".into(), opt(&c.company));
    }
    if want("title") {
        m.insert("Title".into(), opt(&c.title));
    }
    if want("emails") {
        m.insert(
            "PrimaryEmailAddr".into(),
            c.emails
                .first()
                .map_or(Value::Null, |e| json!({ "Address": e })),
        );
    }
    if want("phones") {
        m.insert(
            "PrimaryPhone".into(),
            c.phones
                .first()
                .map_or(Value::Null, |p| json!({ "FreeFormNumber": p })),
        );
    }
    if want("addresses") {
        if let Some(a) = c.addresses.first() {
            m.insert("BillAddr".into(), address_json(a));
        }
    }
    m
}

/// The reference an order's invoice carries in `PrivateNote`, found again
/// after a crash even when the idempotency key is no longer known.
pub fn order_note(crm_id: &str) -> String {
    format!("synchub order {crm_id}")
}

/// Reads the CRM order id back from a `PrivateNote`.
pub fn order_from_note(note: &str) -> Option<String> {
    note.lines()
        .find_map(|l| l.trim().strip_prefix("synchub order "))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The `DocNumber` of an order's document: prefix, a dash and 16 hex digits
/// of sha-256(crm id); at most 21 characters, queryable, stable.
pub fn doc_number(prefix: &str, crm_id: &str) -> String {
    let digest = Sha256::digest(crm_id.as_bytes());
    format!("{prefix}-{}", &hex::encode(digest)[..16])
}

/// A `requestid` for a key (QuickBooks keeps them short: hashed beyond 50 characters).
pub fn request_id(key: &str) -> String {
    if key.len() <= 50 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        key.to_string()
    } else {
        hex::encode(&Sha256::digest(key.as_bytes())[..20])
    }
}

/// An Invoice or SalesReceipt (`entity`) as a CRM invoice; the balance and
/// payments flow back as `amount_due` and `status`.
pub fn txn_to_remote(entity: &str, v: &Value) -> Result<RemoteRecord, String> {
    let id = text(v, "Id").ok_or_else(|| format!("{entity} without Id"))?;
    if v.get("status").and_then(Value::as_str) == Some("Deleted") {
        return Ok(RemoteRecord {
            external_id: format!("{entity}:{id}"),
            version: None,
            updated_at: last_updated(v),
            deleted: true,
            record: None,
            raw: v.clone(),
        });
    }
    let total =
        decimal(v.get("TotalAmt")).ok_or_else(|| format!("{entity} {id} without TotalAmt"))?;
    let lines = v
        .get("Line")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter(|l| {
                    l.get("DetailType").and_then(Value::as_str) == Some("SalesItemLineDetail")
                })
                .map(|l| {
                    let d = l.get("SalesItemLineDetail").cloned().unwrap_or(Value::Null);
                    let amount = decimal(l.get("Amount")).unwrap_or_default();
                    LineItem {
                        sku: d.get("ItemRef").and_then(|r| text(r, "name")),
                        description: text(l, "Description")
                            .or_else(|| d.get("ItemRef").and_then(|r| text(r, "name")))
                            .unwrap_or_default(),
                        quantity: decimal(d.get("Qty")).unwrap_or(Decimal::ONE),
                        unit_price: decimal(d.get("UnitPrice")).unwrap_or(amount),
                        tax: None,
                        total: amount,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    // A SalesReceipt is paid at sale: it has no Balance.
    let due = if entity == "SalesReceipt" {
        Decimal::ZERO
    } else {
        decimal(v.get("Balance")).unwrap_or(total)
    };
    let status = if v
        .get("PrivateNote")
        .and_then(Value::as_str)
        .is_some_and(|n| n.contains("Voided"))
    {
        "voided"
    } else if due.is_zero() {
        "paid"
    } else if due < total {
        "partially_paid"
    } else {
        "open"
    };
    let date = |k: &str| text(v, k).and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
    let mut custom = std::collections::BTreeMap::new();
    custom.insert("qbo_entity".to_string(), json!(entity));
    if let Some(t) = decimal(v.get("TxnTaxDetail").and_then(|t| t.get("TotalTax"))) {
        custom.insert("tax_total".to_string(), json!(t.normalize().to_string()));
    }
    let invoice = Invoice {
        number: text(v, "DocNumber"),
        customer: v.get("CustomerRef").map(|r| PartyRef {
            external_id: text(r, "value"),
            name: text(r, "name"),
            email: nested(v, "BillEmail", "Address"),
            crm_id: None,
        }),
        order_crm_id: text(v, "PrivateNote").and_then(|n| order_from_note(&n)),
        status: Some(status.to_string()),
        currency: nested(v, "CurrencyRef", "value").unwrap_or_default(),
        lines,
        total,
        amount_due: Some(due),
        issued_on: date("TxnDate"),
        due_on: date("DueDate"),
        custom,
    };
    Ok(RemoteRecord {
        external_id: format!("{entity}:{id}"),
        version: text(v, "SyncToken"),
        updated_at: last_updated(v),
        deleted: false,
        record: Some(Record::Invoice(invoice)),
        raw: v.clone(),
    })
}

/// Splits `Invoice:130` into (`Invoice`, `130`).
pub fn split_txn_id(external_id: &str) -> Option<(&str, &str)> {
    let (e, id) = external_id.split_once(':')?;
    matches!(e, "Invoice" | "SalesReceipt").then_some((e, id))
}

/// The document an order becomes: a SalesReceipt when already paid, else an Invoice.
pub fn txn_entity_for(order: &Order) -> &'static str {
    if order
        .financial_status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("paid"))
    {
        "SalesReceipt"
    } else {
        "Invoice"
    }
}

/// The body of an order's Invoice or SalesReceipt. `items[i]` is the Item
/// (id, name) of `order.lines[i]`; `customer` the Customer id.
pub fn order_to_txn(
    order: &Order,
    crm_id: &str,
    doc_number: &str,
    customer_id: &str,
    items: &[(String, String)],
) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .zip(items)
        .enumerate()
        .map(|(i, (l, (item_id, item_name)))| {
            let taxed = l.tax.is_some_and(|t| !t.is_zero());
            json!({
                "LineNum": i + 1,
                "Description": l.description,
                "Amount": money(l.quantity * l.unit_price),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": item_id, "name": item_name},
                    "Qty": money(l.quantity),
                    "UnitPrice": money(l.unit_price),
                    "TaxCodeRef": {"value": if taxed { "TAX" } else { "NON" }},
                }
            })
        })
        .collect();
    let mut body = json!({
        "DocNumber": doc_number,
        "PrivateNote": order_note(crm_id),
        "CustomerRef": {"value": customer_id},
        "CurrencyRef": {"value": order.currency},
        "Line": lines,
    });
    if let Some(t) = order.placed_at {
        body["TxnDate"] = json!(t.date_naive().format("%Y-%m-%d").to_string());
    }
    // The order's own tax total overrides QuickBooks' computed tax (US
    // companies: TxnTaxDetail.TotalTax); zero tax sends nothing.
    if let Some(tax) = order.tax_total.filter(|t| !t.is_zero()) {
        body["TxnTaxDetail"] = json!({ "TotalTax": money(tax) });
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        serde_json::from_str(&text).expect("fixture json")
    }

    #[test]
    fn fixture_customers_map_to_contacts() {
        let v = fixture("query_customers.json");
        let list = v["QueryResponse"]["Customer"]
            .as_array()
            .expect("customers");
        let r = customer_to_remote(&list[0]).expect("maps");
        assert_eq!(r.external_id, "1");
        assert_eq!(r.version.as_deref(), Some("5"));
        assert!(!r.deleted);
        let Some(Record::Contact(c)) = r.record else {
            panic!("contact")
        };
        assert_eq!(c.full_name.as_deref(), Some("Amy's Bird Sanctuary"));
        assert_eq!(c.emails, vec!["Birds@Intuit.com".to_string()]);
        assert_eq!(c.custom["qbo_balance"], json!("274"));
        // Billing and shipping addresses are the same place: kept once.
        assert_eq!(c.addresses.len(), 1);
    }

    #[test]
    fn fixture_invoice_and_receipt_map_with_decimal_money() {
        let v = fixture("invoice.json");
        let r = txn_to_remote("Invoice", &v["Invoice"]).expect("invoice");
        assert_eq!(r.external_id, "Invoice:130");
        let Some(Record::Invoice(i)) = r.record else {
            panic!("invoice")
        };
        assert_eq!(i.total, dec!(100));
        assert_eq!(i.amount_due, Some(dec!(100)));
        assert_eq!(i.status.as_deref(), Some("open"));
        assert_eq!(i.lines.len(), 1, "the subtotal line is not a line item");
        let v = fixture("salesreceipt.json");
        let r = txn_to_remote("SalesReceipt", &v["SalesReceipt"]).expect("receipt");
        let Some(Record::Invoice(i)) = r.record else {
            panic!("invoice")
        };
        assert_eq!(i.total, dec!(110));
        assert_eq!(i.status.as_deref(), Some("paid"));
        assert_eq!(i.lines[0].quantity, dec!(2));
        assert_eq!(i.custom["tax_total"], json!("10"));
    }

    #[test]
    fn deleted_stub_from_cdc_is_a_deletion() {
        let v = fixture("cdc_response.json");
        let stub = &v["CDCResponse"][0]["QueryResponse"][2]["SalesReceipt"][0];
        let r = txn_to_remote("SalesReceipt", stub).expect("stub");
        assert!(r.deleted);
        assert_eq!(r.external_id, "SalesReceipt:11");
    }

    #[test]
    fn money_round_trips_exactly() {
        for d in [
            dec!(0.1),
            dec!(1234.10),
            dec!(19.99),
            dec!(1000000.01),
            dec!(3),
        ] {
            assert_eq!(decimal(Some(&money(d))), Some(d.normalize()));
        }
    }

    #[test]
    fn doc_number_fits_and_note_round_trips() {
        let d = doc_number("SH", "0b6f5d7e-9b1c-4a7f-8f0e-3c2d1b0a9f8e");
        assert!(d.len() <= 21, "{d}");
        assert_eq!(d, doc_number("SH", "0b6f5d7e-9b1c-4a7f-8f0e-3c2d1b0a9f8e"));
        assert_eq!(
            order_from_note(&order_note("ord-7")).as_deref(),
            Some("ord-7")
        );
        assert_eq!(request_id("abc-1"), "abc-1");
        assert!(request_id(&"x".repeat(80)).len() <= 50);
    }
}
