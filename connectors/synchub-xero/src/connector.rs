//! The Xero connector of one tenant and its factory (`kind = "xero"`):
//! If-Modified-Since listings paged on a [`Watermark`], contact writes
//! (archive = delete; `UpdatedDateUTC` compared before an update, as Xero
//! has no concurrency token), and orders as ACCREC invoices exactly once
//! (`Idempotency-Key` on the create, and a lookup by `Reference` first).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::SecondsFormat;
use serde_json::{json, Value};
use synchub_core::model::Record;
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ErrorClass, ObjectKind, ObjectSpec, Page,
    PushOutcome, Refusal, Rejected, Watermark, Written,
};
use synchub_http::{
    Auth, Built, ConnectorFactory, Deps, HttpClient, OAuthConfig, RequestBuilder, Response, SignIn,
    TokenManager,
};

use crate::config::{XeroConfig, OAUTH};
use crate::map;
use crate::policy::{default_quota, rate_problem, retry_after, XeroPolicy};
use crate::webhook::XeroWebhooks;

/// The factory registered under `xero`.
#[derive(Debug, Clone, Copy, Default)]
pub struct XeroFactory;

/// One Xero organisation.
#[derive(Debug)]
pub struct Xero {
    cfg: XeroConfig,
    http: HttpClient,
    deps: Deps,
    tokens: Option<Arc<TokenManager>>,
}

type WriteResult = Result<Result<Written, Refusal>, ConnectorError>;

/// The OAuth settings of a configuration (the token manager's and
/// `synchub auth`'s).
pub fn oauth_config(cfg: &XeroConfig) -> Result<OAuthConfig, ConnectorError> {
    cfg.oauth_config()
}

impl ConnectorFactory for XeroFactory {
    const KIND: &'static str = "xero";
    type Config = XeroConfig;

    fn build(config: XeroConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let x = Arc::new(Xero::new(config, deps)?);
        let webhooks = x
            .cfg
            .webhook_key
            .clone()
            .map(|k| Arc::new(XeroWebhooks::new(x.cfg.tenant_id.clone(), k)) as _);
        Ok(Built {
            connector: x,
            webhooks,
        })
    }

    fn sign_in(config: &XeroConfig) -> Result<Option<SignIn>, ConnectorError> {
        config
            .oauth_settings()
            .sign_in(&OAUTH)
            .map(Some)
            .map_err(ConnectorError::Config)
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}

impl Xero {
    /// Builds the connector (no IO).
    pub fn new(cfg: XeroConfig, deps: &Deps) -> Result<Self, ConnectorError> {
        cfg.validate()?;
        if let Some(k) = &cfg.webhook_key {
            synchub_http::secret::register(k);
        }
        // One sign-in reaches several tenants: the token is the connection's,
        // the quota is the tenant's.
        let tokens = match &deps.tokens {
            Some(vault) => Some(Arc::new(
                TokenManager::new(
                    &deps.connection,
                    oauth_config(&cfg)?,
                    vault.clone(),
                    synchub_http::new_reqwest_client().map_err(ConnectorError::from)?,
                )
                .with_clock(deps.clock.clone()),
            )),
            None => None,
        };
        let http = deps
            .http(
                HttpClient::builder(cfg.api_base())
                    .credential(format!("xero:{}", cfg.tenant_id))
                    .quota(cfg.quota.clone().unwrap_or_else(default_quota))
                    .policy(Arc::new(XeroPolicy))
                    .auth(tokens.clone().map_or(Auth::None, Auth::OAuth))
                    .default_header("accept", "application/json")
                    .and_then(|b| b.default_header("xero-tenant-id", &cfg.tenant_id))
                    .map_err(ConnectorError::from)?,
            )
            .map_err(ConnectorError::from)?;
        Ok(Xero {
            cfg,
            http,
            deps: deps.clone(),
            tokens,
        })
    }

    /// The token manager, when a token store is open.
    pub fn tokens(&self) -> Option<&Arc<TokenManager>> {
        self.tokens.as_ref()
    }

    fn host(&self) -> &str {
        self.http.host()
    }

    /// Sends a request; a day-limit 429 pauses this connection through
    /// `Deps::wait` (long waits end the run with a retry error naming when
    /// it resumes), then the request is sent again.
    async fn send<'a>(
        &'a self,
        make: impl Fn() -> RequestBuilder<'a>,
        what: &str,
    ) -> Result<Response, ConnectorError> {
        if self.tokens.is_none() {
            return Err(ConnectorError::Auth {
                host: self.host().to_string(),
                message: format!(
                    "no token store is open for {0}; run `synchub auth {0}`",
                    self.deps.connection
                ),
            });
        }
        loop {
            let resp = make().send().await.map_err(ConnectorError::from)?;
            let status = resp.status().as_u16();
            if status == 429 {
                let problem = rate_problem(resp.headers()).unwrap_or_default();
                let wait = retry_after(resp.headers()).unwrap_or(Duration::from_secs(3600));
                self.deps
                    .wait(
                        wait,
                        self.host(),
                        &format!(
                            "{what}: the {problem} call limit of Xero tenant {} is reached",
                            self.cfg.tenant_id
                        ),
                    )
                    .await?;
                continue;
            }
            if status == 401 || status == 403 {
                return Err(ConnectorError::Auth {
                    host: self.host().to_string(),
                    message: format!(
                        "{what}: HTTP {status} for tenant {} ({}); run `synchub auth {}`",
                        self.cfg.tenant_id,
                        excerpt(resp.body()),
                        self.deps.connection
                    ),
                });
            }
            return Ok(resp);
        }
    }

    fn json(&self, what: &str, resp: &Response) -> Result<Value, ConnectorError> {
        serde_json::from_slice(resp.body()).map_err(|e| ConnectorError::Protocol {
            host: self.host().to_string(),
            message: format!(
                "{what}: HTTP {} answer is not JSON: {e}",
                resp.status().as_u16()
            ),
        })
    }

    async fn list(
        &self,
        collection: &str,
        from: Option<&Cursor>,
        map: fn(&Value) -> Result<synchub_core::RemoteRecord, String>,
    ) -> Result<Page, ConnectorError> {
        let overlap = chrono::Duration::seconds(i64::from(self.cfg.overlap_seconds));
        let mut wm = Watermark::from_cursor(from, self.host())?;
        let req = wm.next_request(overlap);
        let page_no: u64 = match &req.page {
            Some(p) => p.parse().map_err(|_| ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("the stored cursor has a bad page `{p}`"),
            })?,
            None => 1,
        };
        let page_s = page_no.to_string();
        let size = self.cfg.page_size.to_string();
        let since = req
            .since
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
        let resp = self
            .send(
                || {
                    let mut rb = self.http.get(collection).query(&[
                        ("page", page_s.as_str()),
                        ("pageSize", size.as_str()),
                        ("order", "UpdatedDateUTC ASC"),
                        ("includeArchived", "true"),
                    ]);
                    if let Some(s) = &since {
                        rb = rb.header("if-modified-since", s);
                    }
                    rb
                },
                &format!("list {collection}"),
            )
            .await?;
        let rows = match resp.status().as_u16() {
            // Nothing changed since then (some answers are 304, some 200-empty).
            304 => Vec::new(),
            200 => self
                .json(collection, &resp)?
                .get(collection)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            s => {
                return Err(ConnectorError::Protocol {
                    host: self.host().to_string(),
                    message: format!("list {collection}: HTTP {s}: {}", excerpt(resp.body())),
                })
            }
        };
        let mut page = Page::default();
        for (i, o) in rows.iter().enumerate() {
            let id = o
                .get("ContactID")
                .or_else(|| o.get("InvoiceID"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !wm.admit(id, map::updated(o), overlap) {
                continue;
            }
            match map(o) {
                Ok(r) => page.records.push(r),
                Err(reason) => page.rejected.push(Rejected {
                    external_id: Some(id.to_string()).filter(|s| !s.is_empty()),
                    location: Some(format!("{collection} page {page_no} item {i}")),
                    reason,
                    raw: o.clone(),
                }),
            }
        }
        let full = rows.len() as u64 >= u64::from(self.cfg.page_size);
        wm.end_page(&req, full.then(|| (page_no + 1).to_string()));
        page.done = !wm.in_pass();
        page.next = Some(wm.to_cursor());
        Ok(page)
    }

    async fn get_one(&self, collection: &str, id: &str) -> Result<Option<Value>, ConnectorError> {
        let path = format!("{collection}/{id}");
        let resp = self
            .send(|| self.http.get(&path), &format!("read {path}"))
            .await?;
        match resp.status().as_u16() {
            404 => Ok(None),
            200 => Ok(self
                .json(&path, &resp)?
                .get(collection)
                .and_then(|a| a.get(0))
                .cloned()),
            s => Err(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("read {path}: HTTP {s}: {}", excerpt(resp.body())),
            }),
        }
    }

    async fn find(&self, collection: &str, filter: &str) -> Result<Option<Value>, ConnectorError> {
        let resp = self
            .send(
                || {
                    self.http
                        .get(collection)
                        .query(&[("where", filter), ("page", "1")])
                },
                &format!("search {collection}"),
            )
            .await?;
        if resp.status().as_u16() != 200 {
            return Err(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!(
                    "search {collection}: HTTP {}: {}",
                    resp.status().as_u16(),
                    excerpt(resp.body())
                ),
            });
        }
        Ok(self
            .json(collection, &resp)?
            .get(collection)
            .and_then(|a| a.get(0))
            .cloned())
    }

    /// POSTs `{collection: [body]}`; returns the object or a refusal.
    async fn post(
        &self,
        path: &str,
        collection: &str,
        body: Value,
        key: &str,
    ) -> Result<Result<Value, Refusal>, ConnectorError> {
        let envelope = json!({ collection: [body] });
        let resp = self
            .send(
                || {
                    self.http
                        .post(path)
                        .idempotency_key(crate::policy::idempotency_key(key))
                        .json(&envelope)
                },
                &format!("write {path}"),
            )
            .await?;
        let status = resp.status().as_u16();
        let v = self.json(path, &resp)?;
        if status == 200 {
            return v
                .get(collection)
                .and_then(|a| a.get(0))
                .cloned()
                .map(Ok)
                .ok_or_else(|| ConnectorError::Protocol {
                    host: self.host().to_string(),
                    message: format!("write {path}: the answer has no {collection}"),
                });
        }
        if status == 400 {
            return Ok(Err(Refusal::rejected(format!(
                "{}: write {path}: {}",
                self.host(),
                validation_messages(&v)
            ))));
        }
        Err(ConnectorError::Unavailable {
            host: self.host().to_string(),
            message: format!("write {path}: HTTP {status}: {}", excerpt(resp.body())),
            retry_after: None,
        })
    }

    async fn write_contact(&self, change: &Change) -> WriteResult {
        let Record::Contact(c) = &change.record else {
            return Ok(Err(Refusal::rejected(format!(
                "{} is not a contact",
                change.crm_id
            ))));
        };
        let key = &change.idempotency_key;
        let (path, body) = match (change.op, change.external_id.as_deref()) {
            (ChangeOp::Create, _) | (_, None) => ("Contacts".to_string(), map::contact_body(c)),
            (op, Some(id)) => {
                // No concurrency token: compare UpdatedDateUTC with our base.
                let Some(current) = self.get_one("Contacts", id).await? else {
                    return Ok(Err(Refusal::rejected(format!(
                        "contact {id} no longer exists in Xero"
                    ))));
                };
                let now = current.get("UpdatedDateUTC").and_then(Value::as_str);
                if let (Some(base), Some(now)) = (change.base_version.as_deref(), now) {
                    if base != now {
                        return Ok(Err(Refusal::conflict(
                            format!("{}: contact {id} changed since {base}", self.host()),
                            map::contact_to_remote(&current).ok(),
                        )));
                    }
                }
                let mut body = if op == ChangeOp::Delete {
                    json!({"ContactStatus": "ARCHIVED"})
                } else {
                    map::contact_body(c)
                };
                body["ContactID"] = json!(id);
                (format!("Contacts/{id}"), body)
            }
        };
        if body.get("Name").is_none() && body.get("ContactID").is_none() {
            return Ok(Err(Refusal::rejected(
                "a Xero contact needs a Name: the contact has no name or email",
            )));
        }
        Ok(self
            .post(&path, "Contacts", body, key)
            .await?
            .map(|v| written(&v, "ContactID")))
    }

    async fn write_order(&self, change: &Change) -> WriteResult {
        let Record::Order(order) = &change.record else {
            return Ok(Err(Refusal::rejected(format!(
                "{} is not an order",
                change.crm_id
            ))));
        };
        if change.op == ChangeOp::Delete {
            return Ok(Err(Refusal::rejected(format!(
                "order {} was deleted in the CRM; its Xero invoice is kept: void it in Xero if it is wrong",
                change.crm_id
            ))));
        }
        if let Some(id) = change.external_id.as_deref() {
            return Ok(match self.get_one("Invoices", id).await? {
                Some(v) => Ok(written(&v, "InvoiceID")),
                None => Err(Refusal::rejected(format!(
                    "invoice {id} no longer exists in Xero"
                ))),
            });
        }
        if !self.cfg.invoice_when.matches(order) {
            return Ok(Err(Refusal::rejected(format!(
                "order {} is not in the state `invoice_when = {:?}` names; not invoiced",
                change.crm_id, self.cfg.invoice_when
            ))));
        }
        let reference = map::order_reference(&change.crm_id);
        if let Some(found) = self
            .find("Invoices", &format!("Reference=={}", quote(&reference)))
            .await?
        {
            tracing::info!(host = %self.host(), order = %change.crm_id, "order already invoiced; linking the existing invoice");
            return Ok(Ok(written(&found, "InvoiceID")));
        }
        let Some(party) = order
            .customer
            .as_ref()
            .filter(|p| p.email.is_some() || p.name.is_some())
        else {
            return Ok(Err(Refusal::rejected(format!(
                "order {} has no customer email or name to bill",
                change.crm_id
            ))));
        };
        let mut contact_id = None;
        if let Some(e) = &party.email {
            contact_id = self
                .find("Contacts", &format!("EmailAddress=={}", quote(e)))
                .await?;
        }
        if contact_id.is_none() {
            if let Some(n) = &party.name {
                contact_id = self
                    .find("Contacts", &format!("Name=={}", quote(n)))
                    .await?;
            }
        }
        let contact_id = match contact_id.and_then(|c| {
            c.get("ContactID")
                .and_then(Value::as_str)
                .map(str::to_string)
        }) {
            Some(id) => id,
            None => {
                let c = synchub_core::model::Contact {
                    full_name: party.name.clone(),
                    emails: party.email.iter().cloned().collect(),
                    ..Default::default()
                };
                let key = format!("contact-{}", change.idempotency_key);
                match self
                    .post("Contacts", "Contacts", map::contact_body(&c), &key)
                    .await?
                {
                    Ok(v) => written(&v, "ContactID").external_id,
                    Err(r) => return Ok(Err(r)),
                }
            }
        };
        let body = map::order_to_invoice(
            order,
            &change.crm_id,
            &contact_id,
            &self.cfg.sales_account_code,
        );
        Ok(self
            .post("Invoices", "Invoices", body, &change.idempotency_key)
            .await?
            .map(|v| written(&v, "InvoiceID")))
    }
}

fn written(v: &Value, id_key: &str) -> Written {
    Written {
        external_id: v
            .get(id_key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        version: v
            .get("UpdatedDateUTC")
            .and_then(Value::as_str)
            .map(str::to_string),
        record: None,
    }
}

fn excerpt(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    synchub_http::secret::redact(&t.chars().take(200).collect::<String>()).into_owned()
}

/// The messages of a ValidationException.
pub fn validation_messages(v: &Value) -> String {
    let mut out: Vec<String> = v
        .get("Elements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e.get("ValidationErrors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|e| e.get("Message").and_then(Value::as_str).map(str::to_string))
        .collect();
    if out.is_empty() {
        out.push(
            v.get("Message")
                .and_then(Value::as_str)
                .unwrap_or("validation failed")
                .to_string(),
        );
    }
    out.join("; ")
}

#[async_trait]
impl Connector for Xero {
    fn kind(&self) -> &'static str {
        "xero"
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        vec![
            ObjectSpec {
                kind: ObjectKind::Contact,
                can_read: true,
                incremental: true,
                can_write: true,
            },
            ObjectSpec {
                kind: ObjectKind::Order,
                can_read: false,
                incremental: false,
                can_write: true,
            },
            ObjectSpec {
                kind: ObjectKind::Invoice,
                can_read: true,
                incremental: true,
                can_write: false,
            },
        ]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        let resp = self
            .send(|| self.http.get("Organisation"), "read Organisation")
            .await?;
        match resp.status().as_u16() {
            200 => Ok(()),
            s => Err(ConnectorError::Protocol {
                host: self.host().to_string(),
                message: format!("read Organisation: HTTP {s}"),
            }),
        }
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        match object {
            ObjectKind::Contact => self.list("Contacts", from, map::contact_to_remote).await,
            ObjectKind::Invoice => self.list("Invoices", from, map::invoice_to_remote).await,
            other => Err(ConnectorError::Unsupported(format!(
                "xero cannot read {other}"
            ))),
        }
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            let r = match object {
                ObjectKind::Contact => self.write_contact(c).await,
                ObjectKind::Order => self.write_order(c).await,
                other => {
                    return Err(ConnectorError::Unsupported(format!(
                        "xero cannot write {other}"
                    )))
                }
            };
            match r {
                Ok(Ok(w)) => out.push(PushOutcome::written(&c.crm_id, w)),
                Ok(Err(refusal)) => out.push(PushOutcome::refused(&c.crm_id, refusal)),
                Err(e) => match e.class() {
                    ErrorClass::Reauth | ErrorClass::Config => return Err(e),
                    _ if matches!(e, ConnectorError::Cancelled(_)) => return Err(e),
                    _ => out.push(PushOutcome::refused(&c.crm_id, Refusal::from_error(&e))),
                },
            }
        }
        Ok(out)
    }
}
