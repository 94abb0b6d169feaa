//! Issue 17 through `synchub run`, against the real Tryton 8.2 and the real
//! Odoo 11 of `deploy/peers/`, with the Shopify sandbox as the shop.
//!
//! Partners: a partner created in the ERP (CJK name, +886 phone, on Odoo a
//! contact of a company) reaches the CRM and the shop; the same partner
//! renamed in the ERP and in the CRM between two runs is decided by the
//! pipeline's merge policy (`full_name = { priority = ["crm", "erp"] }`)
//! and the result reaches the ERP and the shop; the company link
//! (`parent_id`) and the phone as typed in the ERP come out of the round
//! trip unchanged; a partner archived in the ERP is archived in the CRM.
//!
//! Orders: a shop order pushed as a sale order exists exactly once after
//! `synchub run` is SIGKILLed between the remote create and the local
//! commit. The pipeline pulls one order from the Shopify sandbox and pushes
//! it to the ERP (`push_orders = true`). The binary reaches the ERP through
//! a loopback proxy that stops at a chosen request: before the sale's create
//! is forwarded, after the ERP created it but before its answer goes back,
//! while the read-back of the new sale is held, right after that read-back
//! was answered (the kill races the local commit), and after the customer
//! (and, on Odoo, the product) was created but before the sale. The test
//! SIGKILLs the process once the proxy reports that point (state, never a
//! timer), checks what the ERP and the store hold at that moment, re-runs
//! without the proxy and checks: one sale with the CRM id as its reference,
//! one customer, the store linked to that sale with nothing left to push,
//! and a third run that writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use synchub_core::ObjectKind;
use synchub_shopify::sandbox as shopify_sandbox;
use synchub_shopify::sandbox::FIRST_CUSTOMER_ID;
use synchub_store::Store;
use synchub_testkit::process::kill_when;
use synchub_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");
const TRYTON: &str = "http://127.0.0.1:18000";
const ODOO: &str = "http://127.0.0.1:18069";
const SHOP_ORDER: u64 = shopify_sandbox::FIRST_ORDER_ID;

// ---------------------------------------------------------------------------
// The holding proxy.

/// When the proxy stops a request matching the rule's needle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// Before it reaches the ERP: the ERP never sees it.
    Before,
    /// After the ERP answered: the answer never reaches the binary.
    After,
    /// The answer is passed on and the point is reported at once.
    Passed,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    /// The rule applies only after a request containing this was answered.
    armed_by: Option<&'static str>,
    needle: &'static str,
    when: When,
}

struct Hold {
    upstream: String,
    http: reqwest::Client,
    rule: Rule,
    armed: AtomicBool,
    reached: Arc<AtomicBool>,
}

/// Starts the proxy in front of `upstream`; returns its URL and the flag it
/// sets when the rule's point is reached.
async fn hold_proxy(upstream: &str, rule: Rule) -> (String, Arc<AtomicBool>) {
    let reached = Arc::new(AtomicBool::new(false));
    let hold = Arc::new(Hold {
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
        armed: AtomicBool::new(rule.armed_by.is_none()),
        rule,
        reached: reached.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state(hold);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, reached)
}

async fn forward(
    State(hold): State<Arc<Hold>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let matches = hold.armed.load(Ordering::SeqCst) && text.contains(hold.rule.needle);
    if matches && hold.rule.when == When::Before {
        hold.reached.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = hold
        .http
        .request(method, format!("{}{path}", hold.upstream))
        .body(body);
    for name in ["content-type", "authorization", "accept"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    let (status, content_type, answer) = match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            (status, ct, r.bytes().await.unwrap_or_default())
        }
        Err(e) => (502, "text/plain".into(), Bytes::from(e.to_string())),
    };
    if let Some(arm) = hold.rule.armed_by {
        if text.contains(arm) {
            hold.armed.store(true, Ordering::SeqCst);
        }
    }
    if matches {
        hold.reached.store(true, Ordering::SeqCst);
        if hold.rule.when == When::After {
            std::future::pending::<()>().await;
        }
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [("content-type", content_type)],
        answer,
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// The two ERPs.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Erp {
    Tryton,
    Odoo,
}

/// A kill point: what the proxy stops, and what the ERP holds at the kill.
#[derive(Debug, Clone, Copy)]
struct Point {
    name: &'static str,
    rule: Rule,
    /// The sale exists in the ERP when the process dies (None: either way).
    sale_exists: Option<bool>,
    /// The customer exists in the ERP when the process dies.
    customer_exists: bool,
}

impl Erp {
    fn upstream(self) -> &'static str {
        match self {
            Erp::Tryton => TRYTON,
            Erp::Odoo => ODOO,
        }
    }

    fn sale_create(self) -> &'static str {
        match self {
            Erp::Tryton => "model.sale.sale.create",
            Erp::Odoo => r#""sale.order","create""#,
        }
    }

    fn sale_read(self) -> &'static str {
        match self {
            Erp::Tryton => "model.sale.sale.search_read",
            Erp::Odoo => r#""sale.order","read""#,
        }
    }

    fn customer_create(self) -> &'static str {
        match self {
            Erp::Tryton => "model.party.party.create",
            Erp::Odoo => r#""res.partner","create""#,
        }
    }

    fn points(self) -> Vec<Point> {
        let rule = |armed_by, needle, when| Rule {
            armed_by,
            needle,
            when,
        };
        let mut points = vec![
            Point {
                name: "customer created, its answer lost",
                rule: rule(None, self.customer_create(), When::After),
                sale_exists: Some(false),
                customer_exists: true,
            },
            Point {
                name: "sale create held before the ERP",
                rule: rule(None, self.sale_create(), When::Before),
                sale_exists: Some(false),
                customer_exists: true,
            },
            Point {
                name: "sale created, its answer lost",
                rule: rule(None, self.sale_create(), When::After),
                sale_exists: Some(true),
                customer_exists: true,
            },
            Point {
                name: "sale created and answered, read-back held",
                rule: rule(Some(self.sale_create()), self.sale_read(), When::After),
                sale_exists: Some(true),
                customer_exists: true,
            },
            Point {
                name: "read-back answered, commit racing the kill",
                rule: rule(Some(self.sale_create()), self.sale_read(), When::Passed),
                sale_exists: None,
                customer_exists: true,
            },
        ];
        if self == Erp::Odoo {
            points.insert(
                1,
                Point {
                    name: "product created, its answer lost",
                    rule: rule(None, r#""product.product","create""#, When::After),
                    sale_exists: Some(false),
                    customer_exists: true,
                },
            );
        }
        points
    }

    fn pipeline(
        self,
        shop_name: &str,
        shop: &shopify_sandbox::SandboxHandle,
        erp_url: &str,
    ) -> String {
        let erp = match self {
            Erp::Tryton => format!(
                r#"[[connections]]
name = "erp"
kind = "tryton"
direction = "push"
objects = ["order"]

[connections.config]
url = "{erp_url}"
database = "synchub"
login = "admin"
password = "admin-pass"
push_orders = true
"#
            ),
            Erp::Odoo => format!(
                r#"[[connections]]
name = "erp"
kind = "odoo"
direction = "push"
objects = ["order"]

[connections.config]
url = "{erp_url}"
database = "odoo"
login = "admin"
password = "admin"
push_orders = true
create_products = true
"#
            ),
        };
        format!(
            r#"version = 1
name = "orders"
region = "TW"

[[connections]]
name = "{shop_name}"
kind = "shopify"
direction = "pull"
objects = ["contact", "order"]

[connections.config]
shop = "{}"
base_url = "{}"
access_token = "{}"
webhook_secrets = ["{}"]

{erp}"#,
            shop.config().shop,
            shop.base_url,
            shopify_sandbox::SANDBOX_TOKEN,
            shopify_sandbox::SANDBOX_WEBHOOK_SECRET,
        )
    }
}

/// A logged-in admin of the real Tryton or Odoo.
struct Admin {
    erp: Erp,
    http: reqwest::Client,
    /// Tryton: the `Authorization` header; Odoo: unused.
    auth: String,
    /// Odoo: the admin's uid.
    uid: i64,
}

impl Admin {
    async fn connect(erp: Erp) -> Admin {
        use base64::Engine as _;
        let http = reqwest::Client::new();
        let mut admin = Admin {
            erp,
            http,
            auth: String::new(),
            uid: 0,
        };
        match erp {
            Erp::Tryton => {
                let login = admin
                    .tryton_raw(
                        "common.db.login",
                        json!(["admin", {"password": "admin-pass"}, "en"]),
                    )
                    .await;
                admin.auth = format!(
                    "Session {}",
                    base64::engine::general_purpose::STANDARD.encode(format!(
                        "admin:{}:{}",
                        login[0].as_i64().unwrap(),
                        login[1].as_str().unwrap()
                    ))
                );
            }
            Erp::Odoo => {
                admin.uid = admin
                    .odoo_raw(
                        "common",
                        "authenticate",
                        json!(["odoo", "admin", "admin", {}]),
                    )
                    .await
                    .as_i64()
                    .expect("odoo login");
            }
        }
        admin
    }

    async fn post(&self, url: String, body: Value, auth: bool) -> Value {
        let mut req = self.http.post(url).json(&body);
        if auth && !self.auth.is_empty() {
            req = req.header("Authorization", &self.auth);
        }
        let answer: Value = req
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the real {:?} is not running ({e}): start it with deploy/peers/",
                    self.erp
                )
            })
            .json()
            .await
            .expect("json");
        assert!(
            matches!(answer.get("error"), None | Some(Value::Null)),
            "{answer}"
        );
        answer["result"].clone()
    }

    async fn tryton_raw(&self, method: &str, params: Value) -> Value {
        self.post(
            format!("{TRYTON}/synchub/rpc/"),
            json!({"id": 1, "method": method, "params": params}),
            true,
        )
        .await
    }

    async fn odoo_raw(&self, service: &str, method: &str, args: Value) -> Value {
        self.post(
            format!("{ODOO}/jsonrpc"),
            json!({"jsonrpc": "2.0", "method": "call", "id": 1,
                   "params": {"service": service, "method": method, "args": args}}),
            false,
        )
        .await
    }

    /// `model.method(args…)` with the admin's context.
    async fn call(&self, model: &str, method: &str, args: Vec<Value>) -> Value {
        match self.erp {
            Erp::Tryton => {
                let mut params = args;
                params.push(json!({"company": 1, "companies": [1]}));
                self.tryton_raw(&format!("model.{model}.{method}"), Value::Array(params))
                    .await
            }
            Erp::Odoo => {
                self.odoo_raw(
                    "object",
                    "execute_kw",
                    json!(["odoo", self.uid, "admin", model, method, args]),
                )
                .await
            }
        }
    }

    /// Makes the product a shop line refers to (Odoo creates its own:
    /// `create_products = true`).
    async fn make_product(&self, sku: &str, name: &str) {
        if self.erp == Erp::Tryton {
            self.call(
                "product.template",
                "create",
                vec![json!([{"name": name, "type": "goods", "default_uom": 1,
                    "salable": true, "sale_uom": 1,
                    "list_price": {"__class__": "Decimal", "decimal": "199"},
                    "products": [["create", [{"suffix_code": sku}]]]}])],
            )
            .await;
        }
    }

    /// (id, reference) of every sale with a line of `sku`.
    async fn sales_of(&self, sku: &str) -> Vec<(i64, String)> {
        let rows = match self.erp {
            Erp::Tryton => {
                self.call(
                    "sale.sale",
                    "search_read",
                    vec![
                        json!([["lines.product.code", "=", sku]]),
                        json!(0),
                        Value::Null,
                        Value::Null,
                        json!(["id", "reference"]),
                    ],
                )
                .await
            }
            Erp::Odoo => {
                self.call(
                    "sale.order",
                    "search_read",
                    vec![
                        json!([["order_line.product_id.default_code", "=", sku]]),
                        json!(["id", "client_order_ref"]),
                    ],
                )
                .await
            }
        };
        let field = match self.erp {
            Erp::Tryton => "reference",
            Erp::Odoo => "client_order_ref",
        };
        rows.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    r[field].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// How many partners carry `email`.
    async fn customers_with(&self, email: &str) -> u64 {
        let domain = match self.erp {
            Erp::Tryton => json!([
                ["contact_mechanisms.value", "=", email],
                ["contact_mechanisms.type", "=", "email"]
            ]),
            Erp::Odoo => json!([["email", "=", email]]),
        };
        self.call(
            match self.erp {
                Erp::Tryton => "party.party",
                Erp::Odoo => "res.partner",
            },
            "search_count",
            vec![domain],
        )
        .await
        .as_u64()
        .unwrap()
    }

    /// (quantity, unit price) of the sale's lines, sorted by price.
    async fn lines_of(&self, sale: i64) -> Vec<(String, String)> {
        let rows = match self.erp {
            Erp::Tryton => {
                self.call(
                    "sale.line",
                    "search_read",
                    vec![
                        json!([["sale", "=", sale]]),
                        json!(0),
                        Value::Null,
                        Value::Null,
                        json!(["quantity", "unit_price"]),
                    ],
                )
                .await
            }
            Erp::Odoo => {
                self.call(
                    "sale.order.line",
                    "search_read",
                    vec![
                        json!([["order_id", "=", sale]]),
                        json!(["product_uom_qty", "price_unit"]),
                    ],
                )
                .await
            }
        };
        let text = |v: &Value| match v {
            Value::Object(o) => o
                .get("decimal")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            other => other.to_string(),
        };
        let number = |s: String| s.parse::<f64>().map(|f| f.to_string()).unwrap_or(s);
        let mut out: Vec<(String, String)> = rows
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| match self.erp {
                Erp::Tryton => (number(text(&r["quantity"])), number(text(&r["unit_price"]))),
                Erp::Odoo => (
                    number(text(&r["product_uom_qty"])),
                    number(text(&r["price_unit"])),
                ),
            })
            .collect();
        out.sort();
        out
    }
}

// ---------------------------------------------------------------------------
// The binary.

fn spawn_run(db: &str, file: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--once"])
        .arg(file)
        .env("SYNCHUB_DATABASE_URL", db)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start synchub")
}

fn run_json(db: &str, file: &Path) -> Value {
    let o: Output = Command::new(BIN)
        .args(["run", "--once", "--report", "json"])
        .arg(file)
        .env("SYNCHUB_DATABASE_URL", db)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run failed: {err}");
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The CRM id of the one order the store holds.
async fn crm_order(store: &Store, shop_name: &str) -> String {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT crm_id FROM id_link WHERE connection = $1 AND object = 'order'")
            .bind(shop_name)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(ids.len(), 1, "one shop order in the store: {ids:?}");
    ids[0].clone()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

async fn kill_at_each_point_then_one_sale(erp: Erp) {
    let admin = Admin::connect(erp).await;
    let dir = tempfile::tempdir().unwrap();
    for (n, point) in erp.points().into_iter().enumerate() {
        let tag = unique(&format!("sk{n}"));
        let sku = format!("TEA-{tag}");
        let email = format!("{tag}@example.com.tw");
        admin.make_product(&sku, &format!("凍頂烏龍茶 {tag}")).await;

        // One customer and one order in the shop, named for this point.
        let shop = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions {
            customers: 1,
            orders: 1,
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(shop.edit_customer(FIRST_CUSTOMER_ID, |c| {
            c.email = Some(email.clone());
            c.first_name = Some("淑芬".into());
            c.last_name = Some(format!("黃 {tag}"));
        }));
        assert!(shop.edit_order(SHOP_ORDER, |o| {
            o.email = Some(email.clone());
            o.lines.truncate(1);
            o.lines[0].sku = sku.clone();
            o.lines[0].title = format!("凍頂烏龍茶 {tag}");
        }));

        let db = TestDb::sqlite();
        let store = db.store().await;
        let (proxy, reached) = hold_proxy(erp.upstream(), point.rule).await;
        let through_proxy = dir.path().join(format!("proxy-{n}.toml"));
        // CRM ids derive from (connection, object, external id) and the
        // sale's reference is the CRM id: a connection name of its own keeps
        // this order apart from earlier runs' in the shared ERP.
        let shop_name = format!("shop-{tag}");
        std::fs::write(&through_proxy, erp.pipeline(&shop_name, &shop, &proxy)).unwrap();
        let direct = dir.path().join(format!("direct-{n}.toml"));
        std::fs::write(&direct, erp.pipeline(&shop_name, &shop, erp.upstream())).unwrap();

        let log = dir.path().join(format!("killed-{n}.log"));
        let mut child = spawn_run(&db.url, &through_proxy, &log);
        let killed = kill_when(&mut child, Duration::from_secs(60), || {
            let reached = reached.clone();
            async move { reached.load(Ordering::SeqCst) }
        })
        .await;
        // Past the last answer the run may end before the kill lands.
        assert!(
            killed || point.rule.when == When::Passed,
            "{erp:?} / {}: the run ended first: {}",
            point.name,
            std::fs::read_to_string(&log).unwrap_or_default()
        );

        // What the ERP and the store hold at the kill.
        let crm_id = crm_order(&store, &shop_name).await;
        let sales = admin.sales_of(&sku).await;
        if let Some(exists) = point.sale_exists {
            assert_eq!(
                sales.len(),
                usize::from(exists),
                "{erp:?} / {}: {sales:?}",
                point.name
            );
        }
        assert!(sales.len() <= 1, "{erp:?} / {}: {sales:?}", point.name);
        assert_eq!(
            admin.customers_with(&email).await,
            u64::from(point.customer_exists),
            "{erp:?} / {}",
            point.name
        );
        if point.sale_exists.is_some() {
            let pending = store
                .pending_pushes("erp", ObjectKind::Order, 10, 100)
                .await
                .unwrap();
            assert_eq!(
                pending
                    .iter()
                    .map(|p| p.crm_id.as_str())
                    .collect::<Vec<_>>(),
                vec![crm_id.as_str()],
                "{erp:?} / {}: the push was not committed locally",
                point.name
            );
        }

        // The dead run still claims the push (a claim lasts 10 minutes, the
        // engine's CLAIM_TTL, so that no other live process pushes it); the
        // re-run below sees that its process has ended and takes it over.
        let claimed = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM outbox \
             WHERE connection = 'erp' AND done_at IS NULL AND claimed_by IS NOT NULL",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if point.sale_exists.is_some() {
            assert_eq!(
                claimed, 1,
                "{erp:?} / {}: the killed run's claim",
                point.name
            );
        }

        // The re-run, straight to the ERP.
        let report = run_json(&db.url, &direct);
        let sales = admin.sales_of(&sku).await;
        assert_eq!(
            sales.len(),
            1,
            "{erp:?} / {}: exactly one sale: {sales:?} {report}",
            point.name
        );
        let (sale, reference) = sales[0].clone();
        assert_eq!(reference, crm_id, "{erp:?} / {}", point.name);
        assert_eq!(
            admin.customers_with(&email).await,
            1,
            "{erp:?} / {}: one customer",
            point.name
        );
        assert_eq!(
            admin.lines_of(sale).await,
            vec![("3".to_string(), "199".to_string())],
            "{erp:?} / {}",
            point.name
        );
        let links = store.links_of(&crm_id).await.unwrap();
        let to_erp: Vec<_> = links.iter().filter(|l| l.connection == "erp").collect();
        assert_eq!(to_erp.len(), 1, "{erp:?} / {}: {links:?}", point.name);
        assert_eq!(to_erp[0].external_id, sale.to_string());
        assert!(
            store
                .pending_pushes("erp", ObjectKind::Order, 10, 100)
                .await
                .unwrap()
                .is_empty(),
            "{erp:?} / {}",
            point.name
        );

        // Nothing left to write: a third run pushes nothing, still one sale.
        let again = run_json(&db.url, &direct);
        assert_eq!(
            again["streams"]["erp.order"]["pushed"]
                .as_u64()
                .unwrap_or(0),
            0,
            "{again}"
        );
        assert_eq!(admin.sales_of(&sku).await.len(), 1);
        store.close().await;
        shop.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_shop_order_is_one_sale_after_sigkill_at_each_point() {
    kill_at_each_point_then_one_sale(Erp::Tryton).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odoo_shop_order_is_one_sale_order_after_sigkill_at_each_point() {
    kill_at_each_point_then_one_sale(Erp::Odoo).await;
}

// ---------------------------------------------------------------------------
// Partners both ways.

/// Digits as CJK numerals: unique names that stay wholly CJK (a shop splits
/// a CJK name without spaces into family = first character, given = rest).
fn cjk_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:010}", nanos % 10_000_000_000)
        .chars()
        .map(|d| match d {
            '0' => '〇',
            '1' => '一',
            '2' => '二',
            '3' => '三',
            '4' => '四',
            '5' => '五',
            '6' => '六',
            '7' => '七',
            '8' => '八',
            _ => '九',
        })
        .collect()
}

/// What the ERP holds for a partner.
#[derive(Debug, Clone, PartialEq)]
struct ErpPartner {
    name: String,
    phone: String,
    /// Odoo: the company it is a contact of.
    parent: Option<i64>,
    active: bool,
}

impl Admin {
    /// Creates a person (on Odoo a contact of a new company); returns its
    /// id and the company's.
    async fn create_partner(&self, name: &str, company: &str, email: &str) -> (i64, Option<i64>) {
        match self.erp {
            Erp::Tryton => {
                let ids = self
                    .call(
                        "party.party",
                        "create",
                        vec![json!([{"name": name, "contact_mechanisms": [["create", [
                            {"type": "email", "value": email},
                            {"type": "phone", "value": "+886 2 2345 6789"}]]]}])],
                    )
                    .await;
                (ids[0].as_i64().unwrap(), None)
            }
            Erp::Odoo => {
                let company = self
                    .call(
                        "res.partner",
                        "create",
                        vec![json!({"name": company, "is_company": true})],
                    )
                    .await
                    .as_i64()
                    .unwrap();
                let id = self
                    .call(
                        "res.partner",
                        "create",
                        vec![json!({"name": name, "parent_id": company, "email": email,
                                    "phone": "+886 2 2345 6789"})],
                    )
                    .await
                    .as_i64()
                    .unwrap();
                (id, Some(company))
            }
        }
    }

    async fn write_partner(&self, id: i64, vals: Value) {
        let model = match self.erp {
            Erp::Tryton => "party.party",
            Erp::Odoo => "res.partner",
        };
        self.call(model, "write", vec![json!([id]), vals]).await;
    }

    async fn partner(&self, id: i64) -> ErpPartner {
        match self.erp {
            Erp::Tryton => {
                let rows = self
                    .call(
                        "party.party",
                        "search_read",
                        vec![
                            json!([["id", "=", id], ["active", "in", [true, false]]]),
                            json!(0),
                            Value::Null,
                            Value::Null,
                            json!(["name", "active"]),
                        ],
                    )
                    .await;
                let phones = self
                    .call(
                        "party.contact_mechanism",
                        "search_read",
                        vec![
                            json!([["party", "=", id], ["type", "=", "phone"]]),
                            json!(0),
                            Value::Null,
                            Value::Null,
                            json!(["value"]),
                        ],
                    )
                    .await;
                ErpPartner {
                    name: rows[0]["name"].as_str().unwrap().to_string(),
                    phone: phones[0]["value"].as_str().unwrap_or("").to_string(),
                    parent: None,
                    // Tryton on SQLite answers booleans as 0/1.
                    active: rows[0]["active"]
                        .as_bool()
                        .or(rows[0]["active"].as_i64().map(|i| i != 0))
                        .unwrap(),
                }
            }
            Erp::Odoo => {
                let rows = self
                    .call(
                        "res.partner",
                        "read",
                        vec![json!([id]), json!(["name", "phone", "parent_id", "active"])],
                    )
                    .await;
                let r = &rows[0];
                ErpPartner {
                    name: r["name"].as_str().unwrap().to_string(),
                    phone: r["phone"].as_str().unwrap_or("").to_string(),
                    parent: r["parent_id"].get(0).and_then(Value::as_i64),
                    active: r["active"].as_bool().unwrap(),
                }
            }
        }
    }
}

impl Erp {
    fn partners_pipeline(self, shop: Option<&shopify_sandbox::SandboxHandle>) -> String {
        let erp = match self {
            Erp::Tryton => format!(
                r#"kind = "tryton"
objects = ["contact"]

[connections.config]
url = "{TRYTON}"
database = "synchub"
login = "admin"
password = "admin-pass"
"#
            ),
            Erp::Odoo => format!(
                r#"kind = "odoo"
objects = ["company", "contact"]

[connections.config]
url = "{ODOO}"
database = "odoo"
login = "admin"
password = "admin"
"#
            ),
        };
        let shop = shop.map_or(String::new(), |shop| {
            format!(
                r#"
[[connections]]
name = "shop"
kind = "shopify"
direction = "two-way"
objects = ["contact"]

[connections.config]
shop = "{}"
base_url = "{}"
access_token = "{}"
webhook_secrets = ["{}"]
"#,
                shop.config().shop,
                shop.base_url,
                shopify_sandbox::SANDBOX_TOKEN,
                shopify_sandbox::SANDBOX_WEBHOOK_SECRET,
            )
        });
        format!(
            r#"version = 1
name = "partners"
region = "TW"

[merge.fields]
full_name = {{ priority = ["crm", "erp"] }}

[[connections]]
name = "erp"
direction = "two-way"
{erp}{shop}"#
        )
    }
}

/// The CRM record linked to an ERP partner.
async fn crm_of(store: &Store, erp_id: i64) -> (String, synchub_core::model::Contact, bool) {
    let crm_id = store
        .linked_crm_id("erp", ObjectKind::Contact, &erp_id.to_string())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("ERP partner {erp_id} is not linked to a CRM contact"));
    let rec = store.record(&crm_id).await.unwrap().unwrap();
    let synchub_core::Record::Contact(c) = rec.record else {
        panic!("not a contact: {:?}", rec.record)
    };
    (crm_id, c, rec.deleted)
}

/// (first name, last name, phone) of the shop's customer with `email`.
fn shop_customer(
    shop: &shopify_sandbox::SandboxHandle,
    email: &str,
) -> Option<(String, String, String)> {
    let state = shop.shop();
    let id = state.customer_by_email(email)?;
    let c = state.customers.get(id)?;
    Some((
        c.first_name.unwrap_or_default(),
        c.last_name.unwrap_or_default(),
        c.phone.unwrap_or_default(),
    ))
}

async fn partners_round_trip(erp: Erp) {
    let admin = Admin::connect(erp).await;
    let tag = unique("rt");
    let cjk = cjk_tag();
    let email = format!("{tag}@example.com.tw");
    let name = format!("李小龍{cjk}");
    let company = format!("台北茶行{cjk}");
    let shop = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions {
        customers: 0,
        orders: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let erp_only = dir.path().join("erp-only.toml");
    std::fs::write(&erp_only, erp.partners_pipeline(None)).unwrap();
    let both = dir.path().join("both.toml");
    std::fs::write(&both, erp.partners_pipeline(Some(&shop))).unwrap();
    let db = TestDb::sqlite();
    let store = db.store().await;

    // What the ERP held before this test stays between the ERP and the CRM.
    run_json(&db.url, &erp_only);

    // Created in the ERP: reaches the CRM and the shop, name and phone as typed.
    let (id, company_id) = admin.create_partner(&name, &company, &email).await;
    let typed = admin.partner(id).await;
    assert_eq!(typed.name, name);
    let first = run_json(&db.url, &both);
    let (crm_id, contact, deleted) = crm_of(&store, id).await;
    assert!(!deleted);
    assert_eq!(contact.full_name.as_deref(), Some(name.as_str()), "{first}");
    assert_eq!(contact.emails, vec![email.clone()]);
    assert_eq!(contact.phones, vec!["+886223456789".to_string()]);
    if erp == Erp::Odoo {
        assert_eq!(contact.company.as_deref(), Some(company.as_str()));
    }
    let in_shop = shop_customer(&shop, &email)
        .unwrap_or_else(|| panic!("the ERP's partner did not reach the shop: {first}"));
    assert_eq!(
        (in_shop.1.clone() + &in_shop.0, in_shop.2.clone()),
        (name.clone(), "+886223456789".to_string()),
        "{first}"
    );

    // Renamed in the ERP and in the CRM between two runs: the policy makes
    // the CRM's name win, and it reaches the ERP and the shop.
    // Odoo 11 keeps `write_date` to the second: the ERP edit must fall in a
    // later second than the read above to be seen as newer than it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let erp_name = format!("{name}乙");
    let crm_name = format!("{name}甲");
    admin
        .write_partner(id, json!({"name": erp_name.clone()}))
        .await;
    let mut edited = contact.clone();
    edited.full_name = Some(crm_name.clone());
    edited.given_name = None;
    edited.family_name = None;
    synchub_engine::local::apply_local_edit(&store, &crm_id, synchub_core::Record::Contact(edited))
        .await
        .unwrap();
    let second = run_json(&db.url, &both);
    let (_, contact, _) = crm_of(&store, id).await;
    assert_eq!(
        contact.full_name.as_deref(),
        Some(crm_name.as_str()),
        "{second}"
    );
    let now = admin.partner(id).await;
    assert_eq!(
        now.name, crm_name,
        "the policy's result reaches the ERP: {second}"
    );
    let in_shop = shop_customer(&shop, &email).unwrap();
    assert_eq!(in_shop.1 + &in_shop.0, crm_name, "{second}");
    // The round trip left the phone as typed in the ERP and the company link.
    assert_eq!(now.phone, typed.phone);
    assert_eq!(now.parent, company_id);
    assert_eq!(contact.phones, vec!["+886223456789".to_string()]);
    if erp == Erp::Odoo {
        assert_eq!(contact.company.as_deref(), Some(company.as_str()));
    }
    // A quiet round: nothing changes anywhere.
    let third = run_json(&db.url, &both);
    assert_eq!(admin.partner(id).await, now, "{third}");

    // Archived in the ERP: archived in the CRM.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    admin.write_partner(id, json!({"active": false})).await;
    let fourth = run_json(&db.url, &both);
    let (_, _, deleted) = crm_of(&store, id).await;
    assert!(
        deleted,
        "the archived partner is archived in the CRM: {fourth}"
    );
    assert!(!admin.partner(id).await.active);
    store.close().await;
    shop.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_partners_round_trip_through_crm_and_shop() {
    partners_round_trip(Erp::Tryton).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odoo_partners_round_trip_through_crm_and_shop() {
    partners_round_trip(Erp::Odoo).await;
}
