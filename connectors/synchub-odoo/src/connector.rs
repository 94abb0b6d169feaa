//! The Odoo connector: streams, cursor, pushes, and its factory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use synchub_core::connector::{
    Change, ChangeOp, Cursor, ObjectKind, ObjectSpec, Page, PushOutcome, Refusal, RemoteRecord,
    Written,
};
use synchub_core::model::Order;
pub use synchub_core::watermark::{admit_in_pass, decode_ids, encode_ids, end_pass};
use synchub_core::{Connector, ConnectorError, Record, Watermark};
use synchub_http::oauth::SharedClock;
use synchub_http::secret::expand_env;
use synchub_http::{Built, ConnectorFactory, Deps, HttpClient, QuotaConfig};

use crate::config::OdooConfig;
use crate::map::{self, InvoiceModel, PartnerKind};
use crate::rpc::{Api, CallError, FaultKind, Login, OdooPolicy, OdooRpc};

/// The `odoo` connector kind.
pub struct OdooFactory;

impl ConnectorFactory for OdooFactory {
    const KIND: &'static str = "odoo";
    type Config = OdooConfig;

    fn build(config: OdooConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let connector = OdooConnector::new(config, deps)?;
        Ok(Built::connector(Arc::new(connector)))
    }
}

/// A connection to one Odoo database.
pub struct OdooConnector {
    rpc: OdooRpc,
    page_size: u32,
    overlap: Duration,
    push_orders: bool,
    create_products: bool,
    crm_id_field: String,
    clock: SharedClock,
}

impl std::fmt::Debug for OdooConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OdooConnector")
            .field("rpc", &self.rpc)
            .finish_non_exhaustive()
    }
}

/// Which way a change failed.
enum PushError {
    /// This change only.
    Refused(Refusal),
    /// The whole batch (credentials, configuration, cancellation).
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

impl OdooConnector {
    /// Builds from settings; no IO.
    pub fn new(config: OdooConfig, deps: &Deps) -> Result<Self, ConnectorError> {
        if !(1..=1000).contains(&config.page_size) {
            return Err(ConnectorError::Config(format!(
                "key `page_size`: {} is out of range 1–1000",
                config.page_size
            )));
        }
        if config.api == Api::Json2 && config.api_key.is_none() {
            return Err(ConnectorError::Config(
                "`api = \"json2\"` authenticates with a bearer API key: set `api_key` \
                 (not `password`)"
                    .into(),
            ));
        }
        let secret = match (&config.password, &config.api_key) {
            (Some(p), None) => p,
            (None, Some(k)) => k,
            _ => {
                return Err(ConnectorError::Config(
                    "set exactly one of `password` and `api_key`".into(),
                ))
            }
        };
        let secret = expand_env(secret.expose_secret())
            .map_err(|e| ConnectorError::Config(format!("key `password`/`api_key`: {e}")))?;
        let url = config.url.trim_end_matches('/').to_string();
        let http: HttpClient = deps
            .http(
                HttpClient::builder(format!("{url}/"))
                    .credential(format!("odoo:{url}/{}", config.database))
                    // Self-hosted Odoo has no published quota; Odoo Online
                    // throttles unannounced: keep to a modest rate.
                    .quota(QuotaConfig::per_second(10, 10))
                    .policy(Arc::new(OdooPolicy)),
            )
            .map_err(ConnectorError::from)?;
        Ok(OdooConnector {
            rpc: OdooRpc::new(
                http,
                Login {
                    db: config.database,
                    login: config.login,
                    secret,
                },
            )
            .with_api(config.api),
            page_size: config.page_size,
            overlap: Duration::seconds(i64::from(config.overlap_seconds)),
            push_orders: config.push_orders,
            create_products: config.create_products,
            crm_id_field: config.crm_id_field,
            clock: deps.clock.clone(),
        })
    }

    /// The session's RPC client (for tests and tools).
    pub fn rpc(&self) -> &OdooRpc {
        &self.rpc
    }

    fn host(&self) -> &str {
        self.rpc.host()
    }

    async fn invoice_model(&self) -> Result<InvoiceModel, ConnectorError> {
        let (_, version) = self.rpc.session().await?;
        Ok(InvoiceModel::for_version(version.major))
    }

    /// The model, base domain and fields of a stream.
    async fn stream(
        &self,
        object: ObjectKind,
    ) -> Result<(&'static str, Value, Vec<&'static str>), ConnectorError> {
        Ok(match object {
            ObjectKind::Contact => (
                "res.partner",
                json!([["is_company", "=", false], ["type", "=", "contact"]]),
                map::PARTNER_FIELDS.to_vec(),
            ),
            ObjectKind::Company => (
                "res.partner",
                json!([["is_company", "=", true]]),
                map::PARTNER_FIELDS.to_vec(),
            ),
            ObjectKind::Order => ("sale.order", json!([]), map::ORDER_FIELDS.to_vec()),
            ObjectKind::Invoice => {
                let m = self.invoice_model().await?;
                (
                    m.model,
                    json!([[m.type_field, "in", ["out_invoice", "out_refund"]]]),
                    m.fields(),
                )
            }
            ObjectKind::Activity => {
                return Err(ConnectorError::Unsupported(format!(
                    "odoo ({}) has no activity stream",
                    self.host()
                )))
            }
        })
    }

    async fn lines(
        &self,
        model: &str,
        ids: Vec<i64>,
        parent_field: &str,
    ) -> Result<BTreeMap<i64, Vec<Map<String, Value>>>, ConnectorError> {
        let mut by_parent: BTreeMap<i64, Vec<Map<String, Value>>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(by_parent);
        }
        let fields: Vec<&str> = if model == "sale.order.line" {
            map::ORDER_LINE_FIELDS.to_vec()
        } else {
            vec![
                "id",
                parent_field,
                "product_id",
                "name",
                "quantity",
                "price_unit",
                "price_subtotal",
                "price_total",
            ]
        };
        let rows = self
            .rpc
            .read(model, "read", json!([ids]), json!({"fields": fields}))
            .await?;
        for row in rows.as_array().into_iter().flatten() {
            if let Value::Object(m) = row {
                if let Some(parent) = map::m2o_id(m.get(parent_field)) {
                    by_parent.entry(parent).or_default().push(m.clone());
                }
            }
        }
        for lines in by_parent.values_mut() {
            lines.sort_by_key(|l| l.get("id").and_then(Value::as_i64));
        }
        Ok(by_parent)
    }

    async fn pull_page(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        let host = self.host().to_string();
        let mut cur: OdooCursor = match from {
            None => OdooCursor::default(),
            Some(c) => {
                serde_json::from_value(c.0.clone()).map_err(|e| ConnectorError::Protocol {
                    host: host.clone(),
                    message: format!("the stored cursor is not an odoo cursor: {e}"),
                })?
            }
        };
        let mut wm = std::mem::take(&mut cur.wm);
        let req = wm.next_request(self.overlap);
        let (after_id, until) = match &req.page {
            Some(token) => parse_token(token).ok_or_else(|| ConnectorError::Protocol {
                host: host.clone(),
                message: format!("the stored page token `{token}` is not `<id>@<time>`"),
            })?,
            // Odoo compares to the second: the bound is the next whole second.
            None => (0, self.clock.now() + Duration::seconds(1)),
        };
        let (model, base, fields) = self.stream(object).await?;
        let mut domain: Vec<Value> = base.as_array().cloned().unwrap_or_default();
        if let Some(since) = req.since {
            domain.push(json!(["write_date", ">=", map::odoo_time(since)]));
        }
        domain.push(json!(["write_date", "<", map::odoo_time(until)]));
        domain.push(json!(["id", ">", after_id]));
        let rows = self
            .rpc
            .read(
                model,
                "search_read",
                json!([domain]),
                json!({
                    "fields": fields,
                    "limit": self.page_size,
                    "order": "id asc",
                    "context": {"active_test": false},
                }),
            )
            .await?;
        let rows: Vec<Map<String, Value>> = rows
            .as_array()
            .ok_or_else(|| ConnectorError::Protocol {
                host: host.clone(),
                message: format!("{model}.search_read did not return a list"),
            })?
            .iter()
            .filter_map(|r| r.as_object().cloned())
            .collect();
        let full = rows.len() >= self.page_size as usize;
        let last_id = rows
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_i64))
            .max();
        let lines = match object {
            ObjectKind::Order => {
                let ids = rows
                    .iter()
                    .flat_map(|r| ids_of(r.get("order_line")))
                    .collect();
                self.lines("sale.order.line", ids, "order_id").await?
            }
            ObjectKind::Invoice => {
                let m = self.invoice_model().await?;
                let ids = rows
                    .iter()
                    .flat_map(|r| ids_of(r.get("invoice_line_ids")))
                    .collect();
                let parent = if m.model == "account.invoice" {
                    "invoice_id"
                } else {
                    "move_id"
                };
                self.lines(m.line_model, ids, parent).await?
            }
            _ => BTreeMap::new(),
        };
        let invoice_model = match object {
            ObjectKind::Invoice => Some(self.invoice_model().await?),
            _ => None,
        };
        let mut page = Page::default();
        for row in rows {
            let Some(id) = row.get("id").and_then(Value::as_i64) else {
                page.rejected.push(synchub_core::connector::Rejected {
                    external_id: None,
                    location: Some(format!("{model} at {host}")),
                    reason: "row without an id".into(),
                    raw: Value::Object(row),
                });
                continue;
            };
            let updated = map::datetime(row.get("write_date"));
            if !admit_in_pass(&mut wm, req.since, &id.to_string(), updated, self.overlap) {
                continue;
            }
            let archived = row.get("active").and_then(Value::as_bool) == Some(false);
            let no_lines = Vec::new();
            let own_lines: Vec<&Map<String, Value>> =
                lines.get(&id).unwrap_or(&no_lines).iter().collect();
            let record = if archived {
                None
            } else {
                Some(match object {
                    ObjectKind::Contact | ObjectKind::Company => match map::partner(&row) {
                        PartnerKind::Company(c) => Record::Company(c),
                        PartnerKind::Contact(c) => Record::Contact(c),
                    },
                    ObjectKind::Order => Record::Order(map::order(&row, &own_lines)),
                    _ => match invoice_model {
                        Some(m) => Record::Invoice(m.invoice(&row, &own_lines)),
                        None => continue,
                    },
                })
            };
            page.records.push(RemoteRecord {
                external_id: id.to_string(),
                version: row
                    .get("write_date")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                updated_at: updated,
                deleted: archived,
                record,
                raw: Value::Object(row),
            });
        }
        let next = match (full, last_id) {
            (true, Some(last)) => Some(format!("{last}@{}", until.to_rfc3339())),
            _ => None,
        };
        wm.end_page(&req, next);
        if !wm.in_pass() {
            end_pass(&mut wm, self.overlap);
            // Hard deletes leave no trace in Odoo: at the end of each pass
            // the stream's ids are compared with those of the last pass.
            let all = self
                .rpc
                .read(
                    model,
                    "search",
                    json!([base]),
                    json!({"order": "id asc", "context": {"active_test": false}}),
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
        page.done = !wm.in_pass();
        cur.wm = wm;
        page.next = Some(Cursor(serde_json::to_value(&cur).map_err(|e| {
            ConnectorError::Protocol {
                host,
                message: format!("cannot encode the cursor: {e}"),
            }
        })?));
        Ok(page)
    }

    /// Reads one partner, archived or not, mapped.
    async fn read_partner(&self, id: i64) -> Result<Option<RemoteRecord>, ConnectorError> {
        let rows = self
            .rpc
            .read(
                "res.partner",
                "search_read",
                json!([[["id", "=", id]]]),
                json!({"fields": map::PARTNER_FIELDS, "context": {"active_test": false}}),
            )
            .await?;
        let Some(row) = rows
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_object)
        else {
            return Ok(None);
        };
        let archived = row.get("active").and_then(Value::as_bool) == Some(false);
        let record = match map::partner(row) {
            PartnerKind::Company(c) => Record::Company(c),
            PartnerKind::Contact(c) => Record::Contact(c),
        };
        Ok(Some(RemoteRecord {
            external_id: id.to_string(),
            version: row
                .get("write_date")
                .and_then(Value::as_str)
                .map(str::to_string),
            updated_at: map::datetime(row.get("write_date")),
            deleted: archived,
            record: (!archived).then_some(record),
            raw: Value::Object(row.clone()),
        }))
    }

    /// The id of the first record of `model` matching `domain` (archived too).
    async fn find(&self, model: &str, domain: Value) -> Result<Option<i64>, ConnectorError> {
        let ids = self
            .rpc
            .read(
                model,
                "search",
                json!([domain]),
                json!({"limit": 1, "order": "id asc", "context": {"active_test": false}}),
            )
            .await?;
        Ok(ids
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_i64))
    }

    /// A write call; faults become this change's refusal.
    async fn write_call(
        &self,
        model: &str,
        method: &str,
        args: Value,
        what: &str,
    ) -> Result<Value, PushError> {
        self.rpc
            .execute_kw(model, method, args, json!({}), false)
            .await
            .map_err(|e| self.refusal(e, what))
    }

    fn refusal(&self, e: CallError, what: &str) -> PushError {
        match e {
            CallError::Connector(e) => PushError::from(e),
            CallError::Fault(f) => {
                let reason = format!("{what} at {}: {} ({})", self.host(), f.message, f.name);
                match f.kind {
                    FaultKind::Denied => PushError::Fatal(ConnectorError::Auth {
                        host: self.host().to_string(),
                        message: reason,
                    }),
                    FaultKind::Concurrency => PushError::Refused(Refusal::conflict(reason, None)),
                    FaultKind::Server => PushError::Refused(Refusal::retry(reason, None)),
                    FaultKind::Invalid | FaultKind::Forbidden | FaultKind::Missing => {
                        PushError::Refused(Refusal::rejected(reason))
                    }
                }
            }
        }
    }

    /// The `parent_id` for a contact: the Odoo id kept from an earlier read
    /// when it still names a company, else a company of that exact name.
    async fn parent_for(&self, record: &Record) -> Result<Option<Value>, ConnectorError> {
        let Record::Contact(c) = record else {
            return Ok(None);
        };
        let Some(company) = c.company.as_deref().filter(|s| !s.trim().is_empty()) else {
            return Ok(Some(Value::Bool(false)));
        };
        if let Some(id) = c
            .custom
            .get("odoo_parent_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<i64>().ok())
        {
            if self
                .find(
                    "res.partner",
                    json!([["id", "=", id], ["name", "=", company]]),
                )
                .await?
                .is_some()
            {
                return Ok(Some(json!(id)));
            }
        }
        let found = self
            .find(
                "res.partner",
                json!([["is_company", "=", true], ["name", "=", company]]),
            )
            .await?;
        Ok(found.map(|id| json!(id)))
    }

    async fn written_partner(&self, id: i64) -> Result<Written, PushError> {
        let current = self.read_partner(id).await?;
        Ok(Written {
            external_id: id.to_string(),
            version: current.as_ref().and_then(|r| r.version.clone()),
            record: current.and_then(|r| r.record),
        })
    }

    async fn push_partner(&self, change: &Change) -> Result<Written, PushError> {
        let is_company = matches!(change.record, Record::Company(_));
        match change.op {
            ChangeOp::Create => {
                let key = &change.crm_id;
                if let Some(id) = self
                    .find("res.partner", json!([[self.crm_id_field, "=", key]]))
                    .await?
                {
                    // A retried create: the partner exists; report it as written
                    // (writing again would only move its write_date).
                    return self.written_partner(id).await;
                }
                let mut vals = self.partner_vals(change, None).await?;
                vals.insert("is_company".into(), json!(is_company));
                vals.insert(self.crm_id_field.clone(), json!(key));
                if !vals.contains_key("name") {
                    return Err(PushError::Refused(Refusal::rejected(format!(
                        "CRM record {key} has no name; Odoo requires one for a partner"
                    ))));
                }
                let id = self
                    .write_call(
                        "res.partner",
                        "create",
                        json!([vals]),
                        &format!("creating a partner for CRM record {key}"),
                    )
                    .await?;
                let id = id.as_i64().ok_or_else(|| {
                    PushError::Refused(Refusal::retry(
                        format!("res.partner.create at {} returned {id}", self.host()),
                        None,
                    ))
                })?;
                self.written_partner(id).await
            }
            ChangeOp::Update | ChangeOp::Delete => {
                let id = self.external_id(change)?;
                let current = self.read_partner(id).await?.ok_or_else(|| {
                    PushError::Refused(Refusal::rejected(format!(
                        "partner {id} no longer exists at {}",
                        self.host()
                    )))
                })?;
                if let (Some(base), Some(now)) = (&change.base_version, &current.version) {
                    if base != now && change.op == ChangeOp::Update {
                        return Err(PushError::Refused(Refusal::conflict(
                            format!(
                                "partner {id} at {} was changed at {now}, after our last sync ({base})",
                                self.host()
                            ),
                            Some(current),
                        )));
                    }
                }
                let vals = if change.op == ChangeOp::Delete {
                    let mut m = Map::new();
                    m.insert("active".into(), json!(false));
                    m
                } else {
                    let fields = change.changed_fields();
                    self.partner_vals(change, Some(&fields)).await?
                };
                if !vals.is_empty() {
                    self.write_call(
                        "res.partner",
                        "write",
                        json!([[id], vals]),
                        &format!("writing partner {id}"),
                    )
                    .await?;
                }
                self.written_partner(id).await
            }
        }
    }

    async fn partner_vals(
        &self,
        change: &Change,
        fields: Option<&[String]>,
    ) -> Result<Map<String, Value>, PushError> {
        let all: Vec<String>;
        let fields = match fields {
            Some(f) => f,
            None => {
                all = change.record.to_fields().keys().cloned().collect();
                &all
            }
        };
        let mut vals = map::partner_values(&change.record, fields);
        if fields.iter().any(|f| f == "company" || f == "custom") {
            if let Some(parent) = self.parent_for(&change.record).await? {
                vals.insert("parent_id".into(), parent);
            }
        }
        Ok(vals)
    }

    fn external_id(&self, change: &Change) -> Result<i64, PushError> {
        change
            .external_id
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                PushError::Refused(Refusal::rejected(format!(
                    "CRM record {} has no Odoo id for a {:?}",
                    change.crm_id, change.op
                )))
            })
    }

    /// The partner an order is for: its Odoo id, else a partner with the
    /// buyer's email, else a new one.
    async fn order_partner(&self, order: &Order, crm_id: &str) -> Result<i64, PushError> {
        let Some(customer) = &order.customer else {
            return Err(PushError::Refused(Refusal::rejected(format!(
                "order {crm_id} has no customer; Odoo needs a partner for a sale order"
            ))));
        };
        if let Some(id) = customer
            .external_id
            .as_deref()
            .and_then(|s| s.parse::<i64>().ok())
        {
            if self
                .find("res.partner", json!([["id", "=", id]]))
                .await?
                .is_some()
            {
                return Ok(id);
            }
        }
        if let Some(email) = customer.email.as_deref() {
            if let Some(id) = self
                .find("res.partner", json!([["email", "=ilike", email]]))
                .await?
            {
                return Ok(id);
            }
        }
        let name = customer
            .name
            .clone()
            .or_else(|| customer.email.clone())
            .ok_or_else(|| {
                PushError::Refused(Refusal::rejected(format!(
                    "order {crm_id}: the customer has neither an Odoo id, an email nor a name"
                )))
            })?;
        let key = format!("{crm_id}:customer");
        if let Some(id) = self
            .find("res.partner", json!([[self.crm_id_field, "=", key]]))
            .await?
        {
            return Ok(id);
        }
        let id = self
            .write_call(
                "res.partner",
                "create",
                json!([{"name": name, "email": customer.email.clone().map_or(json!(false), |e| json!(e)), self.crm_id_field.clone(): key}]),
                &format!("creating the customer of order {crm_id}"),
            )
            .await?;
        id.as_i64().ok_or_else(|| {
            PushError::Refused(Refusal::retry(
                format!("res.partner.create at {} returned {id}", self.host()),
                None,
            ))
        })
    }

    async fn product_for(&self, line: &synchub_core::model::LineItem) -> Result<i64, PushError> {
        let domain = match &line.sku {
            Some(sku) => json!([["default_code", "=", sku]]),
            None => json!([["name", "=", line.description]]),
        };
        if let Some(id) = self.find("product.product", domain).await? {
            return Ok(id);
        }
        let what = match &line.sku {
            Some(sku) => format!("SKU `{sku}`"),
            None => format!("name `{}`", line.description),
        };
        if !self.create_products {
            return Err(PushError::Refused(Refusal::rejected(format!(
                "no product with {what} at {} (set `create_products = true` to create it)",
                self.host()
            ))));
        }
        let mut vals = json!({"name": line.description, "type": "service",
            "list_price": decimal_json(line.unit_price)});
        if let (Some(sku), Some(m)) = (&line.sku, vals.as_object_mut()) {
            m.insert("default_code".into(), json!(sku));
        }
        let id = self
            .write_call(
                "product.product",
                "create",
                json!([vals]),
                &format!("creating the product with {what}"),
            )
            .await?;
        id.as_i64().ok_or_else(|| {
            PushError::Refused(Refusal::retry(
                format!("product.product.create at {} returned {id}", self.host()),
                None,
            ))
        })
    }

    async fn read_order(&self, id: i64) -> Result<Option<RemoteRecord>, ConnectorError> {
        let rows = self
            .rpc
            .read(
                "sale.order",
                "read",
                json!([[id]]),
                json!({"fields": map::ORDER_FIELDS}),
            )
            .await?;
        let Some(row) = rows
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_object)
        else {
            return Ok(None);
        };
        let lines = self
            .lines("sale.order.line", ids_of(row.get("order_line")), "order_id")
            .await?;
        let own: Vec<&Map<String, Value>> = lines.get(&id).into_iter().flatten().collect();
        Ok(Some(RemoteRecord {
            external_id: id.to_string(),
            version: map::text(row.get("write_date")),
            updated_at: map::datetime(row.get("write_date")),
            deleted: false,
            record: Some(Record::Order(map::order(row, &own))),
            raw: Value::Object(row.clone()),
        }))
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
                "order {}: sale orders are written to Odoo once, at creation; \
                 later changes are made in Odoo",
                change.crm_id
            ))));
        }
        let key = &change.crm_id;
        // Exactly once: the CRM id travels in client_order_ref; a retry (or a
        // run after a crash between the create and our commit) finds it.
        if let Some(id) = self
            .find("sale.order", json!([["client_order_ref", "=", key]]))
            .await?
        {
            return self.written_order(id).await;
        }
        let partner = self.order_partner(order, key).await?;
        let mut lines = Vec::new();
        for line in &order.lines {
            let product = self.product_for(line).await?;
            lines.push(json!([0, 0, {
                "product_id": product,
                "name": line.description,
                "product_uom_qty": decimal_json(line.quantity),
                "price_unit": decimal_json(line.unit_price),
            }]));
        }
        let mut vals = json!({
            "partner_id": partner,
            "client_order_ref": key,
            "order_line": lines,
        });
        if let (Some(number), Some(m)) = (&order.number, vals.as_object_mut()) {
            m.insert("origin".into(), json!(number));
        }
        let id = self
            .write_call(
                "sale.order",
                "create",
                json!([vals]),
                &format!("creating the sale order for CRM order {key}"),
            )
            .await?;
        let id = id.as_i64().ok_or_else(|| {
            PushError::Refused(Refusal::retry(
                format!("sale.order.create at {} returned {id}", self.host()),
                None,
            ))
        })?;
        self.written_order(id).await
    }

    async fn written_order(&self, id: i64) -> Result<Written, PushError> {
        let current = self.read_order(id).await?;
        Ok(Written {
            external_id: id.to_string(),
            version: current.as_ref().and_then(|r| r.version.clone()),
            record: current.and_then(|r| r.record),
        })
    }
}

/// The stream cursor: the `write_date` watermark, and the ids the stream
/// held at the end of the last pass (a vanished id is a hard delete).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OdooCursor {
    /// The `write_date` watermark.
    pub wm: Watermark,
    /// Ids present at the end of the last pass, as ranges `1-5,8`.
    #[serde(default)]
    pub known: Option<String>,
}

fn decimal_json(d: rust_decimal::Decimal) -> Value {
    // Odoo's float fields take JSON numbers; the decimal's text is exact.
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

fn ids_of(v: Option<&Value>) -> Vec<i64> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

fn parse_token(token: &str) -> Option<(i64, DateTime<Utc>)> {
    let (id, until) = token.split_once('@')?;
    let until = DateTime::parse_from_rfc3339(until)
        .ok()?
        .with_timezone(&Utc);
    Some((id.parse().ok()?, until))
}

#[async_trait]
impl Connector for OdooConnector {
    fn kind(&self) -> &'static str {
        "odoo"
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
            spec(ObjectKind::Company, true),
            spec(ObjectKind::Order, self.push_orders),
            spec(ObjectKind::Invoice, false),
        ]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.rpc.session().await.map(|_| ())
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        self.pull_page(object, from).await
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        let (model, domain, _) = self.stream(object).await.ok()?;
        self.rpc
            .read(model, "search_count", json!([domain]), json!({}))
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
            ObjectKind::Contact | ObjectKind::Company => true,
            ObjectKind::Order => self.push_orders,
            _ => false,
        };
        if !writable {
            return Err(ConnectorError::Unsupported(format!(
                "odoo ({}) does not write {object}{}",
                self.host(),
                if object == ObjectKind::Order {
                    " (set `push_orders = true`)"
                } else {
                    ""
                }
            )));
        }
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            let result = match object {
                ObjectKind::Order => self.push_order(change).await,
                _ => self.push_partner(change).await,
            };
            match result {
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
    fn a_pass_by_id_delivers_the_last_window_once_even_out_of_time_order() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time");
        let overlap = Duration::seconds(0);
        let mut wm = Watermark::default();
        for id in ["1", "2", "3"] {
            assert!(admit_in_pass(&mut wm, None, id, Some(t(0)), overlap));
        }
        end_pass(&mut wm, overlap);
        // Next pass (since = t(0)): id 2 was edited; by id, 2 comes before 3.
        let since = wm.next_request(overlap).since;
        assert!(!admit_in_pass(&mut wm, since, "1", Some(t(0)), overlap));
        assert!(admit_in_pass(&mut wm, since, "2", Some(t(9)), overlap));
        assert!(
            !admit_in_pass(&mut wm, since, "3", Some(t(0)), overlap),
            "3 is unchanged"
        );
        end_pass(&mut wm, overlap);
        assert_eq!(wm.seen.len(), 1);
        assert_eq!(wm.watermark, Some(t(9)));
    }

    #[test]
    fn page_tokens_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-12-04T18:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let token = format!("42@{}", t.map(|t| t.to_rfc3339()).unwrap_or_default());
        assert_eq!(parse_token(&token), t.map(|t| (42, t)));
        assert_eq!(parse_token("42"), None);
        assert_eq!(parse_token("x@2026-12-04T18:00:00Z"), None);
    }

    #[test]
    fn config_needs_exactly_one_secret() {
        let deps = Deps::new("erp", ".");
        let cfg: OdooConfig = serde_json::from_value(json!({
            "url": "http://127.0.0.1:1", "database": "odoo", "login": "admin"
        }))
        .expect("parses");
        let e = OdooConnector::new(cfg, &deps).expect_err("no secret");
        assert!(e.to_string().contains("password"), "{e}");
        let unknown = serde_json::from_value::<OdooConfig>(json!({
            "url": "http://x", "database": "odoo", "login": "a", "password": "p", "pasword": "p"
        }));
        assert!(unknown.is_err());
    }
}
