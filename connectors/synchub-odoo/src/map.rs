//! Odoo values ↔ the CRM model.
//!
//! Odoo conventions: an empty char/date/many2one field is JSON `false`;
//! a many2one is `[id, "display name"]`; datetimes are naive UTC strings
//! `YYYY-MM-DD HH:MM:SS`; monetary fields are JSON floats (parsed to
//! decimal from their printed form and rounded to the currency's places).

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use synchub_core::model::{Address, LineItem, PartyRef};
use synchub_core::{Company, Contact, Invoice, Order, Record};

/// The `res.partner` fields the connector reads.
pub const PARTNER_FIELDS: &[&str] = &[
    "id",
    "name",
    "is_company",
    "parent_id",
    "type",
    "email",
    "phone",
    "mobile",
    "function",
    "street",
    "street2",
    "city",
    "zip",
    "state_id",
    "country_id",
    "vat",
    "ref",
    "website",
    "active",
    "write_date",
];

/// The `sale.order` fields the connector reads.
pub const ORDER_FIELDS: &[&str] = &[
    "id",
    "name",
    "partner_id",
    "date_order",
    "state",
    "client_order_ref",
    "origin",
    "currency_id",
    "amount_untaxed",
    "amount_tax",
    "amount_total",
    "invoice_status",
    "order_line",
    "write_date",
];

/// The `sale.order.line` fields the connector reads.
pub const ORDER_LINE_FIELDS: &[&str] = &[
    "id",
    "order_id",
    "product_id",
    "name",
    "product_uom_qty",
    "price_unit",
    "price_subtotal",
    "price_tax",
    "price_total",
];

/// A text field: `false` and blank strings are absent.
pub fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A many2one `[id, "name"]`: the id, or `None` for `false`.
pub fn m2o_id(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Array(a)) => a.first().and_then(Value::as_i64),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// A many2one's display name.
pub fn m2o_name(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Array(a)) => text(a.get(1)),
        _ => None,
    }
}

/// An Odoo datetime (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC).
pub fn datetime(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v.and_then(Value::as_str)?;
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// An Odoo date (`YYYY-MM-DD`).
pub fn date(v: Option<&Value>) -> Option<NaiveDate> {
    let s = v.and_then(Value::as_str)?;
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// The Odoo text form of a time, for domains.
pub fn odoo_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A float field as decimal (from its printed form: `1200.1` stays exact),
/// rounded to `places`.
pub fn money(v: Option<&Value>, places: u32) -> Option<Decimal> {
    match v? {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok()
            .map(|d| d.round_dp(places).normalize()),
        _ => None,
    }
}

fn address_of(p: &Map<String, Value>) -> Option<Address> {
    let a = Address {
        line1: text(p.get("street")),
        line2: text(p.get("street2")),
        city: text(p.get("city")),
        region: m2o_name(p.get("state_id")),
        postal_code: text(p.get("zip")),
        country: m2o_name(p.get("country_id")),
    };
    (!a.is_empty()).then_some(a)
}

fn phones_of(p: &Map<String, Value>) -> Vec<String> {
    let mut phones = Vec::new();
    for k in ["phone", "mobile"] {
        if let Some(s) = text(p.get(k)) {
            if !phones.contains(&s) {
                phones.push(s);
            }
        }
    }
    phones
}

/// What a partner row is.
pub enum PartnerKind {
    /// `is_company = true`.
    Company(Company),
    /// A person.
    Contact(Contact),
}

/// Maps a `res.partner` row. Odoo keeps one phone and one mobile; the link
/// to the person's company (`parent_id`) is kept as the company's name and,
/// in `custom.odoo_parent_id`, its Odoo id.
pub fn partner(p: &Map<String, Value>) -> PartnerKind {
    let emails: Vec<String> = text(p.get("email")).into_iter().collect();
    let phones = phones_of(p);
    let addresses: Vec<Address> = address_of(p).into_iter().collect();
    let mut custom = Map::new();
    if let Some(r) = text(p.get("ref")) {
        custom.insert("odoo_ref".into(), json!(r));
    }
    if p.get("is_company").and_then(Value::as_bool) == Some(true) {
        PartnerKind::Company(Company {
            name: text(p.get("name")).unwrap_or_default(),
            domain: text(p.get("website")).map(|w| {
                w.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_start_matches("www.")
                    .trim_end_matches('/')
                    .to_string()
            }),
            emails,
            phones,
            addresses,
            tax_id: text(p.get("vat")),
            custom: custom.into_iter().collect(),
            ..Company::default()
        })
    } else {
        if let Some(parent) = m2o_id(p.get("parent_id")) {
            custom.insert("odoo_parent_id".into(), json!(parent.to_string()));
        }
        PartnerKind::Contact(Contact {
            full_name: text(p.get("name")),
            emails,
            phones,
            company: m2o_name(p.get("parent_id")),
            title: text(p.get("function")),
            addresses,
            custom: custom.into_iter().collect(),
            ..Contact::default()
        })
    }
}

/// The `res.partner` values for `fields` (CRM field names) of `record`;
/// `None` for fields the mapping does not write. The parent link is
/// resolved by the caller.
pub fn partner_values(record: &Record, fields: &[String]) -> Map<String, Value> {
    let mut vals = Map::new();
    let or_false = |s: Option<&String>| s.map_or(Value::Bool(false), |s| json!(s));
    let (emails, phones, addresses) = match record {
        Record::Contact(c) => (&c.emails, &c.phones, &c.addresses),
        Record::Company(c) => (&c.emails, &c.phones, &c.addresses),
        _ => return vals,
    };
    for f in fields {
        match (f.as_str(), record) {
            ("full_name" | "given_name" | "family_name", Record::Contact(c)) => {
                if let Some(n) = c.display_name() {
                    vals.insert("name".into(), json!(n));
                }
            }
            ("name", Record::Company(c)) => {
                vals.insert("name".into(), json!(c.name));
            }
            ("title", Record::Contact(c)) => {
                vals.insert("function".into(), or_false(c.title.as_ref()));
            }
            ("tax_id", Record::Company(c)) => {
                vals.insert("vat".into(), or_false(c.tax_id.as_ref()));
            }
            ("domain", Record::Company(c)) => {
                vals.insert("website".into(), or_false(c.domain.as_ref()));
            }
            ("emails", _) => {
                vals.insert("email".into(), or_false(emails.first()));
            }
            ("phones", _) => {
                vals.insert("phone".into(), or_false(phones.first()));
                vals.insert("mobile".into(), or_false(phones.get(1)));
            }
            ("addresses", _) => {
                let a = addresses.first().cloned().unwrap_or_default();
                vals.insert("street".into(), or_false(a.line1.as_ref()));
                vals.insert("street2".into(), or_false(a.line2.as_ref()));
                vals.insert("city".into(), or_false(a.city.as_ref()));
                vals.insert("zip".into(), or_false(a.postal_code.as_ref()));
            }
            _ => {}
        }
    }
    vals
}

/// Maps a `sale.order` row and its lines (already read).
pub fn order(o: &Map<String, Value>, lines: &[&Map<String, Value>]) -> Order {
    let currency = m2o_name(o.get("currency_id")).unwrap_or_default();
    let places = 2;
    let state = text(o.get("state")).map(|s| match s.as_str() {
        "draft" | "sent" => "open".to_string(),
        "sale" => "confirmed".to_string(),
        "done" => "closed".to_string(),
        "cancel" => "cancelled".to_string(),
        other => other.to_string(),
    });
    let mut custom = Map::new();
    for k in ["client_order_ref", "origin", "invoice_status"] {
        if let Some(v) = text(o.get(k)) {
            custom.insert(format!("odoo_{k}"), json!(v));
        }
    }
    Order {
        number: text(o.get("name")),
        customer: m2o_id(o.get("partner_id")).map(|id| PartyRef {
            external_id: Some(id.to_string()),
            name: m2o_name(o.get("partner_id")),
            ..PartyRef::default()
        }),
        status: state,
        currency,
        lines: lines.iter().map(|l| line(l, places)).collect(),
        subtotal: money(o.get("amount_untaxed"), places),
        tax_total: money(o.get("amount_tax"), places),
        total: money(o.get("amount_total"), places).unwrap_or_default(),
        placed_at: datetime(o.get("date_order")),
        updated_at: datetime(o.get("write_date")),
        custom: custom.into_iter().collect(),
        ..Order::default()
    }
}

fn line(l: &Map<String, Value>, places: u32) -> LineItem {
    LineItem {
        sku: None,
        description: text(l.get("name"))
            .or_else(|| m2o_name(l.get("product_id")))
            .unwrap_or_default(),
        quantity: money(l.get("product_uom_qty").or_else(|| l.get("quantity")), 6)
            .unwrap_or_default(),
        unit_price: money(l.get("price_unit"), places).unwrap_or_default(),
        tax: money(l.get("price_tax"), places),
        total: money(l.get("price_total"), places)
            .or_else(|| money(l.get("price_subtotal"), places))
            .unwrap_or_default(),
    }
}

/// The invoice model and its field names on one server generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceModel {
    /// `account.invoice` (≤ 12) or `account.move` (13+).
    pub model: &'static str,
    /// The type field: `type` (≤ 13) or `move_type` (14+).
    pub type_field: &'static str,
    /// The number field: `number` (≤ 12) or `name`.
    pub number: &'static str,
    /// `date_invoice` or `invoice_date`.
    pub date: &'static str,
    /// `date_due` or `invoice_date_due`.
    pub due: &'static str,
    /// `residual` or `amount_residual`.
    pub residual: &'static str,
    /// `invoice_origin` (13+) or `origin`.
    pub origin: &'static str,
    /// The line model.
    pub line_model: &'static str,
}

impl InvoiceModel {
    /// The invoice model of Odoo `major`.
    pub fn for_version(major: u32) -> Self {
        if major <= 12 {
            InvoiceModel {
                model: "account.invoice",
                type_field: "type",
                number: "number",
                date: "date_invoice",
                due: "date_due",
                residual: "residual",
                origin: "origin",
                line_model: "account.invoice.line",
            }
        } else {
            InvoiceModel {
                model: "account.move",
                type_field: if major == 13 { "type" } else { "move_type" },
                number: "name",
                date: "invoice_date",
                due: "invoice_date_due",
                residual: "amount_residual",
                origin: "invoice_origin",
                line_model: "account.move.line",
            }
        }
    }

    /// The fields read from an invoice.
    pub fn fields(&self) -> Vec<&'static str> {
        vec![
            "id",
            self.number,
            "partner_id",
            "state",
            "currency_id",
            "amount_total",
            self.residual,
            self.date,
            self.due,
            self.origin,
            self.type_field,
            "invoice_line_ids",
            "write_date",
        ]
    }

    /// Maps an invoice row and its lines.
    pub fn invoice(&self, i: &Map<String, Value>, lines: &[&Map<String, Value>]) -> Invoice {
        let places = 2;
        let mut custom = Map::new();
        if let Some(o) = text(i.get(self.origin)) {
            custom.insert("odoo_origin".into(), json!(o));
        }
        if let Some(t) = text(i.get(self.type_field)) {
            custom.insert("odoo_type".into(), json!(t));
        }
        Invoice {
            number: text(i.get(self.number)).filter(|n| n != "/"),
            customer: m2o_id(i.get("partner_id")).map(|id| PartyRef {
                external_id: Some(id.to_string()),
                name: m2o_name(i.get("partner_id")),
                ..PartyRef::default()
            }),
            order_crm_id: None,
            status: text(i.get("state")),
            currency: m2o_name(i.get("currency_id")).unwrap_or_default(),
            lines: lines.iter().map(|l| line(l, places)).collect(),
            total: money(i.get("amount_total"), places).unwrap_or_default(),
            amount_due: money(i.get(self.residual), places),
            issued_on: date(i.get(self.date)),
            due_on: date(i.get(self.due)),
            custom: custom.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn row(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn false_is_empty_and_many2one_is_split() {
        let p = row(json!({"id": 7, "name": "陳大文", "is_company": false,
            "parent_id": [3, "台灣茶業股份有限公司"], "email": false, "phone": "+886 2 2345 6789",
            "mobile": false, "street": false, "city": "台北市", "country_id": [208, "Taiwan"],
            "function": false, "write_date": "2026-11-22 11:53:43"}));
        let PartnerKind::Contact(c) = partner(&p) else {
            panic!("a person maps to a contact");
        };
        assert_eq!(c.full_name.as_deref(), Some("陳大文"));
        assert!(c.emails.is_empty());
        assert_eq!(c.phones, vec!["+886 2 2345 6789".to_string()]);
        assert_eq!(c.company.as_deref(), Some("台灣茶業股份有限公司"));
        assert_eq!(c.custom.get("odoo_parent_id"), Some(&json!("3")));
        assert_eq!(c.addresses[0].city.as_deref(), Some("台北市"));
        assert_eq!(c.addresses[0].line1, None);
        assert_eq!(
            datetime(p.get("write_date")).map(|t| t.timestamp()),
            Some(1_795_348_423)
        );
    }

    #[test]
    fn floats_become_exact_decimals() {
        assert_eq!(money(Some(&json!(1200.1)), 2), Some(dec!(1200.1)));
        assert_eq!(money(Some(&json!(0.1 + 0.2)), 2), Some(dec!(0.3)));
        assert_eq!(money(Some(&json!(false)), 2), None);
    }

    #[test]
    fn sparse_partner_values_clear_with_false() {
        let rec = Record::Contact(Contact {
            full_name: Some("王小明".into()),
            phones: vec!["+886912345678".into()],
            ..Contact::default()
        });
        let vals = partner_values(&rec, &["phones".to_string(), "emails".to_string()]);
        assert_eq!(vals.get("phone"), Some(&json!("+886912345678")));
        assert_eq!(vals.get("mobile"), Some(&json!(false)));
        assert_eq!(vals.get("email"), Some(&json!(false)));
        assert!(!vals.contains_key("name"));
    }

    #[test]
    fn the_invoice_model_follows_the_version() {
        assert_eq!(InvoiceModel::for_version(11).model, "account.invoice");
        assert_eq!(InvoiceModel::for_version(13).type_field, "type");
        assert_eq!(InvoiceModel::for_version(17).model, "account.move");
        assert_eq!(InvoiceModel::for_version(17).type_field, "move_type");
    }
}
