//! [`ShopifyConnector`]: the `Connector` implementation. Customers and orders
//! are read page by page (incremental on `updatedAt` with an exactly
//! de-duplicated overlap); contacts are written back with `customerCreate` /
//! `customerUpdate`, `userErrors` becoming per-record errors.

use async_trait::async_trait;
use chrono::Duration;
use serde_json::{json, Value};
use synchub_core::{
    push_each_refusing, Change, ChangeOp, Connector, ConnectorError, Cursor, ObjectKind,
    ObjectSpec, Page, PushOutcome, Record, Refusal, RemoteRecord, Written,
};

use crate::client::ShopifyClient;
use crate::config::ShopifyConfig;
use crate::error::ShopifyError;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use synchub_core::WebhookAction;
use synchub_http::webhook::{MemoryReplayGuard, ReplayGuard, WebhookError};

use crate::{bulk, map, queries, stored, webhook};

/// A Shopify shop as a synchub connector.
///
/// Build it with [`ShopifyConnector::new`] or [`ShopifyConnector::from_value`].
pub struct ShopifyConnector {
    pub(crate) cfg: ShopifyConfig,
    pub(crate) client: ShopifyClient,
    replay: Arc<dyn ReplayGuard>,
    pub(crate) bulk: bulk::BulkReaders,
    /// How messages name this instance: the pipeline's connection name, or
    /// the shop handle.
    pub(crate) label: Arc<str>,
    /// Streams whose paged backfill was announced (see [`crate::estimate`]).
    pub(crate) announced: Arc<Mutex<HashSet<ObjectKind>>>,
}

impl ShopifyConnector {
    /// The connector kind.
    pub const KIND: &'static str = "shopify";

    /// Validates the config and builds the connector (no IO).
    pub fn new(cfg: ShopifyConfig) -> Result<Self, ShopifyError> {
        cfg.validate()?;
        let client = ShopifyClient::new(&cfg)?;
        // Shopify retries a delivery for 4 hours: remember ids a little longer.
        let replay = Arc::new(MemoryReplayGuard::new(
            std::time::Duration::from_secs(5 * 3600),
            100_000,
        ));
        Ok(ShopifyConnector {
            label: Arc::from(cfg.shop.as_str()),
            cfg,
            client,
            replay,
            bulk: Default::default(),
            announced: Arc::default(),
        })
    }

    /// Builds from a pipeline file's table (any serde format, e.g. TOML).
    pub fn from_value(table: Value) -> Result<Self, ShopifyError> {
        let cfg: ShopifyConfig =
            serde_json::from_value(table).map_err(|e| ShopifyError::Config(e.to_string()))?;
        Self::new(cfg)
    }

    /// The config this instance runs with.
    pub fn config(&self) -> &ShopifyConfig {
        &self.cfg
    }

    /// Names this instance in messages (the pipeline's connection name).
    pub fn named(mut self, name: &str) -> Self {
        self.label = Arc::from(name);
        self
    }

    /// Replaces the in-memory replay guard (e.g. with one the store persists).
    pub fn with_replay_guard(mut self, guard: Arc<dyn ReplayGuard>) -> Self {
        self.replay = guard;
        self
    }

    /// Verifies, de-duplicates and classifies a webhook delivery with this
    /// instance's secrets; the daemon then syncs `WebhookAction::Sync.object`.
    pub async fn handle_webhook(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookAction, WebhookError> {
        webhook::handle_webhook(
            &self.cfg.webhook_secrets,
            headers,
            body,
            self.replay.as_ref(),
        )
        .await
    }

    /// How long a paged backfill of `records` items of `object` takes at
    /// most at `restore_rate` points per second, by the API's own arithmetic:
    /// every page waits for its requested cost (the worst case; the unused
    /// part is refunded, so a shop of sparse records goes faster).
    pub fn paged_backfill_estimate(
        &self,
        object: ObjectKind,
        records: u64,
        restore_rate: f64,
    ) -> Option<std::time::Duration> {
        let (first, cost) = match object {
            ObjectKind::Contact => {
                let first = self.cfg.customers_page();
                (first, crate::cost::customers_page_cost(first))
            }
            ObjectKind::Order => {
                let first = self.cfg.orders_page();
                let lines = self.cfg.line_items_per_order;
                (first, crate::cost::orders_page_cost(first, lines))
            }
            _ => return None,
        };
        if restore_rate <= 0.0 || first == 0 {
            return None;
        }
        let pages = records.div_ceil(u64::from(first));
        let secs = pages as f64 * f64::from(cost) / restore_rate;
        std::time::Duration::try_from_secs_f64(secs).ok()
    }

    fn overlap(&self) -> Duration {
        Duration::seconds(i64::from(self.cfg.overlap_seconds))
    }

    async fn pull_page(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ShopifyError> {
        let (root, doc, first, lines) = match object {
            ObjectKind::Contact => (
                "customers",
                queries::CUSTOMERS,
                self.cfg.customers_page(),
                None,
            ),
            ObjectKind::Order => (
                "orders",
                queries::ORDERS,
                self.cfg.orders_page(),
                Some(self.cfg.line_items_per_order),
            ),
            other => {
                return Err(ShopifyError::Config(format!(
                    "shopify has no {other} stream"
                )))
            }
        };
        let mut wm = stored::watermark(from)?;
        let overlap = self.overlap();
        let req = wm.next_request(overlap);
        let filter = req.since.map(stored::updated_since);
        let mut vars = json!({"first": first, "after": req.page, "query": filter});
        if let Some(per) = lines {
            vars["lines"] = json!(per);
        }
        let data = self.client.graphql(doc, vars, true).await?;
        let conn = &data[root];
        let nodes = conn["nodes"]
            .as_array()
            .ok_or_else(|| ShopifyError::Protocol(format!("{root} answer has no nodes")))?;
        let mut page = Page::default();
        for (i, node) in nodes.iter().enumerate() {
            let id = node.get("id").and_then(Value::as_str);
            let at = node
                .get("updatedAt")
                .and_then(Value::as_str)
                .and_then(map::parse_time);
            if let (Some(id), Some(at)) = (id, at) {
                if !wm.admit(id, Some(at), overlap) {
                    continue;
                }
            }
            let mapped = if lines.is_some() {
                map::order_to_remote(node)
            } else {
                map::customer_to_remote(node)
            };
            match mapped {
                Ok(rec) => page.records.push(rec),
                Err(mut rejected) => {
                    rejected.location = Some(format!("{root} item {i}"));
                    page.rejected.push(rejected);
                }
            }
        }
        let has_next = conn["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false);
        let end = conn["pageInfo"]["endCursor"].as_str().map(String::from);
        wm.end_page(&req, end.filter(|_| has_next));
        page.done = !wm.in_pass();
        page.next = Some(wm.to_cursor());
        Ok(page)
    }

    /// The id of the customer an earlier create with this key tag made, if any.
    async fn created_with(&self, tag: &str) -> Result<Option<String>, ShopifyError> {
        let vars = json!({"first": 1, "query": format!("tag:'{tag}'")});
        let data = self.client.graphql(queries::CUSTOMERS, vars, true).await?;
        Ok(data["customers"]["nodes"]
            .get(0)
            .and_then(|node| node["id"].as_str())
            .map(str::to_string))
    }

    /// The shop's current copy of a customer, `None` when it is gone.
    async fn current(&self, id: &str) -> Result<Option<RemoteRecord>, ShopifyError> {
        let data = self
            .client
            .graphql(queries::CUSTOMER, json!({"id": id}), true)
            .await?;
        let node = &data["customer"];
        if node.is_null() {
            return Ok(None);
        }
        map::customer_to_remote(node)
            .map(Some)
            .map_err(|r| ShopifyError::Protocol(format!("customer {id}: {}", r.reason)))
    }

    /// An update based on `base` (the `updatedAt` of our last read or
    /// write): Shopify customers carry no concurrency token, so the shop's
    /// `updatedAt` is compared first; a newer one is a [`Refusal::Conflict`]
    /// carrying the shop's copy, so nobody's edit is overwritten unseen.
    async fn stale(&self, id: &str, base: &str) -> Result<Option<Refusal>, ShopifyError> {
        let Some(current) = self.current(id).await? else {
            return Ok(Some(Refusal::rejected(format!(
                "shopify customer {id} no longer exists"
            ))));
        };
        let same = match (map::parse_time(base), current.updated_at) {
            (Some(b), Some(c)) => b == c,
            _ => current.version.as_deref() == Some(base),
        };
        if same {
            return Ok(None);
        }
        let reason = format!(
            "shopify customer {id} was changed at {} after the version this update is based on ({base})",
            current.version.as_deref().unwrap_or("an unknown time")
        );
        Ok(Some(Refusal::conflict(reason, Some(current))))
    }

    /// Writes one change; a refusal is the shop's own answer, typed.
    async fn push_one(&self, change: &Change) -> Result<Result<Written, Refusal>, ShopifyError> {
        let Record::Contact(contact) = &change.record else {
            return Ok(Err(Refusal::rejected(format!(
                "shopify cannot write a {}",
                change.record.kind()
            ))));
        };
        let (mut mutation, mut doc, id) = match change.op {
            ChangeOp::Create => ("customerCreate", queries::CUSTOMER_CREATE, None),
            ChangeOp::Update => match change.external_id.as_deref() {
                Some(id) => ("customerUpdate", queries::CUSTOMER_UPDATE, Some(id)),
                None => {
                    return Ok(Err(Refusal::rejected(
                        "update without a shopify customer id",
                    )))
                }
            },
            ChangeOp::Delete => {
                return Ok(Err(Refusal::rejected(
                    "shopify customers are not deleted by synchub (customers with \
                     orders cannot be deleted); archive them in the CRM",
                )))
            }
        };
        let mut input = map::contact_to_customer_input(contact, id);
        if let (Some(id), Some(base)) = (id, change.base_version.as_deref()) {
            if let Some(refusal) = self.stale(id, base).await? {
                return Ok(Err(refusal));
            }
        }
        if change.op == ChangeOp::Create {
            let tag = map::key_tag(&change.idempotency_key);
            // customerCreate takes no idempotency key: a retried create
            // (the first answer was lost) finds its customer by the tag
            // and updates it instead of making a second one.
            let found = self.created_with(&tag).await?;
            if let Some(obj) = input.as_object_mut() {
                let mut tags = obj
                    .get("tags")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                tags.push(Value::String(tag));
                obj.insert("tags".into(), Value::Array(tags));
                if let Some(found) = found {
                    obj.insert("id".into(), Value::String(found));
                    (mutation, doc) = ("customerUpdate", queries::CUSTOMER_UPDATE);
                }
            }
        }
        // customerUpdate is a sparse update: repeating it changes nothing more.
        let retry_safe = mutation == "customerUpdate";
        let data = self
            .client
            .graphql(doc, json!({"input": input}), retry_safe)
            .await?;
        let payload = &data[mutation];
        if let Some(errors) = payload["userErrors"].as_array().filter(|e| !e.is_empty()) {
            // Validation: the shop's own words, refused for good.
            return Ok(Err(Refusal::rejected(user_errors(errors))));
        }
        let customer = &payload["customer"];
        let rec: RemoteRecord = map::customer_to_remote(customer)
            .map_err(|r| ShopifyError::Protocol(format!("{mutation} answer: {}", r.reason)))?;
        Ok(Ok(Written {
            external_id: rec.external_id,
            version: rec.version,
            record: rec.record,
        }))
    }
}

/// `email: Email has already been taken; phone: Phone is invalid`.
pub fn user_errors(errors: &[Value]) -> String {
    errors
        .iter()
        .map(|e| {
            let field: Vec<&str> = e["field"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let message = e["message"].as_str().unwrap_or("rejected");
            if field.is_empty() {
                message.to_string()
            } else {
                format!("{}: {message}", field.join("."))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait]
impl Connector for ShopifyConnector {
    fn kind(&self) -> &'static str {
        Self::KIND
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
                can_read: true,
                incremental: true,
                can_write: false,
            },
        ]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        self.client.graphql(queries::SHOP, json!({}), true).await?;
        Ok(())
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        if self.cfg.bulk_backfill && bulk::wants_bulk(from) {
            return Ok(self.bulk_page(object, from).await?);
        }
        let page = self.pull_page(object, from).await?;
        if from.is_none() {
            // a paged backfill: say once how long it takes (after its first
            // page, whose throttleStatus gives the restore rate)
            self.announce_paged_backfill(object).await;
        }
        Ok(page)
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        if object != ObjectKind::Contact {
            return Err(ConnectorError::Unsupported(format!(
                "shopify cannot write {object}"
            )));
        }
        push_each_refusing(changes, |change| async move {
            self.push_one(change).await.map_err(ConnectorError::from)
        })
        .await
    }
}

impl std::fmt::Debug for ShopifyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyConnector")
            .field("shop", &self.cfg.shop_url())
            .finish_non_exhaustive()
    }
}
