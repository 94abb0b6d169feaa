//! A stateful fake of the Xero Accounting API for tests, faithful to
//! `api-notes/xero.md` and its fixtures:
//!
//! - several tenants behind one sign-in; `xero-tenant-id` required on every
//!   call (403 when missing or not connected), bearer tokens checked (401);
//! - `GET /Contacts` and `/Invoices` with `page` (1-based), `pageSize`
//!   (≤ 100), `order=UpdatedDateUTC ASC`, `includeArchived`, `where` with
//!   `Field=="value"` terms joined by `AND`, and `If-Modified-Since`;
//!   the envelope with `pagination`; MS-JSON dates;
//! - `POST /Contacts[/{id}]` create-or-update (Name unique among active
//!   contacts, ARCHIVED to delete), `POST /Invoices` (contact must exist,
//!   currency must be the organisation's, totals computed), `PUT /Payments`
//!   lowering `AmountDue` and marking PAID; `Idempotency-Key` answering a
//!   repeat with the first answer;
//! - per-tenant limits: minute and day counters answering 429 with
//!   `Retry-After` and `X-Rate-Limit-Problem`, and `X-MinLimit-Remaining` /
//!   `X-DayLimit-Remaining` on every answer;
//! - `POST /connect/token` with rotating refresh tokens;
//! - fault injection: creates whose answer is lost after the commit.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::XeroConfig;
use crate::map::{decimal, money, ms_date, parse_date, updated};

/// The first tenant of the sandbox sign-in (the fixture webhook's tenant).
pub const TENANT_A: &str = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f";
/// A second tenant reachable with the same token.
pub const TENANT_B: &str = "0b9a2c1d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
/// The webhook key of the fixtures.
pub const WEBHOOK_KEY: &str = "xero_webhook_key_test";

/// Limits of one tenant.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls per minute window.
    pub per_minute: usize,
    /// The minute window (shortened in tests).
    pub minute: Duration,
    /// Calls per day.
    pub per_day: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_minute: 60,
            minute: Duration::from_secs(60),
            per_day: 5000,
        }
    }
}

/// One organisation.
#[derive(Debug, Default)]
pub struct Org {
    /// Contacts in insertion order.
    pub contacts: Vec<Value>,
    /// Invoices in insertion order.
    pub invoices: Vec<Value>,
    /// Currencies of the organisation (base first).
    pub currencies: Vec<String>,
    idempotent: HashMap<String, (u16, Value)>,
    minute: Vec<Instant>,
    day_calls: u64,
    limits: Limits,
    last: Option<DateTime<Utc>>,
}

impl Org {
    fn tick(&mut self) -> DateTime<Utc> {
        #[allow(clippy::disallowed_methods)]
        let now = Utc::now();
        let t = match self.last {
            Some(l) if l >= now => l + chrono::Duration::milliseconds(1),
            _ => now,
        };
        self.last = Some(t);
        t
    }

    fn stamp(&mut self, v: &mut Value) {
        let t = self.tick();
        v["UpdatedDateUTC"] = json!(ms_date(t));
    }

    /// Records a payment against an invoice.
    pub fn pay(&mut self, invoice_id: &str, amount: Decimal) -> Result<Value, String> {
        let t = self.tick();
        let inv = self
            .invoices
            .iter_mut()
            .find(|i| i["InvoiceID"] == invoice_id)
            .ok_or_else(|| format!("invoice {invoice_id} not found"))?;
        let due = decimal(inv.get("AmountDue")).unwrap_or_default();
        if amount > due {
            return Err(format!("payment {amount} exceeds the amount due {due}"));
        }
        let paid = decimal(inv.get("AmountPaid")).unwrap_or_default() + amount;
        inv["AmountDue"] = money(due - amount);
        inv["AmountPaid"] = money(paid);
        if (due - amount).is_zero() {
            inv["Status"] = json!("PAID");
        }
        if let Some(p) = inv.get_mut("Payments").and_then(Value::as_array_mut) {
            p.push(json!({"Amount": money(amount), "Date": ms_date(t)}));
        }
        inv["UpdatedDateUTC"] = json!(ms_date(t));
        Ok(inv.clone())
    }
}

#[derive(Debug)]
struct Tokens {
    access: String,
    refresh: String,
    n: u64,
}

/// Shared state of a running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    orgs: Mutex<BTreeMap<String, Org>>,
    tokens: Mutex<Tokens>,
    next_id: AtomicU64,
    lose: AtomicU64,
    refreshes: AtomicU64,
    throttled: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sandbox {
    /// The organisations.
    pub fn orgs(&self) -> MutexGuard<'_, BTreeMap<String, Org>> {
        lock(&self.orgs)
    }
    /// The accepted access token.
    pub fn access_token(&self) -> String {
        lock(&self.tokens).access.clone()
    }
    /// The accepted refresh token.
    pub fn refresh_token(&self) -> String {
        lock(&self.tokens).refresh.clone()
    }
    /// Expires the access token.
    pub fn expire_access_token(&self) {
        let mut t = lock(&self.tokens);
        t.n += 1;
        t.access = format!("xero-expired-{}", t.n);
    }
    /// Revokes the connection: the access and the refresh token stop
    /// working; a refresh answers `invalid_grant`.
    pub fn revoke_tokens(&self) {
        let mut t = lock(&self.tokens);
        t.n += 1;
        t.access = format!("xero-revoked-{}", t.n);
        t.refresh = format!("xero-rt-revoked-{}", t.n);
    }
    /// Loses the answers of the next `n` creates.
    pub fn lose_create_answers(&self, n: u64) {
        self.lose.store(n, Ordering::SeqCst);
    }
    /// Token refreshes served.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }
    /// 429 answers given.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::SeqCst)
    }
    /// Sets the limits of a tenant and resets its counters.
    pub fn set_limits(&self, tenant: &str, limits: Limits) {
        if let Some(o) = self.orgs().get_mut(tenant) {
            o.limits = limits;
            o.minute.clear();
            o.day_calls = 0;
        }
    }

    fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        format!("{n:08x}-0000-4000-8000-{n:012x}")
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxHandle {
    /// Shared state.
    pub state: Arc<Sandbox>,
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// A configuration for `tenant` pointing at the sandbox.
    pub fn config(&self, tenant: &str) -> XeroConfig {
        let mut c = XeroConfig::new(tenant, "xero-sandbox-client");
        c.client_secret = Some("xero-sandbox-secret".to_string().into());
        c.base_url = Some(format!("{}/api.xro/2.0/", self.url()));
        c.token_url = Some(format!("{}/connect/token", self.url()));
        c.auth_url = Some(format!("{}/identity/connect/authorize", self.url()));
        c.webhook_key = Some(WEBHOOK_KEY.to_string().into());
        c
    }
    /// Stops serving.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts a sandbox with two tenants; tenant A holds the fixture contacts
/// plus `contacts` generated ones; base currency NZD, also USD.
pub async fn spawn(contacts: usize) -> std::io::Result<SandboxHandle> {
    let state = Arc::new(Sandbox {
        orgs: Mutex::new(BTreeMap::new()),
        tokens: Mutex::new(Tokens {
            access: "xero-at-0".into(),
            refresh: "xero-rt-0".into(),
            n: 0,
        }),
        next_id: AtomicU64::new(1),
        lose: AtomicU64::new(0),
        refreshes: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
    });
    {
        let mut orgs = state.orgs();
        for t in [TENANT_A, TENANT_B] {
            orgs.insert(
                t.into(),
                Org {
                    currencies: vec!["NZD".into(), "USD".into()],
                    ..Org::default()
                },
            );
        }
        let fixture: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/contacts_page.json"))
                .unwrap_or(Value::Null);
        if let Some(a) = orgs.get_mut(TENANT_A) {
            a.contacts
                .extend(fixture["Contacts"].as_array().cloned().unwrap_or_default());
            #[allow(clippy::disallowed_methods)]
            let base = Utc::now() - chrono::Duration::days(1);
            for i in 0..contacts {
                a.contacts.push(json!({"ContactID": state.new_id(), "ContactStatus": "ACTIVE", "Name": format!("Contact {i:05}"),
                    "EmailAddress": format!("contact{i}@example.co.nz"),
                    // Several contacts share a second.
                    "UpdatedDateUTC": ms_date(base + chrono::Duration::seconds(i as i64 / 3))}));
            }
        }
    }
    let app = Router::new()
        .route("/connect/token", post(token))
        .route("/api.xro/2.0/Organisation", get(organisation))
        .route("/api.xro/2.0/:collection", get(list).post(write).put(write))
        .route(
            "/api.xro/2.0/:collection/:id",
            get(read_one).post(write_one),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "xero sandbox stopped");
        }
    });
    Ok(SandboxHandle {
        state,
        addr,
        stop: Some(tx),
        task,
    })
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({"Type": null, "Title": title, "Status": status.as_u16(), "Detail": detail})),
    )
        .into_response()
}

fn validation(messages: &[String], element: Value) -> Response {
    let mut el = element;
    el["ValidationErrors"] = Value::Array(messages.iter().map(|m| json!({"Message": m})).collect());
    el["HasValidationErrors"] = json!(true);
    (StatusCode::BAD_REQUEST, Json(json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred", "Elements": [el]}))).into_response()
}

/// Auth, tenant and limits; returns the tenant id or the refusal.
fn gate(s: &Sandbox, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(s.access_token().as_str()) {
        return Err(Box::new(problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AuthenticationUnsuccessful",
        )));
    }
    let tenant = headers
        .get("xero-tenant-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut orgs = s.orgs();
    let Some(org) = orgs.get_mut(&tenant) else {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "AuthorizationUnsuccessful: xero-tenant-id is missing or not connected to this token",
        )));
    };
    let now = Instant::now();
    let window = org.limits.minute;
    org.minute.retain(|t| now.duration_since(*t) < window);
    // The budget headers describe Xero's real 60-second window; a test that
    // shortens the window gets only Retry-After and the problem name.
    let real_minute = window == Duration::from_secs(60);
    let refuse = |which: &str, wait: u64, min_left: usize, day_left: u64| {
        let mut r = (StatusCode::TOO_MANY_REQUESTS, "").into_response();
        let h = r.headers_mut();
        let mut pairs = vec![
            ("retry-after", wait.to_string()),
            ("x-rate-limit-problem", which.to_string()),
        ];
        if real_minute {
            pairs.push(("x-minlimit-remaining", min_left.to_string()));
            pairs.push(("x-daylimit-remaining", day_left.to_string()));
        }
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        r
    };
    if org.day_calls >= org.limits.per_day {
        s.throttled.fetch_add(1, Ordering::SeqCst);
        // A rolling day: hours until a slot frees.
        return Err(Box::new(refuse(
            "day",
            6 * 3600,
            org.limits.per_minute.saturating_sub(org.minute.len()),
            0,
        )));
    }
    if org.minute.len() >= org.limits.per_minute {
        s.throttled.fetch_add(1, Ordering::SeqCst);
        let oldest = org.minute.first().copied().unwrap_or(now);
        let wait = window
            .saturating_sub(now.duration_since(oldest))
            .as_secs()
            .max(1);
        return Err(Box::new(refuse(
            "minute",
            wait,
            0,
            org.limits.per_day - org.day_calls,
        )));
    }
    org.minute.push(now);
    org.day_calls += 1;
    Ok(tenant)
}

async fn token(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let form: HashMap<&str, &str> = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let mut t = lock(&s.tokens);
    if form.get("grant_type") != Some(&"refresh_token")
        || form.get("refresh_token") != Some(&t.refresh.as_str())
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    t.n += 1;
    t.access = format!("xero-at-{}", t.n);
    t.refresh = format!("xero-rt-{}", t.n);
    s.refreshes.fetch_add(1, Ordering::SeqCst);
    Json(json!({"access_token": t.access, "refresh_token": t.refresh, "token_type": "Bearer", "expires_in": 1800})).into_response()
}

async fn organisation(State(s): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    match gate(&s, &headers) {
        Ok(t) => Json(json!({"Status": "OK", "Organisations": [{"OrganisationID": t, "BaseCurrency": "NZD"}]})).into_response(),
        Err(r) => *r,
    }
}

fn matches_where(o: &Value, filter: &str) -> bool {
    filter.split(" AND ").all(|term| {
        let Some((field, value)) = term.split_once("==") else {
            return false;
        };
        let value = value.trim().trim_matches('"').replace("\\\"", "\"");
        o.get(field.trim())
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(&value))
    })
}

async fn list(
    State(s): State<Arc<Sandbox>>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let tenant = match gate(&s, &headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let orgs = s.orgs();
    let Some(org) = orgs.get(&tenant) else {
        return problem(StatusCode::FORBIDDEN, "Forbidden", "tenant");
    };
    let rows = match collection.as_str() {
        "Contacts" => &org.contacts,
        "Invoices" => &org.invoices,
        _ => {
            return problem(
                StatusCode::NOT_FOUND,
                "Not Found",
                "The resource you're looking for cannot be found",
            )
        }
    };
    let since = headers
        .get("if-modified-since")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date);
    let archived = q.get("includeArchived").is_some_and(|v| v == "true");
    let mut list: Vec<&Value> = rows
        .iter()
        .filter(|o| archived || collection != "Contacts" || o["ContactStatus"] == "ACTIVE")
        .filter(|o| since.is_none_or(|t| updated(o).is_some_and(|u| u >= t)))
        .filter(|o| q.get("where").is_none_or(|w| matches_where(o, w)))
        .collect();
    list.sort_by_key(|o| {
        (
            updated(o),
            o.get("ContactID")
                .or_else(|| o.get("InvoiceID"))
                .and_then(Value::as_str)
                .map(str::to_string),
        )
    });
    let size: usize = q
        .get("pageSize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let count = list.len();
    let items: Vec<Value> = list
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    #[allow(clippy::disallowed_methods)]
    let now = Utc::now();
    Json(json!({"Id": s.new_id(), "Status": "OK", "ProviderName": "synchub sandbox", "DateTimeUTC": ms_date(now),
        "pagination": {"page": page, "pageSize": size, "pageCount": count.div_ceil(size), "itemCount": count},
        collection.as_str(): items}))
    .into_response()
}

async fn read_one(
    State(s): State<Arc<Sandbox>>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let tenant = match gate(&s, &headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let orgs = s.orgs();
    let key = if collection == "Contacts" {
        "ContactID"
    } else {
        "InvoiceID"
    };
    let found = orgs.get(&tenant).and_then(|o| {
        let rows = if collection == "Contacts" {
            &o.contacts
        } else {
            &o.invoices
        };
        rows.iter().find(|r| r[key] == id.as_str()).cloned()
    });
    match found {
        Some(v) => Json(json!({"Status": "OK", collection.as_str(): [v]})).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "The resource you're looking for cannot be found",
        ),
    }
}

async fn write_one(
    st: State<Arc<Sandbox>>,
    Path((collection, _id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write(st, Path(collection), headers, body).await
}

async fn write(
    State(s): State<Arc<Sandbox>>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tenant = match gate(&s, &headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(k) = &key {
        if let Some((status, v)) = s
            .orgs()
            .get(&tenant)
            .and_then(|o| o.idempotent.get(k).cloned())
        {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                Json(v),
            )
                .into_response();
        }
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(item) = parsed
        .get(collection.as_str())
        .and_then(|a| a.get(0))
        .cloned()
    else {
        return validation(
            &[format!("the body must hold a {collection} array")],
            json!({}),
        );
    };
    let mut orgs = s.orgs();
    let Some(org) = orgs.get_mut(&tenant) else {
        return problem(StatusCode::FORBIDDEN, "Forbidden", "tenant");
    };
    let (created, result) = match collection.as_str() {
        "Contacts" => write_contact(&s, org, item),
        "Invoices" => write_invoice(&s, org, item),
        "Payments" => {
            let id = item["Invoice"]["InvoiceID"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let amount = decimal(item.get("Amount")).unwrap_or_default();
            (
                true,
                org.pay(&id, amount).map_err(|m| (vec![m], item.clone())),
            )
        }
        _ => return problem(StatusCode::NOT_FOUND, "Not Found", "unknown collection"),
    };
    let (status, answer) = match result {
        Ok(v) => (
            200u16,
            json!({"Id": s.new_id(), "Status": "OK", collection.as_str(): [v]}),
        ),
        Err((msgs, el)) => {
            let mut el = el;
            el["ValidationErrors"] =
                Value::Array(msgs.iter().map(|m| json!({"Message": m})).collect());
            (
                400,
                json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred", "Elements": [el]}),
            )
        }
    };
    if let Some(k) = key {
        org.idempotent.insert(k, (status, answer.clone()));
    }
    drop(orgs);
    if status == 200 && created {
        let lose = s.lose.load(Ordering::SeqCst);
        if lose > 0 {
            s.lose.store(lose - 1, Ordering::SeqCst);
            return (StatusCode::BAD_GATEWAY, "connection reset").into_response();
        }
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(answer),
    )
        .into_response()
}

type WriteOutcome = (bool, Result<Value, (Vec<String>, Value)>);

fn write_contact(s: &Sandbox, org: &mut Org, item: Value) -> WriteOutcome {
    let id = item
        .get("ContactID")
        .and_then(Value::as_str)
        .map(str::to_string);
    let idx = id.as_ref().and_then(|id| {
        org.contacts
            .iter()
            .position(|c| c["ContactID"] == id.as_str())
    });
    let mut next = match idx {
        Some(i) => {
            let mut c = org.contacts[i].clone();
            for (k, v) in item.as_object().cloned().unwrap_or_default() {
                c[k.as_str()] = v;
            }
            c
        }
        None if id.is_some() => {
            return (false, Err((vec!["The contact was not found".into()], item)))
        }
        None => {
            let mut c = item.clone();
            c["ContactID"] = json!(s.new_id());
            c["ContactStatus"] = json!("ACTIVE");
            c
        }
    };
    let name = next
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return (
            false,
            Err((vec!["The contact name must be specified".into()], item)),
        );
    }
    let me = next["ContactID"].clone();
    let taken = org.contacts.iter().any(|c| {
        c["ContactStatus"] == "ACTIVE" && c["Name"] == name.as_str() && c["ContactID"] != me
    });
    if taken && next["ContactStatus"] == "ACTIVE" {
        return (false, Err((vec![format!("The contact name {name} is already assigned to another contact. The contact name must be unique across all active contacts.")], item)));
    }
    org.stamp(&mut next);
    match idx {
        Some(i) => org.contacts[i] = next.clone(),
        None => org.contacts.push(next.clone()),
    }
    (idx.is_none(), Ok(next))
}

fn write_invoice(s: &Sandbox, org: &mut Org, item: Value) -> WriteOutcome {
    let mut errors = Vec::new();
    let contact_id = item["Contact"]["ContactID"].as_str().unwrap_or_default();
    let contact = org
        .contacts
        .iter()
        .find(|c| c["ContactID"] == contact_id)
        .cloned();
    if contact.is_none() {
        errors.push(format!("The contact {contact_id} could not be found"));
    }
    let currency = item
        .get("CurrencyCode")
        .and_then(Value::as_str)
        .unwrap_or("NZD")
        .to_string();
    if !org.currencies.contains(&currency) {
        errors.push(format!(
            "The currency code {currency} is not set up for this organisation"
        ));
    }
    if item.get("Type").and_then(Value::as_str) != Some("ACCREC") {
        errors.push("Type must be ACCREC or ACCPAY (the sandbox takes ACCREC)".into());
    }
    let lines = item
        .get("LineItems")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if lines.is_empty() {
        errors.push("At least one line item is required".into());
    }
    if !errors.is_empty() {
        return (false, Err((errors, item)));
    }
    let mut sub = Decimal::ZERO;
    let mut tax = Decimal::ZERO;
    let mut out_lines = Vec::new();
    for l in lines {
        let amount = (decimal(l.get("Quantity")).unwrap_or(Decimal::ONE)
            * decimal(l.get("UnitAmount")).unwrap_or_default())
        .round_dp(2);
        let t = decimal(l.get("TaxAmount")).unwrap_or_default();
        sub += amount;
        tax += t;
        let mut l = l.clone();
        l["LineItemID"] = json!(s.new_id());
        l["LineAmount"] = money(amount);
        l["TaxAmount"] = money(t);
        out_lines.push(l);
    }
    let total = sub + tax;
    let number = format!("INV-{:04}", org.invoices.len() + 1);
    #[allow(clippy::disallowed_methods)]
    let today = Utc::now().date_naive();
    let mut inv = item.clone();
    inv["InvoiceID"] = json!(s.new_id());
    inv["InvoiceNumber"] = json!(number);
    inv["Contact"] = json!({"ContactID": contact_id, "Name": contact.as_ref().and_then(|c| c.get("Name")).cloned().unwrap_or(Value::Null)});
    inv["LineItems"] = Value::Array(out_lines);
    inv["SubTotal"] = money(sub);
    inv["TotalTax"] = money(tax);
    inv["Total"] = money(total);
    inv["AmountDue"] = money(total);
    inv["AmountPaid"] = json!(0);
    inv["Payments"] = json!([]);
    inv["CurrencyCode"] = json!(currency);
    if inv.get("Date").is_none() {
        inv["DateString"] = json!(format!("{today}T00:00:00"));
    }
    org.stamp(&mut inv);
    org.invoices.push(inv.clone());
    (true, Ok(inv))
}
