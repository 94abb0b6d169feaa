//! The Tryton connector: parties two-way, sales and invoices pulled, shop
//! orders pushed as sales exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use synchub_core::connector::{
    Change, ChangeOp, Cursor, ObjectKind, ObjectSpec, Page, PushOutcome, Refusal, RemoteRecord,
    Written,
};
use synchub_core::model::{Address, LineItem, PartyRef};
pub use synchub_core::watermark::{admit_in_pass, decode_ids, encode_ids, end_pass};
use synchub_core::{Connector, ConnectorError, Contact, Invoice, Order, Record, Watermark};
use synchub_http::oauth::SharedClock;
use synchub_http::secret::expand_env;
use synchub_http::{Built, ConnectorFactory, Deps, HttpClient, QuotaConfig};

use crate::rpc::{self, CallError, FaultKind, TrytonPolicy, TrytonRpc};

/// The `config` table of a `tryton` connection.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrytonConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    /// The database name.
    pub database: String,
    /// The user's login.
    pub login: String,
    /// The password (`${VAR}` references are expanded).
    pub password: SecretString,
    /// Records per request (1–1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Seconds each incremental pass looks back before the watermark.
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u32,
    /// Shop orders are written to Tryton as sales.
    #[serde(default)]
    pub push_orders: bool,
}

fn default_page_size() -> u32 {
    200
}

fn default_overlap() -> u32 {
    300
}

/// The `tryton` connector kind.
pub struct TrytonFactory;

impl ConnectorFactory for TrytonFactory {
    const KIND: &'static str = "tryton";
    type Config = TrytonConfig;

    fn build(config: TrytonConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        Ok(Built::connector(Arc::new(TrytonConnector::new(
            config, deps,
        )?)))
    }
}

/// A connection to one Tryton database.
pub struct TrytonConnector {
    rpc: TrytonRpc,
    page_size: u32,
    overlap: Duration,
    push_orders: bool,
    clock: SharedClock,
}

/// The stream cursor: the watermark, and the ids the stream held at the end
/// of the last pass (Tryton deletes hard: a vanished id is a deletion).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrytonCursor {
    /// The `last_modified_at` watermark.
    pub wm: Watermark,
    /// Ids present at the end of the last pass, as ranges `1-5,8`.
    #[serde(default)]
    pub known: Option<String>,
}

enum PushError {
    Refused(Refusal),
    Fatal(ConnectorError),
}

impl From<ConnectorError> for PushError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::Auth { .. }
            | ConnectorError::Config(_)
            | ConnectorError::Cancelled(_) => PushError::Fatal(e),
            other => PushError::Refused(Refusal::from_error(&other)),
        }
    }
}

const PARTY_FIELDS: &[&str] = &[
    "id",
    "name",
    "code",
    "_timestamp",
    "last_modified_at",
    "active",
];
const SALE_FIELDS: &[&str] = &[
    "id",
    "number",
    "reference",
    "state",
    "party",
    "party.name",
    "total_amount",
    "untaxed_amount",
    "tax_amount",
    "currency.code",
    "sale_date",
    "last_modified_at",
    "description",
];
const INVOICE_FIELDS: &[&str] = &[
    "id",
    "number",
    "reference",
    "state",
    "party",
    "party.name",
    "total_amount",
    "amount_to_pay",
    "currency.code",
    "invoice_date",
    "last_modified_at",
    "type",
];

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parse_token(token: &str) -> Option<(i64, DateTime<Utc>)> {
    let (id, until) = token.split_once('@')?;
    let until = DateTime::parse_from_rfc3339(until)
        .ok()?
        .with_timezone(&Utc);
    Some((id.parse().ok()?, until))
}

fn rows(v: Value) -> Vec<Map<String, Value>> {
    match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|r| match r {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn party_record(
    p: &Map<String, Value>,
    mechs: &[&Map<String, Value>],
    addrs: &[&Map<String, Value>],
) -> Contact {
    let mut emails = Vec::new();
    let mut phones = Vec::new();
    for m in mechs {
        let Some(value) = text(m.get("value")) else {
            continue;
        };
        match m.get("type").and_then(Value::as_str) {
            Some("email") => emails.push(value),
            Some("phone" | "mobile") => phones.push(value),
            _ => {}
        }
    }
    let addresses = addrs
        .iter()
        .map(|a| Address {
            line1: text(a.get("street")),
            city: text(a.get("city")),
            postal_code: text(a.get("postal_code")),
            ..Address::default()
        })
        .filter(|a| !a.is_empty())
        .collect();
    let mut custom = BTreeMap::new();
    if let Some(code) = text(p.get("code")) {
        custom.insert("tryton_code".to_string(), json!(code));
    }
    Contact {
        full_name: text(p.get("name")),
        emails,
        phones,
        addresses,
        custom,
        ..Contact::default()
    }
}

fn line_of(l: &Map<String, Value>) -> LineItem {
    LineItem {
        sku: l.get("product.").and_then(|p| text(p.get("code"))),
        description: text(l.get("description")).unwrap_or_default(),
        quantity: rpc::decimal(l.get("quantity")).unwrap_or_default(),
        unit_price: rpc::decimal(l.get("unit_price")).unwrap_or_default(),
        tax: None,
        total: rpc::decimal(l.get("amount")).unwrap_or_default(),
    }
}

fn party_ref(r: &Map<String, Value>) -> Option<PartyRef> {
    r.get("party").and_then(Value::as_i64).map(|id| PartyRef {
        external_id: Some(id.to_string()),
        name: r.get("party.").and_then(|p| text(p.get("name"))),
        ..PartyRef::default()
    })
}

impl TrytonConnector {
    /// Builds from settings; no IO.
    pub fn new(config: TrytonConfig, deps: &Deps) -> Result<Self, ConnectorError> {
        if !(1..=1000).contains(&config.page_size) {
            return Err(ConnectorError::Config(format!(
                "key `page_size`: {} is out of range 1–1000",
                config.page_size
            )));
        }
        let password = expand_env(config.password.expose_secret())
            .map_err(|e| ConnectorError::Config(format!("key `password`: {e}")))?;
        let url = config.url.trim_end_matches('/').to_string();
        let http = deps
            .http(
                HttpClient::builder(format!("{url}/"))
                    .credential(format!("tryton:{url}/{}", config.database))
                    .quota(QuotaConfig::per_second(20, 20))
                    .policy(Arc::new(TrytonPolicy)),
            )
            .map_err(ConnectorError::from)?;
        Ok(TrytonConnector {
            rpc: TrytonRpc::new(http, config.database, config.login, password),
            page_size: config.page_size,
            overlap: Duration::seconds(i64::from(config.overlap_seconds)),
            push_orders: config.push_orders,
            clock: deps.clock.clone(),
        })
    }

    fn host(&self) -> &str {
        self.rpc.host()
    }

    fn stream(
        &self,
        object: ObjectKind,
    ) -> Result<(&'static str, Value, &'static [&'static str]), ConnectorError> {
        match object {
            ObjectKind::Contact => Ok(("party.party", json!([]), PARTY_FIELDS)),
            ObjectKind::Order => Ok(("sale.sale", json!([]), SALE_FIELDS)),
            ObjectKind::Invoice => Ok((
                "account.invoice",
                json!([["type", "=", "out"]]),
                INVOICE_FIELDS,
            )),
            other => Err(ConnectorError::Unsupported(format!(
                "tryton ({}) has no {other} stream",
                self.host()
            ))),
        }
    }

    async fn children(
        &self,
        model: &str,
        parent: &str,
        ids: &[i64],
        fields: &[&str],
    ) -> Result<BTreeMap<i64, Vec<Map<String, Value>>>, ConnectorError> {
        let mut out: BTreeMap<i64, Vec<Map<String, Value>>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let found = self
            .rpc
            .read(
                model,
                "search_read",
                vec![
                    json!([[parent, "in", ids]]),
                    json!(0),
                    Value::Null,
                    json!([["id", "ASC"]]),
                    json!(fields),
                ],
                None,
            )
            .await?;
        for row in rows(found) {
            if let Some(p) = row.get(parent).and_then(Value::as_i64) {
                out.entry(p).or_default().push(row);
            }
        }
        Ok(out)
    }

    async fn map_rows(
        &self,
        object: ObjectKind,
        rows: &[Map<String, Value>],
    ) -> Result<BTreeMap<i64, Record>, ConnectorError> {
        let ids: Vec<i64> = rows
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_i64))
            .collect();
        let mut out = BTreeMap::new();
        match object {
            ObjectKind::Contact => {
                let mechs = self
                    .children(
                        "party.contact_mechanism",
                        "party",
                        &ids,
                        &["id", "party", "type", "value"],
                    )
                    .await?;
                let addrs = self
                    .children(
                        "party.address",
                        "party",
                        &ids,
                        &["id", "party", "street", "city", "postal_code"],
                    )
                    .await?;
                for r in rows {
                    let Some(id) = r.get("id").and_then(Value::as_i64) else {
                        continue;
                    };
                    let m: Vec<&Map<String, Value>> =
                        mechs.get(&id).into_iter().flatten().collect();
                    let a: Vec<&Map<String, Value>> =
                        addrs.get(&id).into_iter().flatten().collect();
                    out.insert(id, Record::Contact(party_record(r, &m, &a)));
                }
            }
            ObjectKind::Order => {
                let lines = self
                    .children(
                        "sale.line",
                        "sale",
                        &ids,
                        &[
                            "id",
                            "sale",
                            "product.code",
                            "description",
                            "quantity",
                            "unit_price",
                            "amount",
                            "type",
                        ],
                    )
                    .await?;
                for r in rows {
                    let Some(id) = r.get("id").and_then(Value::as_i64) else {
                        continue;
                    };
                    let mut custom = BTreeMap::new();
                    if let Some(reference) = text(r.get("reference")) {
                        custom.insert("tryton_reference".to_string(), json!(reference));
                    }
                    let order = Order {
                        number: text(r.get("number")),
                        customer: party_ref(r),
                        status: text(r.get("state")),
                        currency: r
                            .get("currency.")
                            .and_then(|c| text(c.get("code")))
                            .unwrap_or_default(),
                        lines: lines
                            .get(&id)
                            .into_iter()
                            .flatten()
                            .filter(|l| l.get("type").and_then(Value::as_str) == Some("line"))
                            .map(line_of)
                            .collect(),
                        subtotal: rpc::decimal(r.get("untaxed_amount")),
                        tax_total: rpc::decimal(r.get("tax_amount")),
                        total: rpc::decimal(r.get("total_amount")).unwrap_or_default(),
                        placed_at: rpc::date(r.get("sale_date"))
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|t| t.and_utc()),
                        updated_at: rpc::datetime(r.get("last_modified_at")),
                        custom,
                        ..Order::default()
                    };
                    out.insert(id, Record::Order(order));
                }
            }
            _ => {
                let lines = self
                    .children(
                        "account.invoice.line",
                        "invoice",
                        &ids,
                        &[
                            "id",
                            "invoice",
                            "product.code",
                            "description",
                            "quantity",
                            "unit_price",
                            "amount",
                        ],
                    )
                    .await?;
                for r in rows {
                    let Some(id) = r.get("id").and_then(Value::as_i64) else {
                        continue;
                    };
                    let invoice = Invoice {
                        number: text(r.get("number")),
                        customer: party_ref(r),
                        status: text(r.get("state")),
                        currency: r
                            .get("currency.")
                            .and_then(|c| text(c.get("code")))
                            .unwrap_or_default(),
                        lines: lines.get(&id).into_iter().flatten().map(line_of).collect(),
                        total: rpc::decimal(r.get("total_amount")).unwrap_or_default(),
                        amount_due: rpc::decimal(r.get("amount_to_pay")),
                        issued_on: rpc::date(r.get("invoice_date")),
                        ..Invoice::default()
                    };
                    out.insert(id, Record::Invoice(invoice));
                }
            }
        }
        Ok(out)
    }

    async fn pull_page(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        let host = self.host().to_string();
        let mut cur: TrytonCursor = match from {
            None => TrytonCursor::default(),
            Some(c) => {
                serde_json::from_value(c.0.clone()).map_err(|e| ConnectorError::Protocol {
                    host: host.clone(),
                    message: format!("the stored cursor is not a tryton cursor: {e}"),
                })?
            }
        };
        let req = cur.wm.next_request(self.overlap);
        let (after_id, until) = match &req.page {
            Some(token) => parse_token(token).ok_or_else(|| ConnectorError::Protocol {
                host: host.clone(),
                message: format!("the stored page token `{token}` is not `<id>@<time>`"),
            })?,
            None => (0, self.clock.now()),
        };
        let (model, base, fields) = self.stream(object)?;
        let mut domain: Vec<Value> = base.as_array().cloned().unwrap_or_default();
        if let Some(since) = req.since {
            domain.push(json!([
                "last_modified_at",
                ">=",
                rpc::datetime_value(since)
            ]));
        }
        domain.push(json!(["last_modified_at", "<", rpc::datetime_value(until)]));
        domain.push(json!(["id", ">", after_id]));
        let found = self
            .rpc
            .read(
                model,
                "search_read",
                vec![
                    json!(domain),
                    json!(0),
                    json!(self.page_size),
                    json!([["id", "ASC"]]),
                    json!(fields),
                ],
                Some(&json!({"active_test": false})),
            )
            .await?;
        let list = rows(found);
        let full = list.len() >= self.page_size as usize;
        let last = list
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_i64))
            .max();
        let mapped = self.map_rows(object, &list).await?;
        let mut page = Page::default();
        for row in &list {
            let Some(id) = row.get("id").and_then(Value::as_i64) else {
                continue;
            };
            let updated = rpc::datetime(row.get("last_modified_at"));
            if !admit_in_pass(
                &mut cur.wm,
                req.since,
                &id.to_string(),
                updated,
                self.overlap,
            ) {
                continue;
            }
            let archived = matches!(row.get("active"), Some(Value::Bool(false)))
                || row.get("active").and_then(Value::as_i64) == Some(0);
            page.records.push(RemoteRecord {
                external_id: id.to_string(),
                version: text(row.get("_timestamp")),
                updated_at: updated,
                deleted: archived,
                record: if archived {
                    None
                } else {
                    mapped.get(&id).cloned()
                },
                raw: Value::Object(row.clone()),
            });
        }
        let next = match (full, last) {
            (true, Some(last)) => Some(format!("{last}@{}", until.to_rfc3339())),
            _ => None,
        };
        cur.wm.end_page(&req, next);
        if !cur.wm.in_pass() {
            end_pass(&mut cur.wm, self.overlap);
            // End of a pass: reconcile ids to find hard deletes.
            let all = self
                .rpc
                .read(
                    model,
                    "search",
                    vec![base.clone(), json!(0), Value::Null, json!([["id", "ASC"]])],
                    Some(&json!({"active_test": false})),
                )
                .await?;
            let now: BTreeSet<i64> = all
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            if let Some(known) = cur.known.as_deref() {
                let before = decode_ids(known).ok_or_else(|| ConnectorError::Protocol {
                    host: host.clone(),
                    message: "the stored cursor's id list is malformed".into(),
                })?;
                for gone in before.difference(&now) {
                    page.records.push(RemoteRecord {
                        external_id: gone.to_string(),
                        version: None,
                        updated_at: None,
                        deleted: true,
                        record: None,
                        raw: json!({"id": gone, "deleted": true}),
                    });
                }
            }
            cur.known = Some(encode_ids(&now));
        }
        page.done = !cur.wm.in_pass();
        page.next = Some(Cursor(serde_json::to_value(&cur).map_err(|e| {
            ConnectorError::Protocol {
                host,
                message: format!("cannot encode the cursor: {e}"),
            }
        })?));
        Ok(page)
    }

    async fn read_party(&self, id: i64) -> Result<Option<RemoteRecord>, ConnectorError> {
        let found = self
            .rpc
            .read(
                "party.party",
                "search_read",
                vec![
                    json!([["id", "=", id]]),
                    json!(0),
                    json!(1),
                    Value::Null,
                    json!(PARTY_FIELDS),
                ],
                Some(&json!({"active_test": false})),
            )
            .await?;
        let list = rows(found);
        let Some(row) = list.first() else {
            return Ok(None);
        };
        let mapped = self.map_rows(ObjectKind::Contact, &list).await?;
        let archived = row.get("active").and_then(Value::as_i64) == Some(0)
            || matches!(row.get("active"), Some(Value::Bool(false)));
        Ok(Some(RemoteRecord {
            external_id: id.to_string(),
            version: text(row.get("_timestamp")),
            updated_at: rpc::datetime(row.get("last_modified_at")),
            deleted: archived,
            record: if archived {
                None
            } else {
                mapped.get(&id).cloned()
            },
            raw: Value::Object(row.clone()),
        }))
    }

    fn refusal(&self, e: CallError, what: &str, current: Option<RemoteRecord>) -> PushError {
        match e {
            CallError::Connector(e) => PushError::from(e),
            CallError::Fault(f) => {
                let reason = format!("{what} at {}: {}", self.host(), f.describe());
                PushError::Refused(match f.kind {
                    FaultKind::Concurrency => Refusal::conflict(reason, current),
                    FaultKind::Busy => Refusal::retry(reason, None),
                    FaultKind::Invalid | FaultKind::Server => Refusal::rejected(reason),
                })
            }
        }
    }

    async fn find(&self, model: &str, domain: Value) -> Result<Option<i64>, ConnectorError> {
        let ids = self
            .rpc
            .read(
                model,
                "search",
                vec![domain, json!(0), json!(1), json!([["id", "ASC"]])],
                Some(&json!({"active_test": false})),
            )
            .await?;
        Ok(ids
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_i64))
    }

    async fn write(
        &self,
        model: &str,
        method: &str,
        args: Vec<Value>,
        ctx: Option<&Value>,
        what: &str,
    ) -> Result<Value, PushError> {
        self.rpc
            .model(model, method, args, ctx, false)
            .await
            .map_err(|e| self.refusal(e, what, None))
    }

    /// The x2many commands that replace a party's mechanisms of `types`.
    async fn mechanism_commands(
        &self,
        id: Option<i64>,
        contact: &Contact,
        fields: &[String],
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut cmds = Vec::new();
        let mut types: Vec<(&str, &Vec<String>)> = Vec::new();
        if fields.iter().any(|f| f == "emails") {
            types.push(("email", &contact.emails));
        }
        if fields.iter().any(|f| f == "phones") {
            types.push(("phone", &contact.phones));
        }
        for (ty, values) in types {
            if let Some(id) = id {
                let old = self
                    .rpc
                    .read(
                        "party.contact_mechanism",
                        "search",
                        vec![
                            json!([
                                ["party", "=", id],
                                [
                                    "type",
                                    "in",
                                    if ty == "phone" {
                                        json!(["phone", "mobile"])
                                    } else {
                                        json!([ty])
                                    }
                                ]
                            ]),
                            json!(0),
                            Value::Null,
                            Value::Null,
                        ],
                        None,
                    )
                    .await?;
                let old: Vec<i64> = old
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_i64)
                    .collect();
                if !old.is_empty() {
                    cmds.push(json!(["delete", old]));
                }
            }
            let new: Vec<Value> = values
                .iter()
                .map(|v| json!({"type": ty, "value": v}))
                .collect();
            if !new.is_empty() {
                cmds.push(json!(["create", new]));
            }
        }
        Ok(cmds)
    }

    async fn party_vals(
        &self,
        id: Option<i64>,
        contact: &Contact,
        fields: &[String],
    ) -> Result<Map<String, Value>, ConnectorError> {
        let mut vals = Map::new();
        if fields
            .iter()
            .any(|f| matches!(f.as_str(), "full_name" | "given_name" | "family_name"))
        {
            if let Some(n) = contact.display_name() {
                vals.insert("name".into(), json!(n));
            }
        }
        let mechs = self.mechanism_commands(id, contact, fields).await?;
        if !mechs.is_empty() {
            vals.insert("contact_mechanisms".into(), json!(mechs));
        }
        if fields.iter().any(|f| f == "addresses") {
            if let Some(a) = contact.addresses.first() {
                let addr = json!({"street": a.line1.clone().unwrap_or_default(), "city": a.city.clone().unwrap_or_default(), "postal_code": a.postal_code.clone().unwrap_or_default()});
                let existing = match id {
                    Some(id) => {
                        self.find("party.address", json!([["party", "=", id]]))
                            .await?
                    }
                    None => None,
                };
                vals.insert(
                    "addresses".into(),
                    match existing {
                        Some(aid) => json!([["write", [aid], addr]]),
                        None => json!([["create", [addr]]]),
                    },
                );
            }
        }
        Ok(vals)
    }

    async fn written_party(&self, id: i64) -> Result<Written, PushError> {
        let current = self.read_party(id).await?;
        Ok(Written {
            external_id: id.to_string(),
            version: current.as_ref().and_then(|r| r.version.clone()),
            record: current.and_then(|r| r.record),
        })
    }

    async fn push_party(&self, change: &Change) -> Result<Written, PushError> {
        let Record::Contact(contact) = &change.record else {
            return Err(PushError::Refused(Refusal::rejected(format!(
                "CRM record {} is not a contact",
                change.crm_id
            ))));
        };
        let key = format!("synchub:{}", change.crm_id);
        match change.op {
            ChangeOp::Create => {
                // Exactly once: the CRM id is a party identifier, looked up first.
                if let Some(id) = self
                    .find("party.party", json!([["identifiers.code", "=", key]]))
                    .await?
                {
                    return self.written_party(id).await;
                }
                let all: Vec<String> = change.record.to_fields().keys().cloned().collect();
                let mut vals = self.party_vals(None, contact, &all).await?;
                if !vals.contains_key("name") {
                    return Err(PushError::Refused(Refusal::rejected(format!(
                        "CRM record {} has no name",
                        change.crm_id
                    ))));
                }
                vals.insert("identifiers".into(), json!([["create", [{"code": key}]]]));
                let ids = self
                    .write(
                        "party.party",
                        "create",
                        vec![json!([vals])],
                        None,
                        &format!("creating a party for CRM record {}", change.crm_id),
                    )
                    .await?;
                let id = ids.get(0).and_then(Value::as_i64).ok_or_else(|| {
                    PushError::Refused(Refusal::retry(
                        format!("party.party.create at {} returned {ids}", self.host()),
                        None,
                    ))
                })?;
                self.written_party(id).await
            }
            ChangeOp::Update | ChangeOp::Delete => {
                let id: i64 = change
                    .external_id
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        PushError::Refused(Refusal::rejected(format!(
                            "CRM record {} has no Tryton id",
                            change.crm_id
                        )))
                    })?;
                let vals = if change.op == ChangeOp::Delete {
                    let mut m = Map::new();
                    m.insert("active".into(), json!(false));
                    m
                } else {
                    self.party_vals(Some(id), contact, &change.changed_fields())
                        .await?
                };
                if vals.is_empty() {
                    return self.written_party(id).await;
                }
                // Optimistic locking: a stale `_timestamp` is refused by Tryton.
                let ctx = change
                    .base_version
                    .as_ref()
                    .map(|ts| json!({"_timestamp": {format!("party.party,{id}"): ts}}));
                match self
                    .rpc
                    .model(
                        "party.party",
                        "write",
                        vec![json!([id]), Value::Object(vals)],
                        ctx.as_ref(),
                        false,
                    )
                    .await
                {
                    Ok(_) => self.written_party(id).await,
                    Err(CallError::Fault(f)) if f.kind == FaultKind::Concurrency => {
                        let current = self.read_party(id).await?;
                        Err(PushError::Refused(Refusal::conflict(
                            format!(
                                "party {id} at {} changed since our last sync: {}",
                                self.host(),
                                f.describe()
                            ),
                            current,
                        )))
                    }
                    Err(e) => Err(self.refusal(e, &format!("writing party {id}"), None)),
                }
            }
        }
    }

    async fn push_order(&self, change: &Change) -> Result<Written, PushError> {
        let Record::Order(order) = &change.record else {
            return Err(PushError::Refused(Refusal::rejected(format!(
                "CRM record {} is not an order",
                change.crm_id
            ))));
        };
        if change.op != ChangeOp::Create {
            return Err(PushError::Refused(Refusal::rejected(format!(
                "order {}: sales are written to Tryton once, at creation",
                change.crm_id
            ))));
        }
        let key = &change.crm_id;
        // Exactly once: the CRM id is the sale's reference, looked up first.
        if let Some(id) = self
            .find("sale.sale", json!([["reference", "=", key]]))
            .await?
        {
            return self.written_sale(id).await;
        }
        let party = self.order_party(order, key).await?;
        let currency = self
            .find("currency.currency", json!([["code", "=", order.currency]]))
            .await?
            .ok_or_else(|| {
                PushError::Refused(Refusal::rejected(format!(
                    "order {key}: no currency `{}` at {}",
                    order.currency,
                    self.host()
                )))
            })?;
        let mut lines = Vec::new();
        for line in &order.lines {
            let sku = line.sku.as_deref().ok_or_else(|| {
                PushError::Refused(Refusal::rejected(format!(
                    "order {key}: line `{}` has no SKU",
                    line.description
                )))
            })?;
            let found = self
                .rpc
                .read(
                    "product.product",
                    "search_read",
                    vec![
                        json!([["code", "=", sku]]),
                        json!(0),
                        json!(1),
                        Value::Null,
                        json!(["id", "sale_uom", "default_uom"]),
                    ],
                    None,
                )
                .await?;
            let product = rows(found).into_iter().next().ok_or_else(|| {
                PushError::Refused(Refusal::rejected(format!(
                    "order {key}: no product with code `{sku}` at {}",
                    self.host()
                )))
            })?;
            let unit = product
                .get("sale_uom")
                .filter(|v| !v.is_null())
                .or_else(|| product.get("default_uom"))
                .cloned()
                .unwrap_or(Value::Null);
            let qty: f64 = line.quantity.to_string().parse().unwrap_or(0.0);
            lines.push(json!({"type": "line", "product": product.get("id"), "quantity": qty, "unit": unit,
                "unit_price": rpc::decimal_value(line.unit_price), "description": line.description}));
        }
        let mut vals = json!({"party": party, "reference": key, "currency": currency, "lines": [["create", lines]]});
        if let (Some(number), Some(m)) = (&order.number, vals.as_object_mut()) {
            m.insert("description".into(), json!(number));
        }
        let ids = self
            .write(
                "sale.sale",
                "create",
                vec![json!([vals])],
                None,
                &format!("creating the sale for CRM order {key}"),
            )
            .await?;
        let id = ids.get(0).and_then(Value::as_i64).ok_or_else(|| {
            PushError::Refused(Refusal::retry(
                format!("sale.sale.create at {} returned {ids}", self.host()),
                None,
            ))
        })?;
        self.written_sale(id).await
    }

    async fn order_party(&self, order: &Order, key: &str) -> Result<i64, PushError> {
        let Some(customer) = &order.customer else {
            return Err(PushError::Refused(Refusal::rejected(format!(
                "order {key} has no customer"
            ))));
        };
        if let Some(id) = customer
            .external_id
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok())
        {
            if self
                .find("party.party", json!([["id", "=", id]]))
                .await?
                .is_some()
            {
                return Ok(id);
            }
        }
        if let Some(email) = &customer.email {
            if let Some(id) = self
                .find(
                    "party.party",
                    json!([
                        ["contact_mechanisms.value", "=", email],
                        ["contact_mechanisms.type", "=", "email"]
                    ]),
                )
                .await?
            {
                return Ok(id);
            }
        }
        let party_key = format!("synchub:{key}:customer");
        if let Some(id) = self
            .find("party.party", json!([["identifiers.code", "=", party_key]]))
            .await?
        {
            return Ok(id);
        }
        let name = customer
            .name
            .clone()
            .or_else(|| customer.email.clone())
            .ok_or_else(|| {
                PushError::Refused(Refusal::rejected(format!(
                    "order {key}: the customer has no Tryton id, email or name"
                )))
            })?;
        let mut vals = json!({"name": name, "identifiers": [["create", [{"code": party_key}]]]});
        if let (Some(email), Some(m)) = (&customer.email, vals.as_object_mut()) {
            m.insert(
                "contact_mechanisms".into(),
                json!([["create", [{"type": "email", "value": email}]]]),
            );
        }
        let ids = self
            .write(
                "party.party",
                "create",
                vec![json!([vals])],
                None,
                &format!("creating the customer of order {key}"),
            )
            .await?;
        ids.get(0).and_then(Value::as_i64).ok_or_else(|| {
            PushError::Refused(Refusal::retry(
                format!("party.party.create at {} returned {ids}", self.host()),
                None,
            ))
        })
    }

    async fn written_sale(&self, id: i64) -> Result<Written, PushError> {
        let found = self
            .rpc
            .read(
                "sale.sale",
                "search_read",
                vec![
                    json!([["id", "=", id]]),
                    json!(0),
                    json!(1),
                    Value::Null,
                    json!(SALE_FIELDS),
                ],
                None,
            )
            .await?;
        let list = rows(found);
        let mapped = self.map_rows(ObjectKind::Order, &list).await?;
        Ok(Written {
            external_id: id.to_string(),
            version: list
                .first()
                .and_then(|r| rpc::datetime(r.get("last_modified_at")))
                .map(|t| t.to_rfc3339()),
            record: mapped.get(&id).cloned(),
        })
    }
}

#[async_trait]
impl Connector for TrytonConnector {
    fn kind(&self) -> &'static str {
        "tryton"
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        let spec = |kind, can_write| ObjectSpec {
            kind,
            can_read: true,
            incremental: true,
            can_write,
        };
        vec![
            spec(ObjectKind::Contact, true),
            spec(ObjectKind::Order, self.push_orders),
            spec(ObjectKind::Invoice, false),
        ]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.rpc.check().await
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        self.pull_page(object, from).await
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        let (model, domain, _) = self.stream(object).ok()?;
        self.rpc
            .read(model, "search_count", vec![domain], None)
            .await
            .ok()?
            .as_u64()
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        let writable = match object {
            ObjectKind::Contact => true,
            ObjectKind::Order => self.push_orders,
            _ => false,
        };
        if !writable {
            return Err(ConnectorError::Unsupported(format!(
                "tryton ({}) does not write {object}",
                self.host()
            )));
        }
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let r = match object {
                ObjectKind::Order => self.push_order(change).await,
                _ => self.push_party(change).await,
            };
            match r {
                Ok(w) => out.push(PushOutcome::written(&change.crm_id, w)),
                Err(PushError::Refused(r)) => out.push(PushOutcome::refused(&change.crm_id, r)),
                Err(PushError::Fatal(e)) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges_round_trip() {
        let ids: BTreeSet<i64> = [1, 2, 3, 5, 8, 9, 10, 42].into_iter().collect();
        let s = encode_ids(&ids);
        assert_eq!(s, "1-3,5,8-10,42");
        assert_eq!(decode_ids(&s), Some(ids));
        assert_eq!(decode_ids(""), Some(BTreeSet::new()));
        assert_eq!(decode_ids("5-1"), None);
        assert_eq!(decode_ids("x"), None);
    }
}
