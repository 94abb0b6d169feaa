//! Pure mapping between Xero JSON and the CRM model. Dates come as
//! MS-JSON `/Date(1551399323399+0000)/` or ISO twins; money as JSON numbers,
//! read through their shortest decimal text into a [`Decimal`] (exact for
//! amounts of up to 15 significant digits), never computed on as floats.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use synchub_core::model::{Address, Contact, Invoice, LineItem, Order, PartyRef, Record};
use synchub_core::RemoteRecord;

/// A money field as a decimal.
pub fn decimal(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

/// A decimal as a JSON number.
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

/// Parses `/Date(1551399323399+0000)/` or an ISO time (UTC when no offset).
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let end = inner[1..].find(['+', '-']).map_or(inner.len(), |i| i + 1);
        let ms: i64 = inner[..end].parse().ok()?;
        return DateTime::from_timestamp_millis(ms);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Renders an MS-JSON date.
pub fn ms_date(t: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", t.timestamp_millis())
}

/// `UpdatedDateUTC` (or its string twin).
pub fn updated(v: &Value) -> Option<DateTime<Utc>> {
    v.get("UpdatedDateUTCString")
        .or_else(|| v.get("UpdatedDateUTC"))
        .and_then(Value::as_str)
        .and_then(parse_date)
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A Xero contact as a CRM contact; ARCHIVED (and GDPRREQUEST) = deleted.
pub fn contact_to_remote(v: &Value) -> Result<RemoteRecord, String> {
    let id = text(v, "ContactID").ok_or("contact without ContactID")?;
    let status = text(v, "ContactStatus").unwrap_or_else(|| "ACTIVE".into());
    let addresses = v
        .get("Addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| Address {
                    line1: text(x, "AddressLine1"),
                    line2: text(x, "AddressLine2"),
                    city: text(x, "City"),
                    region: text(x, "Region"),
                    postal_code: text(x, "PostalCode"),
                    country: text(x, "Country"),
                })
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let phones = v
        .get("Phones")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let n = text(p, "PhoneNumber")?;
                    let parts = [
                        text(p, "PhoneCountryCode"),
                        text(p, "PhoneAreaCode"),
                        Some(n),
                    ];
                    Some(parts.into_iter().flatten().collect::<Vec<_>>().join(" "))
                })
                .collect()
        })
        .unwrap_or_default();
    let contact = Contact {
        given_name: text(v, "FirstName"),
        family_name: text(v, "LastName"),
        full_name: text(v, "Name"),
        emails: text(v, "EmailAddress").into_iter().collect(),
        phones,
        addresses,
        ..Contact::default()
    };
    Ok(RemoteRecord {
        external_id: id,
        version: v
            .get("UpdatedDateUTC")
            .and_then(Value::as_str)
            .map(str::to_string),
        updated_at: updated(v),
        deleted: status != "ACTIVE",
        record: Some(Record::Contact(contact)),
        raw: v.clone(),
    })
}

/// The Name Xero requires (unique among active contacts).
pub fn contact_name(c: &Contact) -> Option<String> {
    c.full_name
        .clone()
        .or_else(|| {
            let j = [c.given_name.as_deref(), c.family_name.as_deref()]
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            (!j.is_empty()).then_some(j)
        })
        .or_else(|| c.company.clone())
        .or_else(|| c.emails.first().cloned())
}

/// A CRM contact as a Xero contact body (without `ContactID`).
pub fn contact_body(c: &Contact) -> Value {
    let mut b = json!({});
    if let Some(n) = contact_name(c) {
        b["Name"] = json!(n);
    }
    if let Some(g) = &c.given_name {
        b["FirstName"] = json!(g);
    }
    if let Some(f) = &c.family_name {
        b["LastName"] = json!(f);
    }
    if let Some(e) = c.emails.first() {
        b["EmailAddress"] = json!(e);
    }
    if let Some(p) = c.phones.first() {
        b["Phones"] = json!([{"PhoneType": "DEFAULT", "PhoneNumber": p}]);
    }
    if let Some(a) = c.addresses.first() {
        b["Addresses"] = json!([{"AddressType": "STREET", "AddressLine1": a.line1, "AddressLine2": a.line2,
            "City": a.city, "Region": a.region, "PostalCode": a.postal_code, "Country": a.country}]);
    }
    b
}

/// The `Reference` an order's invoice carries: found again after a crash.
pub fn order_reference(crm_id: &str) -> String {
    format!("synchub order {crm_id}")
}

/// A Xero invoice as a CRM invoice; payments come back as `amount_due` and `status`.
pub fn invoice_to_remote(v: &Value) -> Result<RemoteRecord, String> {
    let id = text(v, "InvoiceID").ok_or("invoice without InvoiceID")?;
    let total = decimal(v.get("Total")).ok_or_else(|| format!("invoice {id} without Total"))?;
    let status = text(v, "Status").unwrap_or_default().to_ascii_lowercase();
    let date = |k: &str| {
        text(v, &format!("{k}String"))
            .and_then(|s| NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
            .or_else(|| {
                text(v, k)
                    .and_then(|s| parse_date(&s))
                    .map(|t| t.date_naive())
            })
    };
    let lines = v
        .get("LineItems")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| LineItem {
                    sku: text(l, "ItemCode"),
                    description: text(l, "Description").unwrap_or_default(),
                    quantity: decimal(l.get("Quantity")).unwrap_or(Decimal::ONE),
                    unit_price: decimal(l.get("UnitAmount")).unwrap_or_default(),
                    tax: decimal(l.get("TaxAmount")),
                    total: decimal(l.get("LineAmount")).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let reference = text(v, "Reference").unwrap_or_default();
    let invoice = Invoice {
        number: text(v, "InvoiceNumber"),
        customer: v.get("Contact").map(|c| PartyRef {
            external_id: text(c, "ContactID"),
            name: text(c, "Name"),
            ..PartyRef::default()
        }),
        order_crm_id: reference.strip_prefix("synchub order ").map(str::to_string),
        status: Some(status.clone()),
        currency: text(v, "CurrencyCode").unwrap_or_default(),
        lines,
        total,
        amount_due: decimal(v.get("AmountDue")),
        issued_on: date("Date"),
        due_on: date("DueDate"),
        custom: Default::default(),
    };
    Ok(RemoteRecord {
        external_id: id,
        version: v
            .get("UpdatedDateUTC")
            .and_then(Value::as_str)
            .map(str::to_string),
        updated_at: updated(v),
        deleted: matches!(status.as_str(), "deleted" | "voided"),
        record: Some(Record::Invoice(invoice)),
        raw: v.clone(),
    })
}

/// An order as an ACCREC invoice body, AUTHORISED, lines exclusive of tax.
pub fn order_to_invoice(order: &Order, crm_id: &str, contact_id: &str, account: &str) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let mut line = json!({
                "Description": l.description,
                "Quantity": money(l.quantity),
                "UnitAmount": money(l.unit_price),
                "AccountCode": account,
            });
            if let Some(s) = &l.sku {
                line["ItemCode"] = json!(s);
            }
            if let Some(t) = l.tax {
                line["TaxAmount"] = money(t);
            }
            line
        })
        .collect();
    let mut b = json!({
        "Type": "ACCREC",
        "Contact": {"ContactID": contact_id},
        "Reference": order_reference(crm_id),
        "CurrencyCode": order.currency,
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "LineItems": lines,
    });
    if let Some(t) = order.placed_at {
        b["Date"] = json!(t.date_naive().format("%Y-%m-%d").to_string());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    #[test]
    fn ms_dates_parse() {
        let t = parse_date("/Date(1503348544227+0000)/").expect("date");
        assert_eq!(t.timestamp_millis(), 1_503_348_544_227);
        assert_eq!(parse_date(&ms_date(t)), Some(t));
        assert!(parse_date("2018-11-02T16:31:30Z").is_some());
        assert!(parse_date("2024-06-21T01:15:39.902").is_some());
    }

    #[test]
    fn fixture_contacts_and_invoices_map() {
        let v = fixture("contacts_page.json");
        let r = contact_to_remote(&v["Contacts"][0]).expect("contact");
        assert!(!r.deleted);
        let Some(Record::Contact(c)) = r.record else {
            panic!("contact")
        };
        assert_eq!(c.emails, vec!["kat.warren@clampett.com".to_string()]);
        assert_eq!(c.phones, vec!["(626) 847-1294".to_string()]);
        let v = fixture("invoices_page.json");
        let r = invoice_to_remote(&v["Invoices"][1]).expect("invoice");
        let Some(Record::Invoice(i)) = r.record else {
            panic!("invoice")
        };
        assert_eq!(i.amount_due, Some(dec!(0)));
        assert_eq!(i.status.as_deref(), Some("paid"));
        let voided = invoice_to_remote(&v["Invoices"][0]).expect("voided");
        assert!(voided.deleted);
    }
}
