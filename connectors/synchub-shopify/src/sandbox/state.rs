//! The sandbox shop's state: lazily generated tables, a logical clock that
//! every write advances, the cost bucket, and the queue of webhooks the shop
//! would send.

use std::time::Instant;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::Value;

use super::data::{self, CustomerRow, OrderRow};
use super::render;
use super::table::Table;
use crate::webhook::sign;

/// Shopify's cost bucket (leaky bucket of points per app and shop).
#[derive(Debug, Clone)]
pub struct Bucket {
    /// `throttleStatus.maximumAvailable`.
    pub maximum: f64,
    /// `throttleStatus.restoreRate`, points per second.
    pub restore_rate: f64,
    /// `throttleStatus.currentlyAvailable`.
    pub available: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(maximum: f64, restore_rate: f64) -> Self {
        Bucket {
            maximum,
            restore_rate,
            available: maximum,
            last: Instant::now(),
        }
    }

    /// Adds the points restored since the last call.
    pub fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_rate).min(self.maximum);
        self.last = now;
    }
}

/// A webhook the shop sends: topic, headers and the exact signed body.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// `customers/update`, `orders/delete`…
    pub topic: String,
    /// Header name/value pairs, including `X-Shopify-Hmac-Sha256`.
    pub headers: Vec<(String, String)>,
    /// The raw body that was signed.
    pub body: Vec<u8>,
}

/// Faults a test injects, answered before anything else, as Shopify's edge
/// answers them: a 429 with `Retry-After` (the REST-style limit the edge
/// applies to any app), a 503 while the shop is down, and a write carried
/// out whose answer never arrives (the connection drops: 502 from the edge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The next request answers 429 with `Retry-After: n` seconds.
    pub throttle_next: Option<u64>,
    /// Every request answers 503.
    pub down: bool,
    /// The next mutation is executed, then answered 502 instead of its payload.
    pub lose_next_write: bool,
    /// Mutations answer 429 with `Retry-After: n` seconds (reads pass),
    /// once [`writes_before_throttle`](Self::writes_before_throttle) passed.
    pub throttle_writes: Option<u64>,
    /// Mutations served normally before `throttle_writes` applies.
    pub writes_before_throttle: u64,
}

/// Everything the sandbox shop holds.
pub struct ShopState {
    /// Customers.
    pub customers: Table<CustomerRow>,
    /// Orders.
    pub orders: Table<OrderRow>,
    /// Accepted `X-Shopify-Access-Token`.
    pub access_token: String,
    /// Secret the shop signs webhooks with.
    pub webhook_secret: String,
    /// `X-Shopify-Shop-Domain`.
    pub shop_domain: String,
    /// The cost bucket; `None` turns throttling off.
    pub bucket: Option<Bucket>,
    /// GraphQL requests served.
    pub requests: u64,
    /// Requests answered THROTTLED.
    pub throttled: u64,
    /// Points charged (the actual cost of every executed query).
    pub charged: u64,
    /// Write requests served (`customerCreate` / `customerUpdate`, accepted
    /// or refused): what a quiet sync round must not send.
    pub writes: u64,
    /// Webhooks queued by writes, oldest first.
    pub outbox: Vec<WebhookDelivery>,
    /// The bulk operation, if one was started.
    pub bulk: Option<super::bulk::BulkOp>,
    /// Where the sandbox listens (for bulk result URLs).
    pub base_url: String,
    /// Faults a test asked for (off by default).
    pub faults: Faults,
    /// The access scopes granted to the token
    /// (`GET /admin/oauth/access_scopes.json`); GraphQL fields needing
    /// another scope answer ACCESS_DENIED.
    pub scopes: Vec<String>,
    /// Webhook subscriptions (`/admin/api/{version}/webhooks.json`), in
    /// the REST shape, oldest first.
    pub subscriptions: Vec<Value>,
    /// The oldest API version still served: a request for an older one is
    /// answered as this one (`X-Shopify-API-Version` says which), as
    /// Shopify falls forward. `None`: every version is served.
    pub oldest_version: Option<String>,
    clock: DateTime<Utc>,
    seed_customers: u64,
    webhook_seq: u64,
}

impl ShopState {
    /// A shop seeded with `customers` customers and `orders` orders.
    pub fn new(customers: u64, orders: u64, access_token: &str, webhook_secret: &str) -> Self {
        let clock = data::seed_time(customers.max(orders)) + Duration::days(1);
        ShopState {
            customers: Table::new(
                customers,
                data::FIRST_CUSTOMER_ID,
                data::seed_time,
                Box::new(data::seed_customer),
            ),
            orders: Table::new(
                orders,
                data::FIRST_ORDER_ID,
                order_time,
                Box::new(move |i| data::seed_order(i, customers)),
            ),
            access_token: access_token.into(),
            webhook_secret: webhook_secret.into(),
            shop_domain: "synchub-sandbox.myshopify.com".into(),
            bucket: None,
            requests: 0,
            throttled: 0,
            charged: 0,
            writes: 0,
            outbox: Vec::new(),
            bulk: None,
            base_url: String::new(),
            faults: Faults::default(),
            scopes: super::admin::DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            subscriptions: Vec::new(),
            oldest_version: None,
            clock,
            seed_customers: customers,
            webhook_seq: 0,
        }
    }

    /// Advances the clock: to the wall clock (whole seconds), or one second
    /// past the last write when writes come faster, so every write gets a
    /// distinct, increasing time that is comparable with the CRM's own
    /// change times (newest-wins merges need a shared time line).
    pub fn tick(&mut self) -> DateTime<Utc> {
        let now = Utc::now().trunc_subsecs(0);
        self.clock = (self.clock + Duration::seconds(1)).max(now);
        self.clock
    }

    /// The customer with this email, if any (case-insensitive).
    pub fn customer_by_email(&self, email: &str) -> Option<u64> {
        let email = email.trim().to_ascii_lowercase();
        // generated rows have `customer{i}@example.com`
        if let Some(i) = email
            .strip_prefix("customer")
            .and_then(|r| r.strip_suffix("@example.com"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            let id = data::FIRST_CUSTOMER_ID + i;
            if let Some(c) = self.customers.get(id) {
                if c.email.as_deref().map(str::to_ascii_lowercase) == Some(email.clone()) {
                    return Some(id);
                }
            }
        }
        self.scan_small(|c| c.email.as_deref().map(str::to_ascii_lowercase) == Some(email.clone()))
    }

    /// The customer with this phone, if any (story and written rows only).
    pub fn customer_by_phone(&self, phone: &str) -> Option<u64> {
        self.scan_small(|c| c.phone.as_deref() == Some(phone))
    }

    fn scan_small(&self, pred: impl Fn(&CustomerRow) -> bool) -> Option<u64> {
        let story = (0..data::STORY_CUSTOMERS.min(self.seed_customers))
            .filter_map(|i| self.customers.get(data::FIRST_CUSTOMER_ID + i));
        let (written, _) = self.customers.list(
            Some((data::seed_time(self.seed_customers), u64::MAX)),
            None,
            None,
            usize::MAX - 1,
        );
        story.chain(written).find(|c| pred(c)).map(|c| c.id)
    }

    /// Stores a customer written through the API or by a test ("an edit in
    /// the shop admin"), bumping `updatedAt` and queueing the webhook.
    pub fn save_customer(&mut self, mut row: CustomerRow, topic: &str) -> CustomerRow {
        row.updated_at = self.tick();
        self.customers.put(row.clone());
        self.queue_webhook(topic, &render::customer_rest(&row));
        row
    }

    /// Stores an order, bumping `updatedAt` and queueing `orders/updated`.
    pub fn save_order(&mut self, mut row: OrderRow) -> OrderRow {
        row.updated_at = self.tick();
        self.orders.put(row.clone());
        self.queue_webhook("orders/updated", &render::order_rest(&row));
        row
    }

    /// Deletes a customer and queues `customers/delete` (`{"id": …}`).
    pub fn delete_customer(&mut self, id: u64) -> bool {
        let deleted = self.customers.delete(id);
        if deleted {
            self.queue_webhook("customers/delete", &serde_json::json!({ "id": id }));
        }
        deleted
    }

    /// Signs and queues a webhook.
    pub fn queue_webhook(&mut self, topic: &str, payload: &Value) {
        self.webhook_seq += 1;
        let delivery = self.signed(topic, payload, self.webhook_seq);
        self.outbox.push(delivery);
    }

    /// A signed delivery of `payload` on `topic`, as Shopify sends it.
    pub fn signed(&self, topic: &str, payload: &Value, seq: u64) -> WebhookDelivery {
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let headers = vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Shopify-Topic".into(), topic.into()),
            (
                "X-Shopify-Hmac-Sha256".into(),
                sign(self.webhook_secret.as_bytes(), &body),
            ),
            ("X-Shopify-Shop-Domain".into(), self.shop_domain.clone()),
            (
                "X-Shopify-API-Version".into(),
                crate::config::DEFAULT_API_VERSION.into(),
            ),
            (
                "X-Shopify-Webhook-Id".into(),
                format!("{seq:08x}-5b1c-4e6a-9d2f-{seq:012x}"),
            ),
            ("X-Shopify-Triggered-At".into(), render::time(self.clock)),
        ];
        WebhookDelivery {
            topic: topic.into(),
            headers,
            body,
        }
    }
}

fn order_time(i: u64) -> DateTime<Utc> {
    data::seed_time(i) + Duration::seconds(10)
}
