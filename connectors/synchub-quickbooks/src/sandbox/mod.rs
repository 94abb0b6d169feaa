//! A stateful fake of the QuickBooks Online v3 API for tests and the demo,
//! faithful to `api-notes/quickbooks.md` and its fixtures:
//!
//! - `GET /v3/company/{realm}/query?query=` with the query-language subset
//!   of [`query`] (1-based STARTPOSITION, MAXRESULTS ≤ 1000, AND only,
//!   inactive name-list objects hidden unless `Active` is filtered, an empty
//!   result without the entity key, `count(*)` as `totalCount`);
//! - `GET /v3/company/{realm}/cdc` (30-day look-back, 1,000-object cap,
//!   deleted stubs), `GET /v3/company/{realm}/{entity}/{id}`;
//! - `POST /v3/company/{realm}/{entity}` creates and (sparse or full)
//!   updates under SyncToken, `?operation=delete`, `?requestid=` answering
//!   a repeat with the first answer; the rules of [`state`];
//! - OAuth: bearer tokens checked on every call (401 `AuthenticationFault`
//!   3200), `POST /oauth2/v1/tokens/bearer` refreshing with a rotated
//!   refresh token (the old one then gives `invalid_grant`);
//! - a per-realm request limit answering 429 (code 3001, no Retry-After);
//! - fault injection: creates whose answer is lost after the commit;
//! - signed webhooks (legacy payload) for every write, kept for tests.
//!
//! Simplifications: one realm per server, no tax engine (the tax sent in
//! `TxnTaxDetail.TotalTax` is taken as is), no batch endpoint.

pub mod query;
pub mod state;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use state::{render_time, ApiFault, Company};

use crate::config::QuickBooksConfig;

/// The realm the sandbox serves by default.
pub const SANDBOX_REALM: &str = "9130350000000001";
/// The webhook verifier token of the fixtures.
pub const SANDBOX_VERIFIER: &str = "qbo_verifier_test";
/// The OAuth client id the sandbox accepts.
pub const SANDBOX_CLIENT_ID: &str = "qbo-sandbox-client";

/// How to seed and run the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The realm (company id).
    pub realm: String,
    /// Generated customers besides the two fixture customers (ids 1 and 29).
    pub customers: u64,
    /// Items (SKUs) that exist from the start.
    pub items: Vec<String>,
    /// Currencies of the company, home currency first.
    pub currencies: Vec<String>,
    /// `Some((requests, window))`: the per-realm limit (Intuit: 500 / 60 s).
    pub rate_limit: Option<(usize, Duration)>,
    /// Webhook verifier token.
    pub verifier: String,
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            realm: SANDBOX_REALM.into(),
            customers: 0,
            items: vec!["Services".into()],
            currencies: vec!["USD".into()],
            rate_limit: Some((500, Duration::from_secs(60))),
            verifier: SANDBOX_VERIFIER.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

#[derive(Debug)]
struct Tokens {
    access: String,
    refresh: String,
    generation: u64,
}

/// Shared state of a running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    realm: String,
    verifier: String,
    company: Mutex<Company>,
    tokens: Mutex<Tokens>,
    window: Mutex<VecDeque<Instant>>,
    rate_limit: Mutex<Option<(usize, Duration)>>,
    lose_answers: AtomicU64,
    throttled: AtomicU64,
    refreshes: AtomicU64,
    creates: AtomicU64,
    served: AtomicU64,
    webhooks: Mutex<Vec<(String, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sandbox {
    /// The company data (tests read and change it directly).
    pub fn company(&self) -> MutexGuard<'_, Company> {
        lock(&self.company)
    }

    /// The access token currently accepted.
    pub fn access_token(&self) -> String {
        lock(&self.tokens).access.clone()
    }

    /// The refresh token currently accepted.
    pub fn refresh_token(&self) -> String {
        lock(&self.tokens).refresh.clone()
    }

    /// Expires the current access token (the next call gets a 401).
    pub fn expire_access_token(&self) {
        let mut t = lock(&self.tokens);
        t.generation += 1;
        t.access = format!("qbo-at-expired-{}", t.generation);
    }

    /// Revokes the grant: the access and the refresh token stop working
    /// (the user disconnected the app); a refresh answers `invalid_grant`.
    pub fn revoke_tokens(&self) {
        let mut t = lock(&self.tokens);
        t.generation += 1;
        t.access = format!("qbo-at-revoked-{}", t.generation);
        t.refresh = format!("qbo-rt-revoked-{}", t.generation);
    }

    /// Loses the answers of the next `n` creates (committed, then 502).
    pub fn lose_create_answers(&self, n: u64) {
        self.lose_answers.store(n, Ordering::SeqCst);
    }

    /// Changes the request limit.
    pub fn set_rate_limit(&self, limit: Option<(usize, Duration)>) {
        *lock(&self.rate_limit) = limit;
        lock(&self.window).clear();
    }

    /// 429 answers given.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::SeqCst)
    }

    /// Token refreshes served.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// API requests let through the auth and rate gate.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Creates committed (repeats by requestid not counted).
    pub fn creates(&self) -> u64 {
        self.creates.load(Ordering::SeqCst)
    }

    /// Webhook deliveries sent so far: (`intuit-signature`, raw body).
    pub fn webhooks(&self) -> Vec<(String, String)> {
        lock(&self.webhooks).clone()
    }

    fn notify(&self, entity: &str, id: &str, operation: &str, at: DateTime<Utc>) {
        let body =
            json!({"eventNotifications": [{"realmId": self.realm, "dataChangeEvent": {"entities": [
                {"name": entity, "id": id, "operation": operation, "lastUpdated": at.to_rfc3339()}
            ]}}]})
            .to_string();
        let sig = crate::webhook::sign(&self.verifier, body.as_bytes());
        lock(&self.webhooks).push((sig, body));
    }

    fn fault(&self, f: &ApiFault) -> Response {
        let time = render_time(self.company().now());
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(f.body(&time))).into_response()
    }

    /// Auth and rate limit, in Intuit's order: a bad token is a 401 before any quota.
    fn gate(&self, realm: &str, headers: &HeaderMap) -> Result<(), ApiFault> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer != Some(self.access_token().as_str()) {
            return Err(ApiFault {
                status: 401,
                kind: "AuthenticationFault",
                code: "3200",
                message: "message=AuthenticationFailed; errorCode=003200; statusCode=401".into(),
                detail: String::new(),
            });
        }
        if realm != self.realm {
            return Err(ApiFault {
                status: 403,
                kind: "AuthorizationFault",
                code: "3100",
                message: "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
                    .into(),
                detail: format!("the token does not grant access to realm {realm}"),
            });
        }
        if let Some((max, window)) = *lock(&self.rate_limit) {
            let now = Instant::now();
            let mut w = lock(&self.window);
            while w.front().is_some_and(|t| now.duration_since(*t) >= window) {
                w.pop_front();
            }
            if w.len() >= max {
                self.throttled.fetch_add(1, Ordering::SeqCst);
                drop(w);
                return Err(ApiFault {
                    status: 429,
                    kind: "SERVICE",
                    code: "3001",
                    message: "message=ThrottleExceeded; errorCode=003001; statusCode=429".into(),
                    detail: "The request limit was reached.  You can try again later.".into(),
                });
            }
            w.push_back(now);
        }
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxHandle {
    /// The shared state.
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

    /// A connector configuration pointing at this sandbox.
    pub fn config(&self) -> QuickBooksConfig {
        let mut c = QuickBooksConfig::new(self.state.realm.clone(), SANDBOX_CLIENT_ID);
        c.client_secret = Some("qbo-sandbox-secret".to_string().into());
        c.base_url = Some(self.url());
        c.token_url = Some(format!("{}/oauth2/v1/tokens/bearer", self.url()));
        c.auth_url = Some(format!("{}/connect/oauth2", self.url()));
        c.webhook_verifier_token = Some(self.state.verifier.clone().into());
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

fn seed(opts: &SandboxOptions) -> Company {
    let mut c = Company::new(opts.currencies.clone());
    let fixture: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/query_customers.json"))
            .unwrap_or(Value::Null);
    #[allow(clippy::disallowed_methods)]
    let base = Utc::now() - chrono::Duration::days(2);
    let mut k = 0;
    for cust in fixture["QueryResponse"]["Customer"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        k += 1;
        c.seed("Customer", cust, base + chrono::Duration::seconds(k));
    }
    for i in 0..opts.customers {
        k += 1;
        c.seed(
            "Customer",
            json!({"Id": (1000 + i).to_string(), "DisplayName": format!("Customer {i:05}"), "GivenName": "Customer", "FamilyName": format!("{i:05}"),
                   "PrimaryEmailAddr": {"Address": format!("customer{i}@example.com")}}),
            // Several customers share a second, as in the real API.
            base + chrono::Duration::seconds(k / 3),
        );
    }
    for sku in &opts.items {
        k += 1;
        c.seed(
            "Item",
            json!({"Name": sku, "Sku": sku, "Type": "Service", "IncomeAccountRef": {"value": "1"}}),
            base + chrono::Duration::seconds(k),
        );
    }
    c
}

/// Seeds a company and serves it.
pub async fn spawn(opts: SandboxOptions) -> std::io::Result<SandboxHandle> {
    let state = Arc::new(Sandbox {
        realm: opts.realm.clone(),
        verifier: opts.verifier.clone(),
        company: Mutex::new(seed(&opts)),
        tokens: Mutex::new(Tokens {
            access: "qbo-at-0".into(),
            refresh: "qbo-rt-0".into(),
            generation: 0,
        }),
        window: Mutex::new(VecDeque::new()),
        rate_limit: Mutex::new(opts.rate_limit),
        lose_answers: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        refreshes: AtomicU64::new(0),
        creates: AtomicU64::new(0),
        served: AtomicU64::new(0),
        webhooks: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/oauth2/v1/tokens/bearer", post(token))
        .route("/v3/company/:realm/query", get(run_query))
        .route("/v3/company/:realm/cdc", get(cdc))
        .route("/v3/company/:realm/:entity/:id", get(read))
        .route("/v3/company/:realm/:entity", post(write))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(opts.bind).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "quickbooks sandbox stopped");
        }
    });
    Ok(SandboxHandle {
        state,
        addr,
        stop: Some(tx),
        task,
    })
}

fn entity_name(lower: &str) -> Option<&'static str> {
    state::ENTITIES
        .iter()
        .copied()
        .find(|e| e.eq_ignore_ascii_case(lower))
}

type Params = QueryParams<std::collections::HashMap<String, String>>;

async fn token(State(s): State<Arc<Sandbox>>, body: Bytes) -> Response {
    let form: std::collections::HashMap<String, String> =
        url_pairs(&String::from_utf8_lossy(&body));
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let mut t = lock(&s.tokens);
    if form.get("refresh_token") != Some(&t.refresh) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    t.generation += 1;
    t.access = format!("qbo-at-{}", t.generation);
    // The refresh token value rotates (Intuit: about every 24 h; here on every refresh).
    t.refresh = format!("qbo-rt-{}", t.generation);
    s.refreshes.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "access_token": t.access, "refresh_token": t.refresh, "token_type": "bearer",
        "expires_in": 3600, "x_refresh_token_expires_in": 8_726_400
    }))
    .into_response()
}

fn url_pairs(q: &str) -> std::collections::HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parser_fault(detail: String) -> ApiFault {
    ApiFault::validation(
        "4000",
        "Error parsing query",
        format!("QueryParserError: {detail}"),
    )
}

async fn run_query(
    State(s): State<Arc<Sandbox>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    QueryParams(p): Params,
) -> Response {
    if let Err(f) = s.gate(&realm, &headers) {
        return s.fault(&f);
    }
    let Some(text) = p.get("query") else {
        return s.fault(&parser_fault("no query parameter".into()));
    };
    let q = match query::parse(text) {
        Ok(q) => q,
        Err(e) => return s.fault(&parser_fault(e)),
    };
    let Some(entity) = entity_name(&q.entity) else {
        return s.fault(&parser_fault(format!("unknown entity `{}`", q.entity)));
    };
    let company = s.company();
    let filters_active = q
        .conds
        .iter()
        .any(|c| c.field.eq_ignore_ascii_case("Active"));
    let mut rows: Vec<&Value> = company
        .all(entity)
        .filter(|o| filters_active || o.get("Active").and_then(Value::as_bool) != Some(false))
        .filter(|o| query::matches(o, &q.conds))
        .collect();
    let time = render_time(company.now());
    if q.count {
        return Json(json!({"QueryResponse": {"totalCount": rows.len()}, "time": time}))
            .into_response();
    }
    if let Some((field, desc)) = &q.order {
        rows.sort_by(|a, b| {
            let o = match (query::field(a, field), query::field(b, field)) {
                (Some(x), Some(y)) => query::compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
                _ => std::cmp::Ordering::Equal,
            };
            if *desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let page: Vec<Value> = rows
        .into_iter()
        .skip(q.start - 1)
        .take(q.max)
        .cloned()
        .collect();
    if page.is_empty() {
        return Json(json!({"QueryResponse": {}, "time": time})).into_response();
    }
    let n = page.len();
    Json(json!({"QueryResponse": {entity: page, "startPosition": q.start, "maxResults": n}, "time": time}))
        .into_response()
}

async fn cdc(
    State(s): State<Arc<Sandbox>>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    QueryParams(p): Params,
) -> Response {
    if let Err(f) = s.gate(&realm, &headers) {
        return s.fault(&f);
    }
    let since = p
        .get("changedSince")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let Some(since) = since else {
        return s.fault(&ApiFault::validation(
            "2020",
            "Required param missing, need to supply the required value for the API",
            "changedSince (ISO 8601 with offset) is required",
        ));
    };
    let company = s.company();
    if company.now() - since > chrono::Duration::days(30) {
        return s.fault(&ApiFault::validation(
            "6000",
            "A business validation error has occurred while processing your request",
            "changedSince may be at most 30 days in the past",
        ));
    }
    let mut groups = Vec::new();
    let mut total = 0usize;
    for name in p
        .get("entities")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
    {
        let Some(entity) = entity_name(name.trim()) else {
            return s.fault(&ApiFault::validation(
                "4000",
                "Error parsing query",
                format!("unknown entity `{name}` in entities"),
            ));
        };
        let mut list: Vec<Value> = company
            .all(entity)
            .filter(|o| crate::map::last_updated(o).is_some_and(|t| t >= since))
            .cloned()
            .collect();
        list.extend(
            company
                .deleted
                .iter()
                .filter(|d| d.entity == entity && d.at >= since)
                .map(|d| json!({"domain": "QBO", "status": "Deleted", "Id": d.id, "MetaData": {"LastUpdatedTime": render_time(d.at)}})),
        );
        // The response holds at most 1,000 objects across all entities.
        list.truncate(1000usize.saturating_sub(total));
        total += list.len();
        let n = list.len();
        groups.push(json!({entity: list, "startPosition": 1, "maxResults": n}));
    }
    let time = render_time(company.now());
    Json(json!({"CDCResponse": [{"QueryResponse": groups}], "time": time})).into_response()
}

async fn read(
    State(s): State<Arc<Sandbox>>,
    Path((realm, entity, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(f) = s.gate(&realm, &headers) {
        return s.fault(&f);
    }
    let Some(entity) = entity_name(&entity) else {
        return (StatusCode::NOT_FOUND, "unknown entity").into_response();
    };
    let company = s.company();
    match company.get(entity, &id) {
        Some(o) => Json(json!({entity: o, "time": render_time(company.now())})).into_response(),
        None => {
            drop(company);
            s.fault(&ApiFault::validation(
                "610",
                "Object Not Found",
                format!("Object Not Found : {entity} {id}"),
            ))
        }
    }
}

async fn write(
    State(s): State<Arc<Sandbox>>,
    Path((realm, entity)): Path<(String, String)>,
    headers: HeaderMap,
    QueryParams(p): Params,
    body: Bytes,
) -> Response {
    if let Err(f) = s.gate(&realm, &headers) {
        return s.fault(&f);
    }
    let Some(entity) = entity_name(&entity) else {
        return (StatusCode::NOT_FOUND, "unknown entity").into_response();
    };
    let request_id = p.get("requestid").cloned();
    if let Some(rid) = &request_id {
        if let Some((status, answer)) = s.company().requests.get(rid).cloned() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return (status, Json(answer)).into_response();
        }
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return s.fault(&ApiFault::validation(
                "2500",
                "Request has invalid or unsupported property",
                format!("the body is not JSON: {e}"),
            ))
        }
    };
    let is_create = parsed.get("Id").is_none() && !p.contains_key("operation");
    let mut company = s.company();
    let result = match p.get("operation").map(String::as_str) {
        Some("delete") => company.delete(entity, &parsed),
        Some(op) => Err(ApiFault::validation(
            "2500",
            "Request has invalid or unsupported property",
            format!("operation `{op}` is not supported by the sandbox"),
        )),
        None => company.write(entity, parsed),
    };
    let time = render_time(company.now());
    let (status, answer) = match &result {
        Ok(obj) => (200u16, json!({entity: obj, "time": time})),
        Err(f) => (f.status, f.body(&time)),
    };
    // Intuit remembers the answer of a requestid, faults included.
    if let Some(rid) = request_id {
        company.requests.insert(rid, (status, answer.clone()));
    }
    drop(company);
    if let Ok(obj) = &result {
        let id = obj.get("Id").and_then(Value::as_str).unwrap_or_default();
        let op = if is_create { "Create" } else { "Update" };
        s.notify(entity, id, op, s.company().now());
        if is_create {
            s.creates.fetch_add(1, Ordering::SeqCst);
            // Fault injection: the create is committed, the answer is lost.
            let lose = s.lose_answers.load(Ordering::SeqCst);
            if lose > 0 {
                s.lose_answers.store(lose - 1, Ordering::SeqCst);
                return (StatusCode::BAD_GATEWAY, "upstream connection reset").into_response();
            }
        }
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, Json(answer)).into_response()
}
