//! The ERPNext connector: streams, cursor, pushes, and its factory.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use synchub_core::connector::{
    Change, ChangeOp, Cursor, ObjectKind, ObjectSpec, Page, PushOutcome, Refusal, RemoteRecord,
    Written,
};
use synchub_core::model::{Address, PartyRef};
use synchub_core::{Connector, ConnectorError, Record, Watermark};
use synchub_http::oauth::SharedClock;
use synchub_http::secret::expand_env;
use synchub_http::{Auth, Built, ConnectorFactory, Deps, ExposeSecret, HttpClient, QuotaConfig};

use crate::client::{CallError, Doc, ListQuery, Site};
use crate::config::ErpNextConfig;
use crate::map;
use crate::policy::ErrorKind;
use crate::webhook::ErpWebhooks;

/// The `erpnext` connector kind.
pub struct ErpNextFactory;

impl ConnectorFactory for ErpNextFactory {
    const KIND: &'static str = "erpnext";
    type Config = ErpNextConfig;

    fn build(config: ErpNextConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let webhooks = match &config.webhook_secret {
            Some(s) => {
                let s = expand_env(s.expose_secret())
                    .map_err(|e| ConnectorError::Config(format!("key `webhook_secret`: {e}")))?;
                Some(Arc::new(ErpWebhooks::new(s)) as Arc<dyn synchub_http::WebhookSource>)
            }
            None => None,
        };
        let connector = ErpNextConnector::new(config, deps)?;
        Ok(Built {
            connector: Arc::new(connector),
            webhooks,
        })
    }
}

/// The stream cursor: the `modified` watermark (with the pass's keyset
/// position as its page token) and the watermark of the `Deleted Document`
/// feed (on `creation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErpCursor {
    /// The `modified` watermark of the stream.
    pub wm: Watermark,
    /// The `creation` watermark of the stream's deletions.
    #[serde(default)]
    pub deletions: Option<Watermark>,
}

/// The keyset position inside a pass: the last row's `modified` exactly as
/// the site wrote it, and its `name` (the tie-break).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    m: String,
    n: String,
}

/// A connection to one ERPNext site.
pub struct ErpNextConnector {
    site: Site,
    page_size: u32,
    overlap: Duration,
    reference_field: String,
    customer_group: Option<String>,
    territory: Option<String>,
    clock: SharedClock,
}

impl std::fmt::Debug for ErpNextConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpNextConnector")
            .field("host", &self.site.host())
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

fn doctype(object: ObjectKind) -> Option<&'static str> {
    match object {
        ObjectKind::Contact => Some("Contact"),
        ObjectKind::Company => Some("Customer"),
        ObjectKind::Order => Some("Sales Order"),
        _ => None,
    }
}

const ORDER_BY: &str = "modified asc, name asc";

impl ErpNextConnector {
    /// Builds from settings; no IO.
    pub fn new(config: ErpNextConfig, deps: &Deps) -> Result<Self, ConnectorError> {
        let offset = config
            .validate()
            .map_err(|p| ConnectorError::Config(p.join("; ")))?;
        let key = expand_env(config.api_key.expose_secret())
            .map_err(|e| ConnectorError::Config(format!("key `api_key`: {e}")))?;
        let secret = expand_env(config.api_secret.expose_secret())
            .map_err(|e| ConnectorError::Config(format!("key `api_secret`: {e}")))?;
        let token = format!("token {}:{}", key.expose_secret(), secret.expose_secret());
        let url = config.url.trim_end_matches('/').to_string();
        let http: HttpClient = deps
            .http(
                HttpClient::builder(format!("{url}/"))
                    .credential(format!("erpnext:{url}"))
                    .quota(
                        config
                            .quota
                            .clone()
                            .unwrap_or_else(|| QuotaConfig::per_second(5, 5)),
                    )
                    .auth(Auth::header("Authorization", token.into()))
                    .policy(Arc::new(crate::policy::ErpPolicy)),
            )
            .map_err(ConnectorError::from)?;
        Ok(ErpNextConnector {
            site: Site::new(http, offset),
            page_size: config.page_size,
            overlap: Duration::seconds(i64::from(config.overlap_seconds)),
            reference_field: config.reference_field,
            customer_group: config.customer_group,
            territory: config.territory,
            clock: deps.clock.clone(),
        })
    }

    /// The site client (for tests and tools).
    pub fn site(&self) -> &Site {
        &self.site
    }

    fn host(&self) -> &str {
        self.site.host()
    }

    fn read_err(&self, what: &str) -> impl Fn(CallError) -> ConnectorError + '_ {
        let what = what.to_string();
        move |e| e.into_connector(self.site.host(), &what)
    }

    fn protocol(&self, message: String) -> ConnectorError {
        ConnectorError::Protocol {
            host: self.host().to_string(),
            message,
        }
    }

    /// The addresses linked to each of `customers`, by customer.
    async fn addresses_for(
        &self,
        customers: &[String],
    ) -> Result<BTreeMap<String, Vec<Address>>, ConnectorError> {
        let mut out: BTreeMap<String, Vec<Address>> = BTreeMap::new();
        if customers.is_empty() {
            return Ok(out);
        }
        let mut start = 0;
        loop {
            let rows = self
                .site
                .list(&ListQuery {
                    doctype: "Address",
                    fields: json!(["name"]),
                    filters: json!([
                        ["Dynamic Link", "link_doctype", "=", "Customer"],
                        ["Dynamic Link", "link_name", "in", customers]
                    ]),
                    or_filters: None,
                    order_by: "creation asc, name asc",
                    start,
                    length: self.page_size,
                })
                .await
                .map_err(self.read_err("listing the addresses of customers"))?;
            let n = rows.len();
            for row in rows {
                let Some(name) = map::text(row.get("name")) else {
                    continue;
                };
                let Some(doc) = self
                    .site
                    .get("Address", &name)
                    .await
                    .map_err(self.read_err("reading an address"))?
                else {
                    continue;
                };
                if doc.get("disabled").and_then(Value::as_i64) == Some(1) {
                    continue;
                }
                let address = map::address(&doc);
                for link in doc
                    .get("links")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if link.get("link_doctype").and_then(Value::as_str) == Some("Customer") {
                        if let Some(c) = link.get("link_name").and_then(Value::as_str) {
                            if customers.iter().any(|x| x == c) {
                                out.entry(c.to_string()).or_default().push(address.clone());
                            }
                        }
                    }
                }
            }
            if n < self.page_size as usize {
                return Ok(out);
            }
            start += self.page_size;
        }
    }

    /// The CRM party of each sales order: its contact person, else the
    /// customer's primary contact (with the customer's email).
    async fn parties(&self, orders: &[Doc]) -> Result<BTreeMap<String, Doc>, ConnectorError> {
        let customers: Vec<String> = orders
            .iter()
            .filter(|o| map::text(o.get("contact_person")).is_none())
            .filter_map(|o| map::text(o.get("customer")))
            .collect();
        let mut out = BTreeMap::new();
        if customers.is_empty() {
            return Ok(out);
        }
        let rows = self
            .site
            .list(&ListQuery {
                doctype: "Customer",
                fields: json!(["name", "customer_primary_contact", "email_id"]),
                filters: json!([["name", "in", customers]]),
                or_filters: None,
                order_by: "name asc",
                start: 0,
                length: u32::try_from(customers.len()).unwrap_or(u32::MAX),
            })
            .await
            .map_err(self.read_err("reading the customers of sales orders"))?;
        for row in rows {
            if let Some(n) = map::text(row.get("name")) {
                out.insert(n, row);
            }
        }
        Ok(out)
    }

    fn order_record(&self, doc: &Doc, customers: &BTreeMap<String, Doc>) -> Record {
        let customer = map::text(doc.get("customer"));
        let row = customer.as_ref().and_then(|c| customers.get(c));
        let party = PartyRef {
            external_id: map::text(doc.get("contact_person"))
                .or_else(|| row.and_then(|r| map::text(r.get("customer_primary_contact")))),
            crm_id: None,
            email: map::text(doc.get("contact_email"))
                .or_else(|| row.and_then(|r| map::text(r.get("email_id")))),
            name: map::text(doc.get("customer_name")).or(customer),
        };
        let placed_at = map::transaction_date(doc).and_then(|d| {
            d.and_hms_opt(0, 0, 0).and_then(|t| {
                self.site
                    .parse_time(Some(&json!(t.format("%Y-%m-%d %H:%M:%S").to_string())))
            })
        });
        let updated = self.site.parse_time(doc.get("modified"));
        Record::Order(map::order(doc, party, placed_at, updated))
    }

    async fn pull_page(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        let Some(doctype) = doctype(object) else {
            return Err(ConnectorError::Unsupported(format!(
                "erpnext ({}) has no {object} stream",
                self.host()
            )));
        };
        let host = self.host().to_string();
        let mut cur: ErpCursor = match from {
            None => ErpCursor::default(),
            Some(c) => serde_json::from_value(c.0.clone()).map_err(|e| {
                self.protocol(format!("the stored cursor is not an erpnext cursor: {e}"))
            })?,
        };
        // Deletions are read from the first pass's start on (minus the
        // overlap): older ones concern records this stream never read.
        let mut deletions = cur.deletions.take().unwrap_or_else(|| Watermark {
            watermark: Some(self.clock.now()),
            ..Watermark::default()
        });
        let mut wm = std::mem::take(&mut cur.wm);
        let req = wm.next_request(self.overlap);
        let (filters, or_filters) = match &req.page {
            Some(token) => {
                let p: Position = serde_json::from_str(token).map_err(|e| {
                    self.protocol(format!("the stored page token `{token}` is malformed: {e}"))
                })?;
                // Keyset: modified > m, or modified = m and name > n. An
                // offset (limit_start) would skip a row whenever a row
                // before it is edited during the pass.
                (
                    json!([["modified", ">=", p.m]]),
                    Some(json!([["modified", ">", p.m], ["name", ">", p.n]])),
                )
            }
            None => match req.since {
                Some(s) => (json!([["modified", ">=", self.site.local_text(s)]]), None),
                None => (json!([]), None),
            },
        };
        let fields = match object {
            ObjectKind::Company => json!(["*"]),
            _ => json!(["name", "modified"]),
        };
        let rows = self
            .site
            .list(&ListQuery {
                doctype,
                fields,
                filters,
                or_filters,
                order_by: ORDER_BY,
                start: 0,
                length: self.page_size,
            })
            .await
            .map_err(self.read_err(&format!("listing {doctype}")))?;
        let full = rows.len() >= self.page_size as usize;
        let last = rows.last().and_then(|r| {
            Some(Position {
                m: map::text(r.get("modified"))?,
                n: map::text(r.get("name"))?,
            })
        });
        let mut page = Page::default();
        let mut admitted: Vec<Doc> = Vec::new();
        for row in rows {
            let (Some(name), Some(updated)) = (
                map::text(row.get("name")),
                self.site.parse_time(row.get("modified")),
            ) else {
                page.rejected.push(synchub_core::connector::Rejected {
                    external_id: map::text(row.get("name")),
                    location: Some(format!("{doctype} at {host}")),
                    reason: "a row without a name or a readable `modified`".into(),
                    raw: Value::Object(row),
                });
                continue;
            };
            if !wm.admit(&name, Some(updated), self.overlap) {
                continue;
            }
            match object {
                ObjectKind::Company => admitted.push(row),
                _ => {
                    if let Some(doc) = self
                        .site
                        .get(doctype, &name)
                        .await
                        .map_err(self.read_err(&format!("reading {doctype} {name}")))?
                    {
                        admitted.push(doc);
                    }
                    // Gone between the list and the read: the deletion
                    // feed reports it.
                }
            }
        }
        let (addresses, customers) = match object {
            ObjectKind::Company => {
                let names: Vec<String> = admitted
                    .iter()
                    .filter_map(|d| map::text(d.get("name")))
                    .collect();
                (self.addresses_for(&names).await?, BTreeMap::new())
            }
            ObjectKind::Order => (BTreeMap::new(), self.parties(&admitted).await?),
            _ => (BTreeMap::new(), BTreeMap::new()),
        };
        let mut addresses = addresses;
        for doc in admitted {
            let name = map::text(doc.get("name")).unwrap_or_default();
            page.records
                .push(self.remote(object, doc, &mut addresses, &customers, name));
        }
        let next = match (full, last) {
            (true, Some(p)) => Some(
                serde_json::to_string(&p)
                    .map_err(|e| self.protocol(format!("cannot encode the page token: {e}")))?,
            ),
            _ => None,
        };
        wm.end_page(&req, next);
        if !wm.in_pass() {
            self.read_deletions(doctype, &mut deletions, &mut page)
                .await?;
        }
        page.done = !wm.in_pass();
        cur.wm = wm;
        cur.deletions = Some(deletions);
        page.next =
            Some(Cursor(serde_json::to_value(&cur).map_err(|e| {
                self.protocol(format!("cannot encode the cursor: {e}"))
            })?));
        Ok(page)
    }

    fn remote(
        &self,
        object: ObjectKind,
        doc: Doc,
        addresses: &mut BTreeMap<String, Vec<Address>>,
        customers: &BTreeMap<String, Doc>,
        name: String,
    ) -> RemoteRecord {
        let disabled = doc.get("disabled").and_then(Value::as_i64) == Some(1);
        let record = match object {
            ObjectKind::Company if disabled => None,
            ObjectKind::Company => Some(Record::Company(map::customer(
                &doc,
                addresses.remove(&name).unwrap_or_default(),
            ))),
            ObjectKind::Order => Some(self.order_record(&doc, customers)),
            _ => Some(Record::Contact(map::contact(&doc))),
        };
        RemoteRecord {
            external_id: name,
            version: map::text(doc.get("modified")),
            updated_at: self.site.parse_time(doc.get("modified")),
            deleted: record.is_none(),
            record,
            raw: Value::Object(doc),
        }
    }

    /// Reads the `Deleted Document` feed of `doctype` since the deletion
    /// watermark (an append-only list, so paging by `limit_start` is
    /// stable) and adds the deletions to `page`.
    async fn read_deletions(
        &self,
        doctype: &str,
        feed: &mut Watermark,
        page: &mut Page,
    ) -> Result<(), ConnectorError> {
        let since = feed.next_request(self.overlap).since;
        let mut filters = vec![json!(["deleted_doctype", "=", doctype])];
        if let Some(s) = since {
            filters.push(json!(["creation", ">=", self.site.local_text(s)]));
        }
        let mut start = 0;
        loop {
            let rows = self
                .site
                .list(&ListQuery {
                    doctype: "Deleted Document",
                    fields: json!([
                        "name",
                        "deleted_name",
                        "deleted_doctype",
                        "restored",
                        "creation"
                    ]),
                    filters: Value::Array(filters.clone()),
                    or_filters: None,
                    order_by: "creation asc, name asc",
                    start,
                    length: self.page_size,
                })
                .await
                .map_err(self.read_err("listing Deleted Document"))?;
            let n = rows.len();
            for row in rows {
                let (Some(id), Some(deleted)) = (
                    map::text(row.get("name")),
                    map::text(row.get("deleted_name")),
                ) else {
                    continue;
                };
                let created = self.site.parse_time(row.get("creation"));
                if !feed.admit(&id, created, self.overlap) {
                    continue;
                }
                if row.get("restored").and_then(Value::as_i64) == Some(1) {
                    continue;
                }
                page.records.push(RemoteRecord {
                    external_id: deleted,
                    version: None,
                    updated_at: created,
                    deleted: true,
                    record: None,
                    raw: Value::Object(row),
                });
            }
            if n < self.page_size as usize {
                return Ok(());
            }
            start += self.page_size;
        }
    }

    /// A push failure for one change.
    fn refusal(&self, e: CallError, what: &str) -> PushError {
        match e {
            CallError::Connector(e) => PushError::from(e),
            CallError::Frappe(f) => {
                let reason = format!("{what} at {}: {f}", self.host());
                match f.kind {
                    ErrorKind::Auth => PushError::Fatal(ConnectorError::Auth {
                        host: self.host().to_string(),
                        message: reason,
                    }),
                    ErrorKind::Transient => PushError::Refused(Refusal::retry(reason, None)),
                    ErrorKind::Stale => PushError::Refused(Refusal::conflict(reason, None)),
                    ErrorKind::Forbidden | ErrorKind::Missing | ErrorKind::Invalid => {
                        PushError::Refused(Refusal::rejected(reason))
                    }
                }
            }
        }
    }

    /// The document `name`, mapped, as the target now holds it.
    async fn current(
        &self,
        object: ObjectKind,
        doctype: &str,
        name: &str,
    ) -> Result<Option<RemoteRecord>, ConnectorError> {
        let Some(doc) = self
            .site
            .get(doctype, name)
            .await
            .map_err(self.read_err(&format!("reading {doctype} {name}")))?
        else {
            return Ok(None);
        };
        Ok(Some(self.mapped(object, doc).await?))
    }

    async fn mapped(&self, object: ObjectKind, doc: Doc) -> Result<RemoteRecord, ConnectorError> {
        let name = map::text(doc.get("name")).unwrap_or_default();
        let mut addresses = match object {
            ObjectKind::Company => self.addresses_for(std::slice::from_ref(&name)).await?,
            _ => BTreeMap::new(),
        };
        Ok(self.remote(object, doc, &mut addresses, &BTreeMap::new(), name))
    }

    async fn written(&self, object: ObjectKind, doc: Doc) -> Result<Written, PushError> {
        let r = self.mapped(object, doc).await?;
        Ok(Written {
            external_id: r.external_id,
            version: r.version,
            record: r.record,
        })
    }

    fn body(
        &self,
        change: &Change,
        fields: &[String],
    ) -> Result<serde_json::Map<String, Value>, PushError> {
        match &change.record {
            Record::Contact(c) => Ok(map::contact_body(c, fields)),
            Record::Company(c) => Ok(map::customer_body(c, fields)),
            other => Err(PushError::Refused(Refusal::rejected(format!(
                "CRM record {} is a {}, which erpnext does not write",
                change.crm_id,
                other.kind()
            )))),
        }
    }

    async fn push_one(&self, object: ObjectKind, change: &Change) -> Result<Written, PushError> {
        let doctype = match (object, &change.record) {
            (ObjectKind::Contact, Record::Contact(_)) => "Contact",
            (ObjectKind::Company, Record::Company(_)) => "Customer",
            _ => {
                return Err(PushError::Refused(Refusal::rejected(format!(
                    "CRM record {} is not a {object}",
                    change.crm_id
                ))))
            }
        };
        match change.op {
            ChangeOp::Create => self.create(object, doctype, change).await,
            ChangeOp::Update => self.update(object, doctype, change).await,
            ChangeOp::Delete => self.remove(object, doctype, change).await,
        }
    }

    /// Frappe takes no idempotency key: the key is stored in
    /// `reference_field` and looked up before every create, so a create
    /// whose answer was lost and is retried finds its document.
    async fn create(
        &self,
        object: ObjectKind,
        doctype: &str,
        change: &Change,
    ) -> Result<Written, PushError> {
        let key = &change.idempotency_key;
        let found = self
            .site
            .list(&ListQuery {
                doctype,
                fields: json!(["name"]),
                filters: json!([[self.reference_field, "=", key]]),
                or_filters: None,
                order_by: "creation asc",
                start: 0,
                length: 1,
            })
            .await
            .map_err(|e| match e {
                // MariaDB's "Unknown column": the custom field was never added.
                CallError::Frappe(f) if f.message.contains("Unknown column") => {
                    PushError::Fatal(ConnectorError::Config(format!(
                        "key `reference_field`: {doctype} at {} has no field `{}`: add it with \
                         Customize Form (a Data field) or name another one (see \
                         docs/connectors/erpnext.md)",
                        self.host(),
                        self.reference_field
                    )))
                }
                e => PushError::from(e.into_connector(
                    self.host(),
                    &format!("looking up {doctype} by `{}`", self.reference_field),
                )),
            })?;
        if let Some(name) = found.first().and_then(|r| map::text(r.get("name"))) {
            let doc = self
                .site
                .get(doctype, &name)
                .await
                .map_err(|e| self.refusal(e, &format!("reading {doctype} {name}")))?
                .ok_or_else(|| {
                    PushError::Refused(Refusal::retry(
                        format!("{doctype} {name} vanished while it was read"),
                        None,
                    ))
                })?;
            return self.written(object, doc).await;
        }
        let all: Vec<String> = change.record.to_fields().keys().cloned().collect();
        let mut body = self.body(change, &all)?;
        body.insert(self.reference_field.clone(), json!(key));
        if let Record::Company(c) = &change.record {
            body.entry("customer_type")
                .or_insert_with(|| json!("Company"));
            if let Some(g) = &self.customer_group {
                body.entry("customer_group").or_insert_with(|| json!(g));
            }
            if let Some(t) = &self.territory {
                body.entry("territory").or_insert_with(|| json!(t));
            }
            if c.name.trim().is_empty() {
                return Err(PushError::Refused(Refusal::rejected(format!(
                    "CRM company {} has no name; ERPNext requires a customer_name",
                    change.crm_id
                ))));
            }
        }
        if let Record::Contact(c) = &change.record {
            if let Some(customer) = c.custom.get(map::CUSTOMER_KEY).and_then(Value::as_str) {
                body.insert(
                    "links".into(),
                    json!([{"link_doctype": "Customer", "link_name": customer}]),
                );
            }
        }
        let doc = self
            .site
            .insert(doctype, &Value::Object(body))
            .await
            .map_err(|e| {
                self.refusal(
                    e,
                    &format!("creating a {doctype} for CRM record {}", change.crm_id),
                )
            })?;
        self.written(object, doc).await
    }

    fn name_of<'a>(&self, change: &'a Change) -> Result<&'a str, PushError> {
        change.external_id.as_deref().ok_or_else(|| {
            PushError::Refused(Refusal::rejected(format!(
                "CRM record {} has no ERPNext name for a {:?}",
                change.crm_id, change.op
            )))
        })
    }

    async fn update(
        &self,
        object: ObjectKind,
        doctype: &str,
        change: &Change,
    ) -> Result<Written, PushError> {
        let name = self.name_of(change)?;
        let fields = change.changed_fields();
        let mut body = self.body(change, &fields)?;
        if body.is_empty() {
            let current = self.current(object, doctype, name).await?.ok_or_else(|| {
                PushError::Refused(Refusal::rejected(format!(
                    "{doctype} {name} no longer exists at {}",
                    self.host()
                )))
            })?;
            return Ok(Written {
                external_id: current.external_id,
                version: current.version,
                record: current.record,
            });
        }
        // Optimistic locking: Frappe compares the `modified` we send with
        // its own and refuses a stale base (TimestampMismatchError, 417).
        if let Some(base) = &change.base_version {
            body.insert("modified".into(), json!(base));
        }
        match self.site.update(doctype, name, &Value::Object(body)).await {
            Ok(doc) => self.written(object, doc).await,
            Err(e) => match self.refusal(e, &format!("updating {doctype} {name}")) {
                PushError::Refused(Refusal::Conflict { reason, .. }) => {
                    let current = self.current(object, doctype, name).await?;
                    Err(PushError::Refused(Refusal::conflict(reason, current)))
                }
                other => Err(other),
            },
        }
    }

    /// A Customer is disabled (ERPNext's archive); a Contact is deleted.
    async fn remove(
        &self,
        object: ObjectKind,
        doctype: &str,
        change: &Change,
    ) -> Result<Written, PushError> {
        let name = self.name_of(change)?;
        if doctype == "Customer" {
            let doc = self
                .site
                .update(doctype, name, &json!({"disabled": 1}))
                .await
                .map_err(|e| self.refusal(e, &format!("disabling {doctype} {name}")))?;
            return self.written(object, doc).await;
        }
        match self.site.delete(doctype, name).await {
            Ok(()) => {}
            // A retried delete whose first answer was lost.
            Err(CallError::Frappe(f)) if f.kind == ErrorKind::Missing => {}
            Err(e) => return Err(self.refusal(e, &format!("deleting {doctype} {name}"))),
        }
        Ok(Written {
            external_id: name.to_string(),
            version: None,
            record: None,
        })
    }
}

#[async_trait]
impl Connector for ErpNextConnector {
    fn kind(&self) -> &'static str {
        "erpnext"
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
            spec(ObjectKind::Order, false),
        ]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        for doctype in ["Customer", "Contact"] {
            self.site
                .list(&ListQuery {
                    doctype,
                    fields: json!(["name"]),
                    filters: json!([]),
                    or_filters: None,
                    order_by: ORDER_BY,
                    start: 0,
                    length: 1,
                })
                .await
                .map_err(self.read_err(&format!("listing {doctype}")))?;
        }
        Ok(())
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        self.pull_page(object, from).await
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        if !matches!(object, ObjectKind::Contact | ObjectKind::Company) {
            return Err(ConnectorError::Unsupported(format!(
                "erpnext ({}) does not write {object}",
                self.host()
            )));
        }
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            match self.push_one(object, change).await {
                Ok(w) => out.push(PushOutcome::written(&change.crm_id, w)),
                Err(PushError::Refused(r)) => out.push(PushOutcome::refused(&change.crm_id, r)),
                Err(PushError::Fatal(e)) => return Err(e),
            }
        }
        Ok(out)
    }
}
