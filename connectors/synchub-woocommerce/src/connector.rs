//! [`WooConnector`]: customers (read by full scan, write-back single or by
//! `/customers/batch`) and orders (incremental on `modified_after`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use serde_json::{json, Value};
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ObjectKind, ObjectSpec, Page, PushOutcome,
    Record, Written,
};
use synchub_http::webhook::{MemoryReplayGuard, ReplayGuard};

use crate::client::WooClient;
use crate::config::WooConfig;
use crate::cursor::StreamCursor;
use crate::error::WooError;
use crate::map;
use crate::webhook::{handle_webhook, WebhookError, WebhookOutcome};

/// WooCommerce accepts at most 100 items per batch request.
const BATCH_LIMIT: usize = 100;

/// A WooCommerce store as a synchub connector.
pub struct WooConnector {
    cfg: WooConfig,
    client: WooClient,
    replay: Arc<dyn ReplayGuard>,
}

impl std::fmt::Debug for WooConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WooConnector")
            .field("base_url", &self.cfg.base_url)
            .finish_non_exhaustive()
    }
}

impl WooConnector {
    /// The connector kind.
    pub const KIND: &'static str = "woocommerce";

    /// Validates the config and builds the connector (no IO).
    pub fn new(cfg: WooConfig) -> Result<Self, WooError> {
        cfg.validate()?;
        let client = WooClient::new(&cfg)?;
        let replay = Arc::new(MemoryReplayGuard::new(
            std::time::Duration::from_secs(24 * 3600),
            100_000,
        ));
        Ok(WooConnector {
            cfg,
            client,
            replay,
        })
    }

    /// Builds from a pipeline file's table.
    pub fn from_value(table: Value) -> Result<Self, WooError> {
        let cfg: WooConfig =
            serde_json::from_value(table).map_err(|e| WooError::Config(e.to_string()))?;
        Self::new(cfg)
    }

    /// Replaces the in-memory replay guard.
    pub fn with_replay_guard(mut self, guard: Arc<dyn ReplayGuard>) -> Self {
        self.replay = guard;
        self
    }

    /// Verifies, de-duplicates and classifies a webhook delivery.
    pub async fn handle_webhook(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        handle_webhook(
            self.cfg.webhook_secret.as_ref(),
            headers,
            body,
            self.replay.as_ref(),
        )
        .await
    }

    /// Starts a delivery whose body is verified as it streams: refused from
    /// the headers alone when no secret is configured, or when it is
    /// unsigned and longer than the activation ping.
    pub fn begin_webhook(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<synchub_http::webhook::WooPending, WebhookError> {
        let secret = self
            .cfg
            .webhook_secret
            .as_ref()
            .ok_or(WebhookError::NoSecret)?;
        Ok(synchub_http::webhook::begin_woocommerce(headers, secret)?)
    }

    /// De-duplicates and classifies a signed delivery
    /// [`begin_webhook`](Self::begin_webhook) verified.
    pub async fn classify_webhook(
        &self,
        delivery: &synchub_http::webhook::Delivery,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        crate::webhook::classify_webhook(delivery, headers, body, self.replay.as_ref()).await
    }

    async fn pull_page(&self, object: ObjectKind, from: Option<&Cursor>) -> Result<Page, WooError> {
        let resource = match object {
            ObjectKind::Contact => "customers",
            ObjectKind::Order => "orders",
            other => {
                return Err(WooError::Config(format!(
                    "woocommerce has no {other} stream"
                )))
            }
        };
        let overlap = Duration::seconds(i64::from(self.cfg.overlap_seconds));
        let mut cursor = StreamCursor::from_cursor(from)?;
        let pass = cursor.pass(overlap).clone();
        let page_no = pass.page.to_string();
        let per_page = self.cfg.per_page.to_string();
        let mut query = vec![
            ("per_page", per_page.as_str()),
            ("page", page_no.as_str()),
            ("orderby", "id"),
            ("order", "asc"),
        ];
        let since = pass.since.map(map::format_gmt);
        if object == ObjectKind::Contact {
            // customers: no date filter exists; include every role
            query.push(("role", "all"));
        } else if let Some(since) = &since {
            query.push(("modified_after", since));
            query.push(("dates_are_gmt", "true"));
        }
        let list = self.client.list(resource, &query).await?;
        if let Some(p) = cursor.pass.as_mut() {
            if p.page == 1 {
                p.started_at = list.date;
            }
        }
        let mut page = Page::default();
        for (i, item) in list.items.iter().enumerate() {
            let id = item
                .get("id")
                .and_then(Value::as_u64)
                .map(|id| id.to_string())
                .unwrap_or_default();
            let modified = item
                .get("date_modified_gmt")
                .and_then(Value::as_str)
                .and_then(map::parse_gmt);
            if !cursor.admit(&id, modified, overlap) {
                continue;
            }
            let mapped = if object == ObjectKind::Order {
                map::order_to_remote(item)
            } else {
                map::customer_to_remote(item)
            };
            match mapped {
                Ok(rec) => page.records.push(rec),
                Err(mut r) => {
                    r.location = Some(format!("{resource} page {} item {i}", pass.page));
                    page.rejected.push(r);
                }
            }
        }
        let more = pass.page < list.total_pages && !list.items.is_empty();
        cursor.end_page(more, overlap);
        page.done = !more;
        page.next = Some(cursor.to_cursor());
        Ok(page)
    }

    /// One change through the single-resource endpoints.
    async fn push_single(&self, change: &Change) -> Result<Result<Written, String>, WooError> {
        let Record::Contact(contact) = &change.record else {
            return Ok(Err(format!(
                "woocommerce cannot write a {}",
                change.record.kind()
            )));
        };
        if let Some(refusal) = needs_email(change.op, contact) {
            return Ok(Err(refusal));
        }
        let body = map::contact_to_customer(contact);
        let answer = match (change.op, change.external_id.as_deref()) {
            (ChangeOp::Create, _) => self.client.write("POST", "customers", &body, false).await,
            (ChangeOp::Update, Some(id)) => {
                self.client
                    .write("PUT", &format!("customers/{id}"), &body, true)
                    .await
            }
            (ChangeOp::Update, None) => {
                return Ok(Err("update without a woocommerce customer id".into()))
            }
            (ChangeOp::Delete, _) => {
                return Ok(Err("synchub does not delete woocommerce customers".into()))
            }
        };
        match answer {
            Ok(v) => Ok(written(&v)),
            // a per-record refusal (400 invalid email, 404 unknown id) is not a batch failure
            Err(WooError::Protocol(m)) => Ok(Err(m)),
            Err(e) => Err(e),
        }
    }

    /// Up to 100 changes through `POST /customers/batch`.
    async fn push_batch(&self, chunk: &[Change]) -> Result<Vec<Result<Written, String>>, WooError> {
        let mut results: Vec<Option<Result<Written, String>>> = vec![None; chunk.len()];
        let (mut create, mut update, mut create_ix, mut update_ix) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, change) in chunk.iter().enumerate() {
            let Record::Contact(contact) = &change.record else {
                results[i] = Some(Err(format!(
                    "woocommerce cannot write a {}",
                    change.record.kind()
                )));
                continue;
            };
            if let Some(refusal) = needs_email(change.op, contact) {
                results[i] = Some(Err(refusal));
                continue;
            }
            let mut body = map::contact_to_customer(contact);
            match (
                change.op,
                change
                    .external_id
                    .as_deref()
                    .and_then(|id| id.parse::<u64>().ok()),
            ) {
                (ChangeOp::Create, _) => {
                    create.push(body);
                    create_ix.push(i);
                }
                (ChangeOp::Update, Some(id)) => {
                    body["id"] = json!(id);
                    update.push(body);
                    update_ix.push(i);
                }
                (ChangeOp::Update, None) => {
                    results[i] = Some(Err("update without a woocommerce customer id".into()))
                }
                (ChangeOp::Delete, _) => {
                    results[i] = Some(Err("synchub does not delete woocommerce customers".into()))
                }
            }
        }
        if !create.is_empty() || !update.is_empty() {
            let answer = self
                .client
                .write(
                    "POST",
                    "customers/batch",
                    &json!({"create": create, "update": update}),
                    false,
                )
                .await?;
            for (key, indexes) in [("create", &create_ix), ("update", &update_ix)] {
                let items = answer[key].as_array().cloned().unwrap_or_default();
                for (n, i) in indexes.iter().enumerate() {
                    results[*i] = Some(match items.get(n) {
                        Some(item) => written(item),
                        None => Err(format!("batch answer has no {key} item {n}")),
                    });
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not written".into())))
            .collect())
    }
}

/// WooCommerce refuses a customer without an email (`Missing parameter(s):
/// email`): say so without sending a request that is sure to fail, so a
/// contact known only by name and phone costs no write on every run.
fn needs_email(op: ChangeOp, contact: &synchub_core::model::Contact) -> Option<String> {
    let has_email = contact.emails.iter().any(|e| e.contains('@'));
    (op == ChangeOp::Create && !has_email)
        .then(|| "woocommerce customers need an email; this contact has none".to_string())
}

/// A written customer, or the batch item's error message.
fn written(item: &Value) -> Result<Written, String> {
    if let Some(err) = item.get("error") {
        let code = err["code"].as_str().unwrap_or("error");
        return Err(format!(
            "{code}: {}",
            err["message"].as_str().unwrap_or("rejected")
        ));
    }
    map::customer_to_remote(item)
        .map(|r| Written {
            external_id: r.external_id,
            version: r.version,
            record: r.record,
        })
        .map_err(|r| r.reason)
}

#[async_trait]
impl Connector for WooConnector {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        vec![
            // customers have no date filter: each pass scans them all
            ObjectSpec {
                kind: ObjectKind::Contact,
                can_read: true,
                incremental: false,
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
        self.client.list("customers", &[("per_page", "1")]).await?;
        Ok(())
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        Ok(self.pull_page(object, from).await?)
    }

    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        if object != ObjectKind::Contact {
            return Err(ConnectorError::Unsupported(format!(
                "woocommerce cannot write {object}"
            )));
        }
        let mut outcomes = Vec::with_capacity(changes.len());
        if changes.len() == 1 {
            let result = self.push_single(&changes[0]).await?;
            outcomes.push(PushOutcome {
                crm_id: changes[0].crm_id.clone(),
                result,
            });
            return Ok(outcomes);
        }
        for chunk in changes.chunks(BATCH_LIMIT) {
            let results = match self.push_batch(chunk).await {
                Ok(r) => r,
                Err(e) if outcomes.is_empty() => return Err(e.into()),
                Err(e) => {
                    vec![Err(format!("not written: {}", ConnectorError::from(e))); chunk.len()]
                }
            };
            for (change, result) in chunk.iter().zip(results) {
                outcomes.push(PushOutcome {
                    crm_id: change.crm_id.clone(),
                    result,
                });
            }
        }
        Ok(outcomes)
    }
}
