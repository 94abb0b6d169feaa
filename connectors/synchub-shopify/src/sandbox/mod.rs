//! A stateful fake of the Shopify Admin GraphQL API, for tests, benchmarks
//! and `synchub demo`.
//!
//! It serves `POST /admin/api/{version}/graphql.json` with the shapes of the
//! recorded fixtures: customers and orders connections (keyset cursors,
//! `sortKey: UPDATED_AT`, `updated_at` search filters), `customerCreate` /
//! `customerUpdate` with `userErrors`, the cost bucket with THROTTLED and
//! MAX_COST_EXCEEDED answers (off by default), 401 on a bad token, bulk
//! operations with a streamed JSONL result, and signed webhooks for every
//! write, the token's access scopes (`GET /admin/oauth/access_scopes.json`;
//! a field needing a scope the token lacks answers ACCESS_DENIED) and
//! webhook subscriptions (`GET`/`POST /admin/api/{version}/webhooks.json`,
//! a second subscription of a topic to the same address refused with 422
//! as Shopify does). Every query is priced by Shopify's documented cost rules from the
//! text received ([`cost`]: requested before execution, actual from the
//! answer), THROTTLED answers carry the bucket's real throttleStatus, and a
//! requested cost over 1,000 is refused with MAX_COST_EXCEEDED. Known
//! simplifications: selection sets are not honoured when answering (nodes
//! carry the fields the connector selects), every connection sorts by
//! `UPDATED_AT`, and `numberOfOrders`/`amountSpent` are zero.
//!
//! ```no_run
//! # async fn demo() {
//! use synchub_shopify::sandbox::{spawn, SandboxOptions};
//! let shop = spawn(SandboxOptions { customers: 1_000, orders: 500, ..SandboxOptions::default() }).await.expect("bind");
//! let config = shop.config(); // a ShopifyConfig pointing at the sandbox
//! # let _ = config;
//! shop.shutdown().await;
//! # }
//! ```

mod admin;
mod api;
pub mod bulk;
pub mod cost;
pub mod data;
mod gql;
mod mutate;
pub mod render;
pub mod state;
pub mod table;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use admin::DEFAULT_SCOPES;
pub use data::{CustomerRow, OrderRow, FIRST_CUSTOMER_ID, FIRST_ORDER_ID};
pub use state::{Bucket, Faults, ShopState, WebhookDelivery};

use crate::config::ShopifyConfig;

/// Access token the sandbox accepts by default.
pub const SANDBOX_TOKEN: &str = "shpat_sandbox_token";
/// Secret the sandbox signs webhooks with by default.
pub const SANDBOX_WEBHOOK_SECRET: &str = "shpss_sandbox_secret";

/// How to seed and run the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Seed customers (the first 8 are the hand-written story people).
    pub customers: u64,
    /// Seed orders (the first 5 are hand-written: lines, HKD, 0-line, guest).
    pub orders: u64,
    /// Accepted access token.
    pub access_token: String,
    /// Webhook signing secret.
    pub webhook_secret: String,
    /// `Some((maximumAvailable, restoreRate))` turns the cost bucket on.
    pub throttle: Option<(f64, f64)>,
    /// Address to bind; port 0 picks a free one.
    pub bind: SocketAddr,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            customers: 20,
            orders: 10,
            access_token: SANDBOX_TOKEN.into(),
            webhook_secret: SANDBOX_WEBHOOK_SECRET.into(),
            throttle: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// A running sandbox.
pub struct SandboxHandle {
    /// `http://127.0.0.1:{port}`, to use as `base_url`.
    pub base_url: String,
    state: Arc<Mutex<ShopState>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The router, for tests that drive it without a socket.
pub fn router(state: Arc<Mutex<ShopState>>) -> Router {
    Router::new()
        .route("/admin/api/:version/graphql.json", post(api::graphql))
        .route("/bulk/:file", get(bulk::download))
        .route("/admin/oauth/access_scopes.json", get(admin::access_scopes))
        .route(
            "/admin/api/:version/webhooks.json",
            get(admin::list_webhooks).post(admin::create_webhook),
        )
        .fallback(api::not_found)
        .with_state(state)
}

/// Seeds a shop and serves it on `options.bind`.
pub async fn spawn(options: SandboxOptions) -> std::io::Result<SandboxHandle> {
    let mut shop = ShopState::new(
        options.customers,
        options.orders,
        &options.access_token,
        &options.webhook_secret,
    );
    shop.bucket = options.throttle.map(|(max, rate)| Bucket::new(max, rate));
    let listener = tokio::net::TcpListener::bind(options.bind).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    shop.base_url = base_url.clone();
    let state = Arc::new(Mutex::new(shop));
    let app = router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "shopify sandbox stopped");
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
    /// Locks the shop to inspect or change it (never hold across an await).
    pub fn shop(&self) -> MutexGuard<'_, ShopState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The shared state, e.g. for [`router`].
    pub fn state(&self) -> Arc<Mutex<ShopState>> {
        self.state.clone()
    }

    /// A connector config pointing at this sandbox.
    pub fn config(&self) -> ShopifyConfig {
        let shop = self.shop();
        let mut cfg = ShopifyConfig::new("synchub-sandbox", &shop.access_token);
        cfg.base_url = Some(self.base_url.clone());
        cfg.webhook_secrets = vec![shop.webhook_secret.clone().into()];
        cfg
    }

    /// Edits a customer as a shop admin would (bumps `updatedAt`, queues the
    /// webhook); false if there is no such customer.
    pub fn edit_customer(&self, id: u64, edit: impl FnOnce(&mut CustomerRow)) -> bool {
        let mut shop = self.shop();
        let Some(mut row) = shop.customers.get(id) else {
            return false;
        };
        edit(&mut row);
        shop.save_customer(row, "customers/update");
        true
    }

    /// Edits an order as the shop would (bumps `updatedAt`, queues the webhook).
    pub fn edit_order(&self, id: u64, edit: impl FnOnce(&mut OrderRow)) -> bool {
        let mut shop = self.shop();
        let Some(mut row) = shop.orders.get(id) else {
            return false;
        };
        edit(&mut row);
        shop.save_order(row);
        true
    }

    /// Adds a customer no connector can turn into a contact: an app created
    /// it with only a note (no name, email or phone). Returns its id.
    pub fn add_unusable_customer(&self) -> u64 {
        let mut shop = self.shop();
        let id = data::FIRST_CUSTOMER_ID + shop.customers.len() + 10_000;
        let mut row = data::seed_customer(data::STORY_CUSTOMERS + 1);
        row.id = id;
        row.first_name = None;
        row.last_name = None;
        row.email = None;
        row.phone = None;
        row.address = None;
        row.tags = Vec::new();
        row.note = Some("created by the loyalty app".into());
        shop.save_customer(row, "customers/create");
        id
    }

    /// Grants the token exactly these access scopes (the default grants
    /// [`admin::DEFAULT_SCOPES`], everything the connector uses).
    pub fn set_scopes(&self, scopes: &[&str]) {
        self.shop().scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Serves `version` for every request naming an older one (Shopify's
    /// fall-forward past a version's end of support).
    pub fn set_oldest_version(&self, version: &str) {
        self.shop().oldest_version = Some(version.to_string());
    }

    /// The webhook subscriptions made so far, as `(topic, address)`.
    pub fn subscriptions(&self) -> Vec<(String, String)> {
        self.shop()
            .subscriptions
            .iter()
            .map(|w| {
                let field = |k: &str| w[k].as_str().unwrap_or_default().to_string();
                (field("topic"), field("address"))
            })
            .collect()
    }

    /// Takes the webhooks queued since the last call.
    pub fn take_webhooks(&self) -> Vec<WebhookDelivery> {
        std::mem::take(&mut self.shop().outbox)
    }

    /// Turns the cost bucket on (`Some`) or off (`None`).
    pub fn set_throttle(&self, bucket: Option<(f64, f64)>) {
        self.shop().bucket = bucket.map(|(max, rate)| Bucket::new(max, rate));
    }

    /// Sets the points currently available (e.g. 0 to force a THROTTLED).
    pub fn set_available(&self, points: f64) {
        if let Some(b) = self.shop().bucket.as_mut() {
            b.refill();
            b.available = points;
        }
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
