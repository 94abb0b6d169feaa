//! The site's documents and what saving them does: naming, defaults,
//! derived fields, validation, child rows, deletion into `Deleted Document`,
//! and the list endpoint's answer; v1 error bodies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, Duration, FixedOffset, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::query::{self, matches, parse_filters, parse_order, project, sort};
use super::API_USER;

const TIME: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// The columns each DocType has (besides the standard ones); a key outside
/// them is dropped on save, and a filter on one is refused.
pub(super) fn schema(doctype: &str) -> &'static [&'static str] {
    match doctype {
        "Customer" => &[
            "naming_series",
            "customer_name",
            "customer_type",
            "customer_group",
            "territory",
            "tax_id",
            "default_currency",
            "customer_primary_contact",
            "customer_primary_address",
            "mobile_no",
            "email_id",
            "disabled",
            "customer_details",
            "website",
        ],
        "Contact" => &[
            "first_name",
            "middle_name",
            "last_name",
            "full_name",
            "email_id",
            "mobile_no",
            "phone",
            "company_name",
            "designation",
            "status",
            "unsubscribed",
            "is_primary_contact",
            "email_ids",
            "phone_nos",
            "links",
        ],
        "Address" => &[
            "address_title",
            "address_type",
            "address_line1",
            "address_line2",
            "city",
            "state",
            "pincode",
            "country",
            "email_id",
            "phone",
            "disabled",
            "is_primary_address",
            "links",
        ],
        "Sales Order" => &[
            "naming_series",
            "customer",
            "customer_name",
            "order_type",
            "transaction_date",
            "delivery_date",
            "po_no",
            "company",
            "currency",
            "conversion_rate",
            "selling_price_list",
            "price_list_currency",
            "total_qty",
            "total",
            "net_total",
            "total_taxes_and_charges",
            "grand_total",
            "rounding_adjustment",
            "rounded_total",
            "status",
            "per_delivered",
            "per_billed",
            "contact_person",
            "contact_email",
            "items",
            "taxes",
        ],
        "Deleted Document" => &[
            "deleted_doctype",
            "deleted_name",
            "data",
            "restored",
            "new_name",
        ],
        _ => &[],
    }
}

const STANDARD: &[&str] = &[
    "name",
    "owner",
    "creation",
    "modified",
    "modified_by",
    "docstatus",
    "idx",
];

/// The child DocType of a table field.
fn child_doctype(doctype: &str, field: &str) -> Option<&'static str> {
    match (doctype, field) {
        ("Contact", "email_ids") => Some("Contact Email"),
        ("Contact", "phone_nos") => Some("Contact Phone"),
        ("Contact" | "Address", "links") => Some("Dynamic Link"),
        ("Sales Order", "items") => Some("Sales Order Item"),
        ("Sales Order", "taxes") => Some("Sales Taxes and Charges"),
        _ => None,
    }
}

/// Faults to produce.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// The next request answers 429 with `Retry-After` of this many seconds.
    pub throttle_next: Option<u64>,
    /// Every request answers 503.
    pub down: bool,
    /// The next create is saved, then answered 502.
    pub lose_next_write: bool,
}

/// The state of the site.
#[derive(Debug)]
pub struct SiteState {
    /// Documents by DocType, in insertion order.
    pub docs: BTreeMap<String, Vec<Map<String, Value>>>,
    /// The accepted API key and secret.
    pub api_key: String,
    /// The accepted API secret.
    pub api_secret: String,
    /// DocTypes the API user may not read or write (403).
    pub denied: BTreeSet<String>,
    /// Custom fields added with Customize Form, by DocType.
    pub custom_fields: BTreeMap<String, Vec<String>>,
    /// Faults to produce.
    pub faults: Faults,
    /// Requests served.
    pub requests: u64,
    /// Write requests served (POST, PUT, DELETE).
    pub writes: u64,
    offset: FixedOffset,
    last: Option<NaiveDateTime>,
    series: HashMap<String, u64>,
    hashes: u64,
}

impl SiteState {
    /// An empty site at `offset` accepting `api_key` / `api_secret`, with
    /// the custom field `synchub_key` on Customer and Contact.
    pub fn new(offset: FixedOffset, api_key: &str, api_secret: &str) -> Self {
        SiteState {
            docs: BTreeMap::new(),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            denied: BTreeSet::new(),
            custom_fields: BTreeMap::from([
                ("Customer".to_string(), vec!["synchub_key".to_string()]),
                ("Contact".to_string(), vec!["synchub_key".to_string()]),
            ]),
            faults: Faults::default(),
            requests: 0,
            writes: 0,
            offset,
            last: None,
            series: HashMap::new(),
            hashes: 0,
        }
    }

    /// The site's clock: naive local time, strictly increasing.
    pub fn now(&mut self) -> NaiveDateTime {
        #[allow(clippy::disallowed_methods)]
        let now =
            (Utc::now() + Duration::seconds(i64::from(self.offset.local_minus_utc()))).naive_utc();
        let t = match self.last {
            Some(l) if l >= now => l + Duration::microseconds(1),
            _ => now,
        };
        self.last = Some(t);
        t
    }

    fn hash(&mut self) -> String {
        self.hashes += 1;
        format!(
            "{:010x}",
            self.hashes.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24
        )
    }

    fn columns(&self, doctype: &str) -> Vec<String> {
        let mut c: Vec<String> = STANDARD
            .iter()
            .chain(schema(doctype))
            .map(|s| s.to_string())
            .collect();
        c.extend(self.custom_fields.get(doctype).cloned().unwrap_or_default());
        c
    }

    /// One document.
    pub fn doc(&self, doctype: &str, name: &str) -> Option<&Map<String, Value>> {
        self.docs
            .get(doctype)?
            .iter()
            .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
    }

    /// Live documents of a DocType.
    pub fn count(&self, doctype: &str) -> usize {
        self.docs.get(doctype).map_or(0, Vec::len)
    }

    /// Inserts as the desk would (naming, defaults, validation); the saved
    /// document or the Frappe error.
    pub fn insert(
        &mut self,
        doctype: &str,
        body: Map<String, Value>,
    ) -> Result<Map<String, Value>, Box<Response>> {
        let now = self.now();
        let mut doc = self.clean(doctype, body);
        self.derive(doctype, &mut doc);
        self.validate(doctype, &doc)?;
        let name = match doc.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => self.autoname(doctype, &doc, now),
        };
        if self.doc(doctype, &name).is_some() {
            return Err(Box::new(error(
                409,
                "DuplicateEntryError",
                &format!("{doctype} {name} already exists"),
                "Message",
            )));
        }
        let stamp = json!(now.format(TIME).to_string());
        doc.insert("name".into(), json!(name));
        doc.insert("owner".into(), json!(API_USER));
        doc.insert("creation".into(), stamp.clone());
        doc.insert("modified".into(), stamp.clone());
        doc.insert("modified_by".into(), json!(API_USER));
        doc.entry("docstatus").or_insert(json!(0));
        doc.entry("idx").or_insert(json!(0));
        doc.insert("doctype".into(), json!(doctype));
        self.stamp_children(doctype, &name, &mut doc, &stamp, &BTreeMap::new());
        self.docs
            .entry(doctype.to_string())
            .or_default()
            .push(doc.clone());
        Ok(doc)
    }

    /// Updates as `PUT` does: sparse fields, child tables replaced, the
    /// `modified` sent compared with the stored one.
    pub fn update(
        &mut self,
        doctype: &str,
        name: &str,
        body: Map<String, Value>,
    ) -> Result<Map<String, Value>, Box<Response>> {
        let Some(mut doc) = self.doc(doctype, name).cloned() else {
            return Err(Box::new(not_found(doctype, name)));
        };
        if let Some(sent) = body.get("modified").and_then(Value::as_str) {
            let stored = doc
                .get("modified")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if query::compare(&json!(sent), &json!(stored)) != std::cmp::Ordering::Equal {
                // frappe/model/document.py check_if_latest
                return Err(Box::new(error(
                    417,
                    "TimestampMismatchError",
                    &format!(
                        "Error: Document has been modified after you have opened it ({stored}, {sent}). Please refresh to get the latest document."
                    ),
                    "Message",
                )));
            }
        }
        let old_rows: BTreeMap<String, Value> = doc
            .values()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|r| Some((r.get("name")?.as_str()?.to_string(), r.clone())))
            .collect();
        for (k, v) in self.clean(doctype, body) {
            if !matches!(
                k.as_str(),
                "name" | "owner" | "creation" | "modified" | "modified_by" | "doctype"
            ) {
                doc.insert(k, v);
            }
        }
        self.derive(doctype, &mut doc);
        self.validate(doctype, &doc)?;
        let stamp = json!(self.now().format(TIME).to_string());
        doc.insert("modified".into(), stamp.clone());
        doc.insert("modified_by".into(), json!(API_USER));
        self.stamp_children(doctype, name, &mut doc, &stamp, &old_rows);
        if let Some(slot) = self.docs.get_mut(doctype).and_then(|v| {
            v.iter_mut()
                .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
        }) {
            *slot = doc.clone();
        }
        Ok(doc)
    }

    /// Deletes, keeping a `Deleted Document` as Frappe does.
    pub fn delete(&mut self, doctype: &str, name: &str) -> Result<(), Box<Response>> {
        let Some(list) = self.docs.get_mut(doctype) else {
            return Err(Box::new(not_found(doctype, name)));
        };
        let Some(i) = list
            .iter()
            .position(|d| d.get("name").and_then(Value::as_str) == Some(name))
        else {
            return Err(Box::new(not_found(doctype, name)));
        };
        let doc = list.remove(i);
        let stamp = json!(self.now().format(TIME).to_string());
        let id = self.hash();
        let data = Value::Object(doc).to_string();
        self.docs
            .entry("Deleted Document".into())
            .or_default()
            .push(obj(
                json!({"name": id, "owner": API_USER, "creation": stamp, "modified": stamp,
                "modified_by": API_USER, "docstatus": 0, "idx": 0, "deleted_doctype": doctype,
                "deleted_name": name, "restored": 0, "data": data, "doctype": "Deleted Document"}),
            ));
        Ok(())
    }

    /// Keeps only the DocType's columns (Frappe ignores other keys).
    fn clean(&self, doctype: &str, body: Map<String, Value>) -> Map<String, Value> {
        let cols = self.columns(doctype);
        body.into_iter()
            .filter(|(k, _)| cols.iter().any(|c| c == k))
            .collect()
    }

    fn derive(&self, doctype: &str, doc: &mut Map<String, Value>) {
        if doctype != "Contact" {
            return;
        }
        let part = |k: &str| {
            doc.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let full: Vec<String> = ["first_name", "middle_name", "last_name"]
            .iter()
            .filter_map(|k| part(k))
            .collect();
        doc.insert("full_name".into(), json!(full.join(" ")));
        let rows = |t: &str| -> Vec<Map<String, Value>> {
            doc.get(t)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
                .unwrap_or_default()
        };
        let flag = |r: &Map<String, Value>, k: &str| r.get(k).and_then(Value::as_i64) == Some(1);
        let pick = |rows: &[Map<String, Value>], k: &str, f: &str| {
            rows.iter()
                .find(|r| flag(r, k))
                .and_then(|r| r.get(f).cloned())
                .unwrap_or(json!(""))
        };
        let emails = rows("email_ids");
        let phones = rows("phone_nos");
        doc.insert("email_id".into(), pick(&emails, "is_primary", "email_id"));
        doc.insert("phone".into(), pick(&phones, "is_primary_phone", "phone"));
        doc.insert(
            "mobile_no".into(),
            pick(&phones, "is_primary_mobile_no", "phone"),
        );
    }

    fn validate(&self, doctype: &str, doc: &Map<String, Value>) -> Result<(), Box<Response>> {
        let empty = |k: &str| {
            doc.get(k)
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
        };
        let mandatory: &[(&str, &str)] = match doctype {
            "Customer" => &[("customer_name", "Customer Name")],
            "Contact" => &[("first_name", "First Name")],
            "Sales Order" => &[("customer", "Customer")],
            _ => &[],
        };
        for (field, label) in mandatory {
            if empty(field) {
                return Err(Box::new(error(
                    417,
                    "MandatoryError",
                    &format!("Error: Value missing for {doctype}: {label}"),
                    "Missing Values Required",
                )));
            }
        }
        if doctype == "Contact" {
            for r in doc
                .get("email_ids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let e = r
                    .get("email_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !valid_email(e) {
                    return Err(Box::new(error(
                        417,
                        "InvalidEmailAddressError",
                        &format!("{e} is not a valid Email Address"),
                        "Invalid Email Address",
                    )));
                }
            }
            for r in doc
                .get("links")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let dt = r
                    .get("link_doctype")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let n = r
                    .get("link_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if self.doc(dt, n).is_none() {
                    return Err(Box::new(error(
                        417,
                        "LinkValidationError",
                        &format!("Could not find Row #1: Link Name: {n}"),
                        "Message",
                    )));
                }
            }
        }
        if doctype == "Customer" {
            let t = doc
                .get("customer_type")
                .and_then(Value::as_str)
                .unwrap_or("Company");
            if !["Company", "Individual", "Proprietorship", "Partnership"].contains(&t) {
                return Err(Box::new(error(
                    417,
                    "ValidationError",
                    &format!("Customer Type cannot be \"{t}\". It should be one of \"Company\", \"Individual\""),
                    "Message",
                )));
            }
        }
        Ok(())
    }

    fn autoname(&mut self, doctype: &str, doc: &Map<String, Value>, now: NaiveDateTime) -> String {
        let mut series = |prefix: &str| {
            let key = format!("{prefix}{}", now.year());
            let n = self.series.entry(key.clone()).or_insert(0);
            *n += 1;
            format!("{prefix}{}-{:05}", now.year(), n)
        };
        match doctype {
            "Customer" => series("CUST-"),
            "Sales Order" => series("SAL-ORD-"),
            "Contact" => {
                let full = doc
                    .get("full_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let link = doc
                    .get("links")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(|l| l.get("link_name"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let base = match link {
                    Some(l) => format!("{full}-{l}"),
                    None => full,
                };
                let mut name = base.clone();
                let mut i = 0;
                while self.doc(doctype, &name).is_some() {
                    i += 1;
                    name = format!("{base}-{i}");
                }
                name
            }
            _ => self.hash(),
        }
    }

    fn stamp_children(
        &mut self,
        doctype: &str,
        parent: &str,
        doc: &mut Map<String, Value>,
        stamp: &Value,
        old: &BTreeMap<String, Value>,
    ) {
        let fields: Vec<String> = doc
            .keys()
            .filter(|k| child_doctype(doctype, k).is_some())
            .cloned()
            .collect();
        for field in fields {
            let Some(child) = child_doctype(doctype, &field) else {
                continue;
            };
            let rows = doc
                .get(&field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut out = Vec::new();
            for (i, row) in rows.into_iter().enumerate() {
                let mut r = row.as_object().cloned().unwrap_or_default();
                let keep = r
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|n| old.get(n))
                    .cloned();
                let (name, creation) = match keep {
                    Some(o) => (o["name"].clone(), o["creation"].clone()),
                    None => (json!(self.hash()), stamp.clone()),
                };
                r.insert("name".into(), name);
                r.insert("owner".into(), json!(API_USER));
                r.insert("creation".into(), creation);
                r.insert("modified".into(), stamp.clone());
                r.insert(
                    "docstatus".into(),
                    doc.get("docstatus").cloned().unwrap_or(json!(0)),
                );
                r.insert("idx".into(), json!(i + 1));
                r.insert("parent".into(), json!(parent));
                r.insert("parentfield".into(), json!(field));
                r.insert("parenttype".into(), json!(doctype));
                r.insert("doctype".into(), json!(child));
                out.push(Value::Object(r));
            }
            doc.insert(field, Value::Array(out));
        }
    }

    /// The list endpoint's answer.
    pub(super) fn list(
        &self,
        doctype: &str,
        q: &HashMap<String, String>,
    ) -> Result<Value, Box<Response>> {
        let bad = |m: String| Box::new(error(417, "ValidationError", &m, "Message"));
        let json_param = |k: &str| -> Result<Value, Box<Response>> {
            match q.get(k) {
                None => Ok(Value::Null),
                Some(s) => {
                    serde_json::from_str(s).map_err(|e| bad(format!("`{k}` is not JSON: {e}")))
                }
            }
        };
        let fields: Vec<String> = match json_param("fields")? {
            Value::Null => vec!["name".into()],
            Value::Array(a) => a
                .iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect(),
            other => return Err(bad(format!("`fields` must be a list: {other}"))),
        };
        let filters = parse_filters(&json_param("filters")?, doctype).map_err(bad)?;
        let or_filters = parse_filters(&json_param("or_filters")?, doctype).map_err(bad)?;
        let cols = self.columns(doctype);
        for f in filters
            .iter()
            .chain(&or_filters)
            .filter(|f| f.child.is_none())
        {
            if !cols.contains(&f.field) {
                // MariaDB refuses the query; Frappe answers 500.
                return Err(Box::new(error(
                    500,
                    "OperationalError",
                    &format!(
                        "(1054, \"Unknown column 'tab{doctype}.{}' in 'where clause'\")",
                        f.field
                    ),
                    "Message",
                )));
            }
        }
        let order = parse_order(q.get("order_by").map_or("modified desc", String::as_str));
        let start: usize = q
            .get("limit_start")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length: usize = q
            .get("limit_page_length")
            .or_else(|| q.get("limit"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        let empty = Vec::new();
        let mut rows: Vec<&Map<String, Value>> = self
            .docs
            .get(doctype)
            .unwrap_or(&empty)
            .iter()
            .filter(|d| filters.iter().all(|f| matches(d, f)))
            .filter(|d| or_filters.is_empty() || or_filters.iter().any(|f| matches(d, f)))
            .collect();
        sort(&mut rows, &order);
        let take = if length == 0 { usize::MAX } else { length };
        let data: Vec<Value> = rows
            .into_iter()
            .skip(start)
            .take(take)
            .map(|d| project(d, &fields))
            .collect();
        Ok(json!({"data": data}))
    }
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !e.contains(char::is_whitespace)
}

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A v1 error body as `frappe/utils/response.py` `report_error` writes it.
pub fn error(status: u16, exc_type: &str, message: &str, title: &str) -> Response {
    let inner = format!(
        "{{\"message\": {}, \"title\": {}, \"indicator\": \"red\", \"raise_exception\": 1}}",
        Value::String(message.into()),
        Value::String(title.into())
    );
    let server = Value::Array(vec![Value::String(inner)]).to_string();
    let mut body = json!({"exc_type": exc_type, "_server_messages": server});
    if status != 404 {
        body["exception"] = json!(format!("frappe.exceptions.{exc_type}: {message}"));
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

pub(super) fn not_found(doctype: &str, name: &str) -> Response {
    error(
        404,
        "DoesNotExistError",
        &format!("{doctype} {name} not found"),
        "Message",
    )
}
