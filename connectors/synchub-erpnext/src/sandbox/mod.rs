//! A stateful fake of a Frappe/ERPNext site for tests and the demo,
//! faithful to `api-notes/erpnext.md` and its fixtures:
//!
//! - documents with `name`, `owner`, `creation`, `modified` (naive, site
//!   time, microseconds, strictly increasing), `docstatus`, `idx` and child
//!   tables (`Contact Email`, `Contact Phone`, `Dynamic Link`, `Sales Order
//!   Item`) whose rows carry `parent`, `parentfield`, `parenttype`;
//! - `GET /api/resource/{DocType}` with `fields` (default `["name"]`, `*` =
//!   main-table columns), `filters` / `or_filters` (lists, 4-element child
//!   filters, dicts), `order_by` (default `modified desc`), `limit_start`,
//!   `limit_page_length` (default 20; 0 = all);
//! - `GET`, `POST`, `PUT` (sparse; child tables replaced; `modified` checked:
//!   `TimestampMismatchError`), `DELETE` (202, a `Deleted Document` kept);
//! - naming series (`CUST-.YYYY.-.#####`), contact names from the full
//!   name and its link, mandatory fields, email validation, unknown fields
//!   dropped as Frappe drops them, unknown filter columns refused;
//! - v1 error bodies (`exc_type`, `exception` unless 404,
//!   `_server_messages`), and the v2 envelope on `/api/v2/document`;
//! - token auth (`token KEY:SECRET` or Basic), a per-DocType permission
//!   switch (403), and faults: a throttled request (429 with
//!   `Retry-After`), the site down (503), a create whose answer is lost.

mod query;
mod site;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use chrono::FixedOffset;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::ErpNextConfig;
pub use site::{error, Faults, SiteState};
use site::{not_found, obj, schema};

/// The sandbox's API key.
pub const SANDBOX_KEY: &str = "2c1a9f0e7b3d4e5";
/// The sandbox's API secret.
pub const SANDBOX_SECRET: &str = "sandbox-secret-8d2f6a1c";
/// The webhook secret of the fixtures.
pub const WEBHOOK_SECRET: &str = "frappe_test_secret";
/// The site's time zone (Asia/Taipei).
pub const UTC_OFFSET: &str = "+08:00";
/// The API user.
pub const API_USER: &str = "sync-bot@example.com";

/// Shared state of a running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    site: Mutex<SiteState>,
}

impl Sandbox {
    /// The site.
    pub fn site(&self) -> MutexGuard<'_, SiteState> {
        self.site.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a new sandbox holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxOptions {
    /// The fixture documents (customers, a contact, an address, the sales
    /// order, a deleted customer).
    pub fixtures: bool,
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
    /// The site.
    pub fn site(&self) -> MutexGuard<'_, SiteState> {
        self.state.site()
    }
    /// A configuration pointing at the sandbox.
    pub fn config(&self) -> ErpNextConfig {
        let mut c = ErpNextConfig::new(self.url(), SANDBOX_KEY, SANDBOX_SECRET);
        c.utc_offset = UTC_OFFSET.into();
        c.webhook_secret = Some(WEBHOOK_SECRET.to_string().into());
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

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn seed_fixtures(site: &mut SiteState) {
    let customers = fixture(include_str!("../../tests/fixtures/customer_list.json"));
    for row in customers["data"].as_array().into_iter().flatten() {
        let mut d = obj(row.clone());
        let m = d.get("modified").cloned().unwrap_or(Value::Null);
        d.insert("owner".into(), json!(API_USER));
        d.insert("creation".into(), m);
        d.insert("modified_by".into(), json!(API_USER));
        d.insert("docstatus".into(), json!(0));
        d.insert("idx".into(), json!(0));
        d.insert("doctype".into(), json!("Customer"));
        site.docs.entry("Customer".into()).or_default().push(d);
    }
    let order = fixture(include_str!("../../tests/fixtures/sales_order.json"));
    site.docs
        .entry("Sales Order".into())
        .or_default()
        .push(obj(order["data"].clone()));
    let deleted = fixture(include_str!(
        "../../tests/fixtures/deleted_document_list.json"
    ));
    for row in deleted["data"].as_array().into_iter().flatten() {
        let mut d = obj(row.clone());
        let c = d.get("creation").cloned().unwrap_or(Value::Null);
        d.insert("modified".into(), c);
        d.insert("doctype".into(), json!("Deleted Document"));
        site.docs
            .entry("Deleted Document".into())
            .or_default()
            .push(d);
    }
    // A contact of the Hong Kong customer and an address of the Taiwan one,
    // as the desk creates them.
    let contact = obj(json!({
        "first_name": "大文", "last_name": "陳", "designation": "採購經理",
        "email_ids": [{"email_id": "tm.chan@example.hk", "is_primary": 1}],
        "phone_nos": [
            {"phone": "+852 9123 4567", "is_primary_mobile_no": 1, "is_primary_phone": 0},
            {"phone": "+852 2345 6789", "is_primary_mobile_no": 0, "is_primary_phone": 1}
        ],
        "links": [{"link_doctype": "Customer", "link_name": "CUST-2024-00013", "link_title": "陳大文"}]
    }));
    let _ = site.insert("Contact", contact);
    let address = obj(json!({
        "name": "台灣範例股份有限公司-Billing", "address_title": "台灣範例股份有限公司",
        "address_type": "Billing", "address_line1": "信義路五段7號", "city": "台北市",
        "pincode": "110", "country": "Taiwan",
        "links": [{"link_doctype": "Customer", "link_name": "CUST-2024-00012", "link_title": "台灣範例股份有限公司"}]
    }));
    let _ = site.insert("Address", address);
}

/// Starts a sandbox.
pub async fn spawn(options: SandboxOptions) -> std::io::Result<SandboxHandle> {
    // 8 h is within ±24 h: always a valid offset.
    let offset = FixedOffset::east_opt(8 * 3600).expect("a valid offset");
    let mut site = SiteState::new(offset, SANDBOX_KEY, SANDBOX_SECRET);
    if options.fixtures {
        seed_fixtures(&mut site);
    }
    let state = Arc::new(Sandbox {
        site: Mutex::new(site),
    });
    let app = Router::new()
        .route("/api/resource/:doctype", get(list).post(insert))
        .route(
            "/api/resource/:doctype/:name",
            get(read_one).put(update).delete(remove),
        )
        .route("/api/v2/document/:doctype/:name", get(read_one_v2))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "erpnext sandbox stopped");
        }
    });
    Ok(SandboxHandle {
        state,
        addr,
        stop: Some(tx),
        task,
    })
}

/// Auth, faults and permissions, in the order the site applies them.
fn gate(
    s: &Sandbox,
    headers: &HeaderMap,
    doctype: Option<&str>,
    write: bool,
) -> Result<(), Box<Response>> {
    let mut site = s.site();
    site.requests += 1;
    if site.faults.down {
        return Err(Box::new(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "<html><body>503 Service Unavailable</body></html>",
            )
                .into_response(),
        ));
    }
    if let Some(secs) = site.faults.throttle_next.take() {
        let mut r = error(
            429,
            "RateLimitExceededError",
            "You hit the rate limit because of too many requests. Please try after sometime.",
            "Message",
        );
        let h = r.headers_mut();
        for (k, v) in [
            ("retry-after", secs.to_string()),
            ("x-ratelimit-reset", secs.to_string()),
            ("x-ratelimit-limit", "300".into()),
            ("x-ratelimit-remaining", "0".into()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        return Err(Box::new(r));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let pair = format!("{}:{}", site.api_key, site.api_secret);
    let ok = auth.strip_prefix("token ").is_some_and(|t| t == pair)
        || auth
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .is_some_and(|b| b == pair.as_bytes());
    if !ok {
        return Err(Box::new(error(
            401,
            "AuthenticationError",
            "Invalid Authorization Token",
            "Not Permitted",
        )));
    }
    if write {
        site.writes += 1;
    }
    if let Some(dt) = doctype {
        if site.denied.contains(dt) {
            return Err(Box::new(error(
                403,
                "PermissionError",
                &format!("Insufficient Permission for {dt}"),
                "Not permitted",
            )));
        }
        if schema(dt).is_empty() {
            return Err(Box::new(error(
                404,
                "DoesNotExistError",
                &format!("DocType {dt} not found"),
                "Message",
            )));
        }
    }
    Ok(())
}

async fn list(
    State(s): State<Arc<Sandbox>>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = gate(&s, &headers, Some(&doctype), false) {
        return *r;
    }
    match s.site().list(&doctype, &q) {
        Ok(v) => Json(v).into_response(),
        Err(r) => *r,
    }
}

async fn read_one(
    State(s): State<Arc<Sandbox>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&s, &headers, Some(&doctype), false) {
        return *r;
    }
    match s.site().doc(&doctype, &name) {
        Some(d) => Json(json!({"data": d})).into_response(),
        None => not_found(&doctype, &name),
    }
}

async fn read_one_v2(
    State(s): State<Arc<Sandbox>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&s, &headers, Some(&doctype), false) {
        return *r;
    }
    match s.site().doc(&doctype, &name) {
        Some(d) => Json(json!({"data": d})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"errors": [{"type": "DoesNotExistError", "message": format!("{doctype} {name} not found"), "title": "Message", "indicator": "red"}]})),
        )
            .into_response(),
    }
}

fn body_of(body: &Bytes) -> Result<Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Box::new(error(
            417,
            "ValidationError",
            "the request body is not a JSON object",
            "Message",
        ))),
    }
}

async fn insert(
    State(s): State<Arc<Sandbox>>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers, Some(&doctype), true) {
        return *r;
    }
    let body = match body_of(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut site = s.site();
    match site.insert(&doctype, body) {
        Ok(doc) => {
            if std::mem::take(&mut site.faults.lose_next_write) {
                return (
                    StatusCode::BAD_GATEWAY,
                    "<html><body>502 Bad Gateway</body></html>",
                )
                    .into_response();
            }
            Json(json!({"data": doc})).into_response()
        }
        Err(r) => *r,
    }
}

async fn update(
    State(s): State<Arc<Sandbox>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&s, &headers, Some(&doctype), true) {
        return *r;
    }
    let body = match body_of(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match s.site().update(&doctype, &name, body) {
        Ok(doc) => Json(json!({"data": doc})).into_response(),
        Err(r) => *r,
    }
}

async fn remove(
    State(s): State<Arc<Sandbox>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&s, &headers, Some(&doctype), true) {
        return *r;
    }
    match s.site().delete(&doctype, &name) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"data": "ok"}))).into_response(),
        Err(r) => *r,
    }
}
