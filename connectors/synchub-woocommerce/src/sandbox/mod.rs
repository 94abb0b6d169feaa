//! A stateful fake of the WooCommerce REST API v3, for tests and the demo.
//!
//! Serves `/wp-json/wc/v3/customers` (list, get, create, update, batch) and
//! `/orders` (list with `modified_after` + `dates_are_gmt`, get), Basic or
//! query-string auth, `per_page` ≤ 100 with `X-WP-Total` / `X-WP-TotalPages`
//! / `Link`, the recorded error shapes (401, 404, invalid param, 413 batch),
//! and signed webhooks (PHP-escaped bodies) for every write. Rows are held as
//! REST JSON; seeds are generated eagerly (fine up to some 10,000s).

mod api;
pub mod data;
mod hooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::WooConfig;
use crate::map::format_gmt;
use crate::webhook::{php_json, sign};

/// Consumer key the sandbox accepts by default.
pub const SANDBOX_KEY: &str = "ck_sandbox_key";
/// Consumer secret the sandbox accepts by default.
pub const SANDBOX_SECRET: &str = "cs_sandbox_secret";
/// Secret the sandbox signs webhooks with by default.
pub const SANDBOX_WEBHOOK_SECRET: &str = "wc_sandbox_webhook_secret";

/// A webhook the store sends.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// `customer.updated`…
    pub topic: String,
    /// Header pairs, including `X-WC-Webhook-Signature`.
    pub headers: Vec<(String, String)>,
    /// The exact signed body.
    pub body: Vec<u8>,
}

/// Faults a test injects, answered before anything else: a 429 with
/// `Retry-After` (a host's rate limiter in front of WordPress), a 503 while
/// the store is down, and a create carried out whose answer never arrives
/// (502 from the proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The next request answers 429 with `Retry-After: n` seconds.
    pub throttle_next: Option<u64>,
    /// Every request answers 503.
    pub down: bool,
    /// The next create (single or in a batch) is carried out, then
    /// answered 502.
    pub lose_next_write: bool,
    /// Writes answer 429 with `Retry-After: n` seconds (reads pass), once
    /// [`writes_before_throttle`](Self::writes_before_throttle) passed.
    pub throttle_writes: Option<u64>,
    /// Writes served normally before `throttle_writes` applies.
    pub writes_before_throttle: u64,
}

/// Everything the sandbox store holds.
pub struct StoreState {
    /// Faults a test asked for (off by default).
    pub faults: Faults,
    /// Customers by id, as REST JSON.
    pub customers: BTreeMap<u64, Value>,
    /// Orders by id, as REST JSON.
    pub orders: BTreeMap<u64, Value>,
    /// Accepted consumer key.
    pub consumer_key: String,
    /// Accepted consumer secret.
    pub consumer_secret: String,
    /// Webhook signing secret.
    pub webhook_secret: String,
    /// Where the sandbox listens.
    pub base_url: String,
    /// Requests served.
    pub requests: u64,
    /// Write requests served (create, update, batch; accepted or refused):
    /// what a quiet sync round must not send.
    pub writes: u64,
    /// Webhooks queued by writes.
    pub outbox: Vec<WebhookDelivery>,
    /// The permission of the consumer key: `read`, `write` or `read_write`
    /// (the default). A request the key may not make answers 401.
    pub key_permissions: String,
    /// The store's webhooks (`/webhooks`), REST JSON, oldest first.
    pub webhooks: Vec<Value>,
    clock: DateTime<Utc>,
    next_id: u64,
    seq: u64,
}

impl StoreState {
    /// Advances the clock: to the wall clock (whole seconds), or one second
    /// past the last write when writes come faster, so every write gets a
    /// distinct, increasing time that is comparable with the CRM's own
    /// change times (newest-wins merges need a shared time line).
    pub fn tick(&mut self) -> DateTime<Utc> {
        let now = Utc::now().trunc_subsecs(0);
        self.clock = (self.clock + Duration::seconds(1)).max(now);
        self.clock
    }

    /// A fresh customer id.
    pub fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Stamps `date_modified(_gmt)`, stores, and queues the webhook.
    pub fn save_customer(&mut self, mut row: Value, topic: &str) -> Value {
        let now = self.tick();
        row["date_modified_gmt"] = json!(format_gmt(now));
        row["date_modified"] = json!(data::local(now));
        let id = row["id"].as_u64().unwrap_or_default();
        self.customers.insert(id, row.clone());
        self.queue_webhook(topic, &row);
        row
    }

    /// The id of the customer with this email (case-insensitive).
    pub fn customer_by_email(&self, email: &str) -> Option<u64> {
        self.customers
            .iter()
            .find(|(_, c)| {
                c["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
            })
            .map(|(id, _)| *id)
    }

    /// Signs and queues a webhook.
    pub fn queue_webhook(&mut self, topic: &str, payload: &Value) {
        self.seq += 1;
        let body = php_json(payload).into_bytes();
        let (resource, event) = topic.split_once('.').unwrap_or((topic, ""));
        let headers = vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "User-Agent".into(),
                "WooCommerce/8.6.1 Hookshot (WordPress/6.4.3)".into(),
            ),
            ("X-WC-Webhook-Source".into(), format!("{}/", self.base_url)),
            ("X-WC-Webhook-Topic".into(), topic.into()),
            ("X-WC-Webhook-Resource".into(), resource.into()),
            ("X-WC-Webhook-Event".into(), event.into()),
            (
                "X-WC-Webhook-Signature".into(),
                sign(self.webhook_secret.as_bytes(), &body),
            ),
            ("X-WC-Webhook-ID".into(), "12".into()),
            (
                "X-WC-Webhook-Delivery-ID".into(),
                format!("{:032x}", self.seq),
            ),
        ];
        self.outbox.push(WebhookDelivery {
            topic: topic.into(),
            headers,
            body,
        });
    }
}

/// How to seed and run the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Seed customers (the first 5 are the story people).
    pub customers: u64,
    /// Seed orders (the first 3: a registered buyer, a guest, a 0-line order).
    pub orders: u64,
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            customers: 20,
            orders: 10,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// A running sandbox.
pub struct SandboxHandle {
    /// `http://127.0.0.1:{port}`, the store's site URL.
    pub base_url: String,
    state: Arc<Mutex<StoreState>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The router, for tests that drive it without a socket.
pub fn router(state: Arc<Mutex<StoreState>>) -> Router {
    Router::new()
        .route(
            "/wp-json/wc/v3/customers",
            get(api::list_customers).post(api::create_customer),
        )
        .route("/wp-json/wc/v3/customers/batch", post(api::batch_customers))
        .route(
            "/wp-json/wc/v3/customers/:id",
            get(api::get_customer).put(api::update_customer),
        )
        .route("/wp-json/wc/v3/orders", get(api::list_orders))
        .route("/wp-json/wc/v3/orders/:id", get(api::get_order))
        .route(
            "/wp-json/wc/v3/webhooks",
            get(hooks::list_webhooks).post(hooks::create_webhook),
        )
        .fallback(api::no_route)
        .with_state(state)
}

/// Seeds a store and serves it.
pub async fn spawn(options: SandboxOptions) -> std::io::Result<SandboxHandle> {
    let listener = tokio::net::TcpListener::bind(options.bind).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let customers = (0..options.customers)
        .map(|i| {
            (
                data::FIRST_CUSTOMER_ID + i,
                data::seed_customer(i, &base_url),
            )
        })
        .collect();
    let orders = (0..options.orders)
        .map(|i| {
            (
                data::FIRST_ORDER_ID + i,
                data::seed_order(i, options.customers, &base_url),
            )
        })
        .collect();
    let store = StoreState {
        faults: Faults::default(),
        customers,
        orders,
        consumer_key: SANDBOX_KEY.into(),
        consumer_secret: SANDBOX_SECRET.into(),
        webhook_secret: SANDBOX_WEBHOOK_SECRET.into(),
        base_url: base_url.clone(),
        requests: 0,
        writes: 0,
        outbox: Vec::new(),
        key_permissions: "read_write".into(),
        webhooks: Vec::new(),
        clock: data::seed_time(options.customers.max(options.orders)) + Duration::days(1),
        next_id: data::FIRST_CUSTOMER_ID + options.customers + 1_000,
        seq: 0,
    };
    let state = Arc::new(Mutex::new(store));
    let app = router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "woocommerce sandbox stopped");
        }
    });
    Ok(SandboxHandle {
        base_url,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

impl SandboxHandle {
    /// Locks the store (never hold across an await).
    pub fn store(&self) -> MutexGuard<'_, StoreState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A connector config pointing at this sandbox.
    pub fn config(&self) -> WooConfig {
        let mut cfg = WooConfig::new(&self.base_url, SANDBOX_KEY, SANDBOX_SECRET);
        cfg.webhook_secret = Some(self.store().webhook_secret.clone().into());
        cfg
    }

    /// Edits a customer as the store admin would (bumps the date, queues the webhook).
    pub fn edit_customer(&self, id: u64, edit: impl FnOnce(&mut Value)) -> bool {
        let mut store = self.store();
        let Some(mut row) = store.customers.get(&id).cloned() else {
            return false;
        };
        edit(&mut row);
        store.save_customer(row, "customer.updated");
        true
    }

    /// Edits an order (bumps `date_modified_gmt`, queues `order.updated`).
    pub fn edit_order(&self, id: u64, edit: impl FnOnce(&mut Value)) -> bool {
        let mut store = self.store();
        let Some(mut row) = store.orders.get(&id).cloned() else {
            return false;
        };
        edit(&mut row);
        let now = store.tick();
        row["date_modified_gmt"] = json!(format_gmt(now));
        row["date_modified"] = json!(data::local(now));
        store.orders.insert(id, row.clone());
        store.queue_webhook("order.updated", &row);
        true
    }

    /// Adds an order no connector can map: a plugin wrote its total with a
    /// decimal comma (`"12,50"`). Returns its id.
    pub fn add_unusable_order(&self) -> u64 {
        let mut store = self.store();
        let id = data::FIRST_ORDER_ID + store.orders.len() as u64 + 10_000;
        let mut order = data::seed_order(3, store.customers.len() as u64, &store.base_url);
        order["id"] = json!(id);
        order["number"] = json!(id.to_string());
        order["total"] = json!("12,50");
        let now = store.tick();
        order["date_modified_gmt"] = json!(format_gmt(now));
        order["date_modified"] = json!(data::local(now));
        store.orders.insert(id, order.clone());
        store.queue_webhook("order.created", &order);
        id
    }

    /// Sets the consumer key's permission: `read`, `write` or `read_write`.
    pub fn set_key_permissions(&self, permissions: &str) {
        self.store().key_permissions = permissions.to_string();
    }

    /// The store's webhooks, as `(topic, delivery_url)`.
    pub fn webhooks(&self) -> Vec<(String, String)> {
        self.store()
            .webhooks
            .iter()
            .map(|w| {
                let field = |k: &str| w[k].as_str().unwrap_or_default().to_string();
                (field("topic"), field("delivery_url"))
            })
            .collect()
    }

    /// Takes the queued webhooks.
    pub fn take_webhooks(&self) -> Vec<WebhookDelivery> {
        std::mem::take(&mut self.store().outbox)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
