//! [`WooConnector`]: customers (read by full scan, write-back single or by
//! `/customers/batch`) and orders (incremental on `modified_after`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use serde_json::{json, Value};
use synchub_core::watermark::{admit_in_pass_until, end_pass};
use synchub_core::WebhookAction;
use synchub_core::{
    push_each_refusing, Change, ChangeOp, Connector, ConnectorError, Cursor, ErrorClass,
    ObjectKind, ObjectSpec, Page, PushOutcome, Record, Refusal, Written,
};
use synchub_http::webhook::{MemoryReplayGuard, ReplayGuard, WebhookError};

use crate::client::WooClient;
use crate::config::WooConfig;
use crate::error::WooError;
use crate::{map, stored, webhook};

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
    ) -> Result<WebhookAction, WebhookError> {
        webhook::handle_webhook(
            self.cfg.webhook_secret.as_ref(),
            headers,
            body,
            self.replay.as_ref(),
        )
        .await
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
        let mut wm = stored::watermark(from)?;
        let mut req = wm.next_request(overlap);
        let page_no = stored::page_number(req.page.as_deref())?;
        let page_text = page_no.to_string();
        let per_page = self.cfg.per_page.to_string();
        let mut query = vec![
            ("per_page", per_page.as_str()),
            ("page", page_text.as_str()),
            ("orderby", "id"),
            ("order", "asc"),
        ];
        let since = req.since.map(map::format_gmt);
        if object == ObjectKind::Contact {
            // customers: no date filter exists; include every role
            query.push(("role", "all"));
        } else if let Some(since) = &since {
            query.push(("modified_after", since));
            query.push(("dates_are_gmt", "true"));
        }
        let list = self.client.list(resource, &query).await?;
        // A pass lists by id with no upper time bound: the store's clock
        // when it began caps the watermark it leaves.
        if req.until.is_none() {
            req.until = list.date;
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
            if let (Some(since), Some(t)) = (req.since, modified) {
                if t < since {
                    // a full scan (customers) lists unchanged old records too
                    continue;
                }
            }
            if !admit_in_pass_until(&mut wm, &req, &id, modified, overlap) {
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
                    r.location = Some(format!("{resource} page {page_no} item {i}"));
                    page.rejected.push(r);
                }
            }
        }
        let more = page_no < list.total_pages && !list.items.is_empty();
        wm.end_page(&req, more.then(|| (page_no + 1).to_string()));
        if !more {
            end_pass(&mut wm, overlap);
        }
        page.done = !more;
        page.next = Some(wm.to_cursor());
        Ok(page)
    }

    /// The id of the customer an earlier create with this idempotency key
    /// made: the store's customer with the contact's email (unique in
    /// WooCommerce) when it carries the key in its `meta_data`.
    async fn created_with(
        &self,
        contact: &synchub_core::Contact,
        key: &str,
    ) -> Result<Option<u64>, WooError> {
        let Some(email) = contact.emails.iter().find(|e| e.contains('@')) else {
            return Ok(None);
        };
        let list = self
            .client
            .list("customers", &[("email", email.trim()), ("role", "all")])
            .await?;
        Ok(list
            .items
            .iter()
            .find(|item| {
                item["meta_data"].as_array().is_some_and(|meta| {
                    meta.iter()
                        .any(|m| m["key"] == KEY_META && m["value"].as_str() == Some(key))
                })
            })
            .and_then(|item| item["id"].as_u64()))
    }

    /// The store's current copies of these customers, by id (one request
    /// per 100 ids); an id the store no longer has is absent.
    async fn current(&self, ids: &[u64]) -> Result<HashMap<u64, Value>, WooError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(BATCH_LIMIT) {
            let include = chunk
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let per_page = chunk.len().to_string();
            let list = self
                .client
                .list(
                    "customers",
                    &[
                        ("include", include.as_str()),
                        ("per_page", per_page.as_str()),
                        ("role", "all"),
                    ],
                )
                .await?;
            for item in list.items {
                if let Some(id) = item["id"].as_u64() {
                    found.insert(id, item);
                }
            }
        }
        Ok(found)
    }

    /// Updates based on a version whose customer changed in the store
    /// since (WooCommerce has no concurrency check of its own: the store's
    /// `date_modified_gmt` is compared first), each with its refusal.
    async fn stale(
        &self,
        updates: &[(usize, u64, &str)],
    ) -> Result<HashMap<usize, Refusal>, WooError> {
        let mut refused = HashMap::new();
        if updates.is_empty() {
            return Ok(refused);
        }
        let ids: Vec<u64> = updates.iter().map(|(_, id, _)| *id).collect();
        let current = self.current(&ids).await?;
        for (i, id, base) in updates {
            let Some(item) = current.get(id) else {
                refused.insert(
                    *i,
                    Refusal::rejected(format!("woocommerce customer {id} no longer exists")),
                );
                continue;
            };
            let now = item["date_modified_gmt"].as_str();
            let same = match (map::parse_gmt(base), now.and_then(map::parse_gmt)) {
                (Some(b), Some(n)) => b == n,
                _ => now == Some(*base),
            };
            if same {
                continue;
            }
            let reason = format!(
                "woocommerce customer {id} was changed at {} after the version this update is \
                 based on ({base})",
                now.unwrap_or("an unknown time")
            );
            refused.insert(
                *i,
                Refusal::conflict(reason, map::customer_to_remote(item).ok()),
            );
        }
        Ok(refused)
    }

    /// One change through the single-resource endpoints.
    async fn push_single(&self, change: &Change) -> Result<Result<Written, Refusal>, WooError> {
        let Record::Contact(contact) = &change.record else {
            return Ok(Err(Refusal::rejected(format!(
                "woocommerce cannot write a {}",
                change.record.kind()
            ))));
        };
        if let Some(refusal) = needs_email(change.op, contact) {
            return Ok(Err(Refusal::rejected(refusal)));
        }
        let mut body = map::contact_to_customer(contact);
        let target = match (change.op, change.external_id.as_deref()) {
            (ChangeOp::Create, _) => {
                // No idempotency key in the API: a retried create (the
                // first answer was lost) finds its customer and updates it.
                tag_with_key(&mut body, &change.idempotency_key);
                self.created_with(contact, &change.idempotency_key).await?
            }
            (ChangeOp::Update, Some(id)) => {
                let Ok(id) = id.parse::<u64>() else {
                    return Ok(Err(Refusal::rejected(format!(
                        "`{id}` is not a woocommerce customer id"
                    ))));
                };
                if let Some(base) = change.base_version.as_deref() {
                    if let Some(refusal) = self.stale(&[(0, id, base)]).await?.remove(&0) {
                        return Ok(Err(refusal));
                    }
                }
                Some(id)
            }
            (ChangeOp::Update, None) => {
                return Ok(Err(Refusal::rejected(
                    "update without a woocommerce customer id",
                )))
            }
            (ChangeOp::Delete, _) => {
                return Ok(Err(Refusal::rejected(
                    "synchub does not delete woocommerce customers",
                )))
            }
        };
        let answer = match target {
            None => self.client.write("POST", "customers", &body, false).await,
            Some(id) => {
                self.client
                    .write("PUT", &format!("customers/{id}"), &body, true)
                    .await
            }
        };
        match answer {
            Ok(v) => Ok(written(&v)),
            // the store's per-record refusals (400 invalid email, 404 unknown id, 409)
            Err(WooError::Protocol(m)) => Ok(Err(Refusal::rejected(m))),
            Err(WooError::Conflict(m)) => Ok(Err(Refusal::conflict(m, None))),
            Err(e) => Err(e),
        }
    }

    /// Up to 100 changes through `POST /customers/batch`.
    ///
    /// A batch create carries its key like a single one, but is not looked
    /// up first (that would cost one request per create): WooCommerce
    /// emails are unique, so a create whose first answer was lost is
    /// refused on its retry as a duplicate email, and only then is the
    /// customer with that email checked for the key; if it is ours, it is
    /// updated instead.
    async fn push_batch(
        &self,
        chunk: &[Change],
    ) -> Result<Vec<Result<Written, Refusal>>, WooError> {
        let mut results: Vec<Option<Result<Written, Refusal>>> = vec![None; chunk.len()];
        let mut bodies: Vec<Option<Value>> = vec![None; chunk.len()];
        let mut based = Vec::new();
        for (i, change) in chunk.iter().enumerate() {
            let Record::Contact(contact) = &change.record else {
                results[i] = Some(Err(Refusal::rejected(format!(
                    "woocommerce cannot write a {}",
                    change.record.kind()
                ))));
                continue;
            };
            if let Some(refusal) = needs_email(change.op, contact) {
                results[i] = Some(Err(Refusal::rejected(refusal)));
                continue;
            }
            let id = change
                .external_id
                .as_deref()
                .and_then(|id| id.parse::<u64>().ok());
            match (change.op, id) {
                (ChangeOp::Create, _) => {}
                (ChangeOp::Update, Some(id)) => {
                    if let Some(base) = change.base_version.as_deref() {
                        based.push((i, id, base));
                    }
                }
                (ChangeOp::Update, None) => {
                    results[i] = Some(Err(Refusal::rejected(
                        "update without a woocommerce customer id",
                    )));
                    continue;
                }
                (ChangeOp::Delete, _) => {
                    results[i] = Some(Err(Refusal::rejected(
                        "synchub does not delete woocommerce customers",
                    )));
                    continue;
                }
            }
            bodies[i] = Some(map::contact_to_customer(contact));
        }
        for (i, refusal) in self.stale(&based).await? {
            results[i] = Some(Err(refusal));
            bodies[i] = None;
        }
        let (mut create, mut update, mut create_ix, mut update_ix) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, body) in bodies.iter_mut().enumerate() {
            let Some(mut body) = body.take() else {
                continue;
            };
            let change = &chunk[i];
            match change
                .external_id
                .as_deref()
                .and_then(|id| id.parse::<u64>().ok())
            {
                Some(id) if change.op == ChangeOp::Update => {
                    body["id"] = json!(id);
                    update.push(body);
                    update_ix.push(i);
                }
                _ => {
                    tag_with_key(&mut body, &change.idempotency_key);
                    create.push(body);
                    create_ix.push(i);
                }
            }
        }
        if create.is_empty() && update.is_empty() {
            return Ok(fill(results));
        }
        let answer = self
            .client
            .write(
                "POST",
                "customers/batch",
                &json!({"create": create, "update": update}),
                false,
            )
            .await?;
        let mut duplicates = Vec::new();
        for (key, indexes) in [("create", &create_ix), ("update", &update_ix)] {
            let items = answer[key].as_array().cloned().unwrap_or_default();
            for (n, i) in indexes.iter().enumerate() {
                let result = match items.get(n) {
                    Some(item) if key == "create" && item_code(item) == Some(EMAIL_EXISTS) => {
                        duplicates.push((*i, item.clone()));
                        continue;
                    }
                    Some(item) => written(item),
                    None => Err(Refusal::rejected(format!(
                        "batch answer has no {key} item {n}"
                    ))),
                };
                results[*i] = Some(result);
            }
        }
        for (i, item) in duplicates {
            results[i] = Some(self.created_before(&chunk[i], &item).await?);
        }
        Ok(fill(results))
    }

    /// A batch create refused as a duplicate email: the customer an earlier
    /// attempt of the same change made (it carries the key) is updated
    /// instead; anyone else's is the store's refusal.
    async fn created_before(
        &self,
        change: &Change,
        refused: &Value,
    ) -> Result<Result<Written, Refusal>, WooError> {
        let Record::Contact(contact) = &change.record else {
            return Ok(written(refused));
        };
        let Some(id) = self.created_with(contact, &change.idempotency_key).await? else {
            return Ok(written(refused));
        };
        let mut body = map::contact_to_customer(contact);
        tag_with_key(&mut body, &change.idempotency_key);
        match self
            .client
            .write("PUT", &format!("customers/{id}"), &body, true)
            .await
        {
            Ok(v) => Ok(written(&v)),
            Err(WooError::Protocol(m)) => Ok(Err(Refusal::rejected(m))),
            Err(WooError::Conflict(m)) => Ok(Err(Refusal::conflict(m, None))),
            Err(e) => Err(e),
        }
    }
}

/// WooCommerce's code for a create whose email another account has.
const EMAIL_EXISTS: &str = "registration-error-email-exists";

fn item_code(item: &Value) -> Option<&str> {
    item.get("error")?.get("code")?.as_str()
}

fn fill(results: Vec<Option<Result<Written, Refusal>>>) -> Vec<Result<Written, Refusal>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Refusal::rejected("not written"))))
        .collect()
}

/// WooCommerce refuses a customer without an email (`Missing parameter(s):
/// email`): say so without sending a request that is sure to fail, so a
/// contact known only by name and phone costs no write on every run.
fn needs_email(op: ChangeOp, contact: &synchub_core::model::Contact) -> Option<String> {
    let has_email = contact.emails.iter().any(|e| e.contains('@'));
    (op == ChangeOp::Create && !has_email)
        .then(|| "woocommerce customers need an email; this contact has none".to_string())
}

/// The `meta_data` key a create carries its idempotency key under
/// (WooCommerce takes no idempotency key): a retried create finds the
/// customer by it instead of being refused as a duplicate email.
pub const KEY_META: &str = "_synchub_key";

fn tag_with_key(body: &mut Value, key: &str) {
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "meta_data".into(),
            json!([{ "key": KEY_META, "value": key }]),
        );
    }
}

/// A written customer, or the batch item's error as a typed refusal: the
/// store's 409 is a conflict, 429 and 5xx transient, anything else (400
/// invalid parameter, duplicate email, 404 unknown id) refused for good
/// with the store's message.
fn written(item: &Value) -> Result<Written, Refusal> {
    if let Some(err) = item.get("error") {
        let code = err["code"].as_str().unwrap_or("error");
        let message = format!("{code}: {}", err["message"].as_str().unwrap_or("rejected"));
        return Err(match err["data"]["status"].as_u64() {
            Some(409) => Refusal::conflict(message, None),
            Some(429) | Some(500..=599) => Refusal::retry(message, None),
            _ => Refusal::rejected(message),
        });
    }
    map::customer_to_remote(item)
        .map(|r| Written {
            external_id: r.external_id,
            version: r.version,
            record: r.record,
        })
        .map_err(|r| Refusal::rejected(r.reason))
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
        if changes.len() == 1 {
            return push_each_refusing(changes, |change| async move {
                self.push_single(change).await.map_err(ConnectorError::from)
            })
            .await;
        }
        let mut outcomes = Vec::with_capacity(changes.len());
        for (n, chunk) in changes.chunks(BATCH_LIMIT).enumerate() {
            let e = match self.push_batch(chunk).await {
                Ok(results) => {
                    outcomes.extend(chunk.iter().zip(results).map(|(change, result)| {
                        PushOutcome {
                            crm_id: change.crm_id.clone(),
                            result,
                        }
                    }));
                    continue;
                }
                Err(e) => ConnectorError::from(e),
            };
            // As `push_each_refusing`, a batch at a time.
            match e.class() {
                ErrorClass::Reauth | ErrorClass::Config => return Err(e),
                _ if matches!(e, ConnectorError::Cancelled(_)) => return Err(e),
                ErrorClass::Retry if outcomes.is_empty() => return Err(e),
                ErrorClass::Retry => {
                    let refusal = Refusal::from_error(&e);
                    outcomes.extend(
                        changes[n * BATCH_LIMIT..]
                            .iter()
                            .map(|c| PushOutcome::refused(&c.crm_id, refusal.clone())),
                    );
                    return Ok(outcomes);
                }
                _ => outcomes.extend(
                    chunk
                        .iter()
                        .map(|c| PushOutcome::refused(&c.crm_id, Refusal::from_error(&e))),
                ),
            }
        }
        Ok(outcomes)
    }
}
