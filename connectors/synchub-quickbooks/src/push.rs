//! Writing: customers (create, sparse update under SyncToken, inactivate
//! for delete) and orders (an Invoice, or a SalesReceipt when paid),
//! exactly once: an order's document carries a `DocNumber` derived from the
//! CRM id and the id itself in `PrivateNote`; before any create the document
//! is looked up by that reference, and the create carries `requestid`, so a
//! create whose answer was lost is neither repeated by the runtime's retry
//! (the server returns the first answer) nor by a later run (the lookup
//! finds it).

use serde_json::{json, Value};
use synchub_core::model::{Contact, Order, PartyRef, Record};
use synchub_core::{Change, ChangeOp, ConnectorError, Refusal, Written};

use crate::client::{quote, Api, CallError};
use crate::config::QuickBooksConfig;
use crate::map;
use crate::policy::{CODE_DUPLICATE_NAME, CODE_STALE};

/// A per-change result: written, refused, or a connection-level error.
pub type WriteResult = Result<Result<Written, Refusal>, ConnectorError>;

fn refuse_fault(api: &Api, e: CallError) -> WriteResult {
    match e {
        CallError::Fault {
            status,
            fault,
            what,
        } if status < 500 && fault.kind != "SystemFault" => Ok(Err(Refusal::rejected(format!(
            "{}: {what}: {}",
            api.host(),
            fault.describe()
        )))),
        other => Err(api.fault_error(other)),
    }
}

/// Writes one contact change.
pub async fn write_contact(api: &Api, change: &Change) -> WriteResult {
    let Record::Contact(contact) = &change.record else {
        return Ok(Err(Refusal::rejected(format!(
            "{} is a {}, not a contact",
            change.crm_id,
            change.record.kind()
        ))));
    };
    let rid = map::request_id(&change.idempotency_key);
    match (change.op, change.external_id.as_deref()) {
        (ChangeOp::Create, _) | (_, None) => create_customer(api, contact, &rid).await,
        (ChangeOp::Update, Some(id)) => {
            let fields = change.changed_fields();
            let mut body = map::contact_to_customer(contact, Some(&fields));
            if body.is_empty() {
                let current = api.read_entity("Customer", id).await;
                return match current {
                    Ok(c) => Ok(Ok(written_customer(&c))),
                    Err(e) => refuse_fault(api, e),
                };
            }
            body.insert("sparse".into(), json!(true));
            update_customer(api, id, change.base_version.as_deref(), body, &rid).await
        }
        (ChangeOp::Delete, Some(id)) => {
            // Customers cannot be deleted: inactivate them.
            let mut body = serde_json::Map::new();
            body.insert("sparse".into(), json!(true));
            body.insert("Active".into(), json!(false));
            update_customer(api, id, change.base_version.as_deref(), body, &rid).await
        }
    }
}

fn written_customer(v: &Value) -> Written {
    let r = map::customer_to_remote(v).ok();
    Written {
        external_id: v
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        version: v
            .get("SyncToken")
            .and_then(Value::as_str)
            .map(str::to_string),
        record: r.and_then(|r| r.record),
    }
}

async fn create_customer(api: &Api, contact: &Contact, rid: &str) -> WriteResult {
    let body = map::contact_to_customer(contact, None);
    let Some(name) = body
        .get("DisplayName")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(Err(Refusal::rejected(
            "a QuickBooks customer needs a DisplayName: the contact has no name, company or email",
        )));
    };
    match api.write("Customer", &Value::Object(body), rid).await {
        Ok(v) => Ok(Ok(written_customer(&v))),
        Err(CallError::Fault { fault, .. }) if fault.has_code(CODE_DUPLICATE_NAME) => {
            // The name exists: adopt that customer only if it is the same person.
            let rows = api
                .query_rows(
                    "Customer",
                    &format!(
                        "select * from Customer where DisplayName = {}",
                        quote(&name)
                    ),
                )
                .await;
            let rows = match rows {
                Ok(r) => r,
                Err(e) => return refuse_fault(api, e),
            };
            let same = rows.into_iter().find(|c| {
                let email = c
                    .get("PrimaryEmailAddr")
                    .and_then(|e| e.get("Address"))
                    .and_then(Value::as_str);
                match (email, contact.emails.first()) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                }
            });
            match same {
                Some(c) => Ok(Ok(written_customer(&c))),
                None => Ok(Err(Refusal::rejected(format!(
                    "{}: DisplayName `{name}` is already used by another customer, vendor or employee (6240)",
                    api.host()
                )))),
            }
        }
        Err(e) => refuse_fault(api, e),
    }
}

async fn update_customer(
    api: &Api,
    id: &str,
    base_version: Option<&str>,
    mut body: serde_json::Map<String, Value>,
    rid: &str,
) -> WriteResult {
    let token = match base_version {
        Some(t) => t.to_string(),
        // No base: the current version is the base (no concurrency check possible).
        None => match api.read_entity("Customer", id).await {
            Ok(c) => c
                .get("SyncToken")
                .and_then(Value::as_str)
                .unwrap_or("0")
                .to_string(),
            Err(e) => return refuse_fault(api, e),
        },
    };
    body.insert("Id".into(), json!(id));
    body.insert("SyncToken".into(), json!(token));
    match api.write("Customer", &Value::Object(body), rid).await {
        Ok(v) => Ok(Ok(written_customer(&v))),
        Err(CallError::Fault { fault, .. }) if fault.has_code(CODE_STALE) => {
            let current = match api.read_entity("Customer", id).await {
                Ok(c) => map::customer_to_remote(&c).ok(),
                Err(e) => return refuse_fault(api, e),
            };
            Ok(Err(Refusal::conflict(
                format!(
                    "{}: customer {id} changed since SyncToken {token} (5010 Stale Object Error)",
                    api.host()
                ),
                current,
            )))
        }
        Err(e) => refuse_fault(api, e),
    }
}

/// Writes one order change as its accounting document, exactly once.
pub async fn write_order(api: &Api, cfg: &QuickBooksConfig, change: &Change) -> WriteResult {
    let Record::Order(order) = &change.record else {
        return Ok(Err(Refusal::rejected(format!(
            "{} is a {}, not an order",
            change.crm_id,
            change.record.kind()
        ))));
    };
    if change.op == ChangeOp::Delete {
        return Ok(Err(Refusal::rejected(format!(
            "order {} was deleted in the CRM; its QuickBooks document is kept: void it in QuickBooks if it is wrong",
            change.crm_id
        ))));
    }
    if let Some(ext) = change.external_id.as_deref() {
        // Already invoiced: documents are not rewritten from order edits.
        let Some((entity, id)) = map::split_txn_id(ext) else {
            return Ok(Err(Refusal::rejected(format!(
                "order {} is linked to `{ext}`, which is not an Invoice:ID or SalesReceipt:ID",
                change.crm_id
            ))));
        };
        return match api.read_entity(entity, id).await {
            Ok(v) => Ok(Ok(written_txn(entity, &v))),
            Err(e) => refuse_fault(api, e),
        };
    }
    if !cfg.invoice_when.matches(order) {
        return Ok(Err(Refusal::rejected(format!(
            "order {} is not in the state `invoice_when = {:?}` names; not invoiced",
            change.crm_id, cfg.invoice_when
        ))));
    }
    let doc = map::doc_number(&cfg.doc_number_prefix, &change.crm_id);
    // 1. Find a document a previous attempt created (answer lost, crash).
    for entity in ["Invoice", "SalesReceipt"] {
        let rows = api
            .query_rows(
                entity,
                &format!("select * from {entity} where DocNumber = {}", quote(&doc)),
            )
            .await;
        let rows = match rows {
            Ok(r) => r,
            Err(e) => return refuse_fault(api, e),
        };
        if let Some(found) = rows.first() {
            let note = found
                .get("PrivateNote")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if map::order_from_note(note).as_deref() == Some(change.crm_id.as_str()) {
                tracing::info!(host = %api.host(), order = %change.crm_id, doc = %doc, "order already invoiced; linking the existing document");
                return Ok(Ok(written_txn(entity, found)));
            }
            return Ok(Err(Refusal::rejected(format!(
                "{}: DocNumber {doc} of order {} is taken by {entity} {} of another origin",
                api.host(),
                change.crm_id,
                found.get("Id").and_then(Value::as_str).unwrap_or("?")
            ))));
        }
    }
    // 2. The customer and the items.
    let customer_id = match ensure_customer(api, order.customer.as_ref(), &change.crm_id).await? {
        Ok(id) => id,
        Err(r) => return Ok(Err(r)),
    };
    let items = match ensure_items(api, cfg, order).await? {
        Ok(items) => items,
        Err(r) => return Ok(Err(r)),
    };
    // 3. Create, with requestid.
    let entity = map::txn_entity_for(order);
    let body = map::order_to_txn(order, &change.crm_id, &doc, &customer_id, &items);
    match api
        .write(entity, &body, &map::request_id(&change.idempotency_key))
        .await
    {
        Ok(v) => Ok(Ok(written_txn(entity, &v))),
        Err(e) => refuse_fault(api, e),
    }
}

fn written_txn(entity: &str, v: &Value) -> Written {
    Written {
        external_id: format!(
            "{entity}:{}",
            v.get("Id").and_then(Value::as_str).unwrap_or_default()
        ),
        version: v
            .get("SyncToken")
            .and_then(Value::as_str)
            .map(str::to_string),
        record: None,
    }
}

async fn ensure_customer(
    api: &Api,
    party: Option<&PartyRef>,
    crm_id: &str,
) -> Result<Result<String, Refusal>, ConnectorError> {
    let Some(party) = party.filter(|p| p.email.is_some() || p.name.is_some()) else {
        return Ok(Err(Refusal::rejected(format!(
            "order {crm_id} has no customer email or name to bill"
        ))));
    };
    let mut lookups = Vec::new();
    if let Some(e) = &party.email {
        lookups.push(format!(
            "select * from Customer where PrimaryEmailAddr = {}",
            quote(e)
        ));
    }
    if let Some(n) = &party.name {
        lookups.push(format!(
            "select * from Customer where DisplayName = {}",
            quote(n)
        ));
    }
    for q in lookups {
        match api.query_rows("Customer", &q).await {
            Ok(rows) => {
                if let Some(id) = rows
                    .first()
                    .and_then(|c| c.get("Id"))
                    .and_then(Value::as_str)
                {
                    return Ok(Ok(id.to_string()));
                }
            }
            Err(e) => return refuse_fault(api, e).map(|r| r.map(|w| w.external_id)),
        }
    }
    let contact = Contact {
        full_name: party.name.clone(),
        emails: party.email.iter().cloned().collect(),
        ..Contact::default()
    };
    let key = format!(
        "customer-{}",
        party
            .email
            .as_deref()
            .or(party.name.as_deref())
            .unwrap_or(crm_id)
    );
    match create_customer(api, &contact, &map::request_id(&key)).await? {
        Ok(w) => Ok(Ok(w.external_id)),
        Err(r) => Ok(Err(Refusal::rejected(format!(
            "order {crm_id}: cannot create its customer: {}",
            r.reason()
        )))),
    }
}

/// The Item (id, name) of every line, by SKU; missing items are created
/// when allowed, else the order is refused naming them.
async fn ensure_items(
    api: &Api,
    cfg: &QuickBooksConfig,
    order: &Order,
) -> Result<Result<Vec<(String, String)>, Refusal>, ConnectorError> {
    if order.lines.is_empty() {
        return Ok(Err(Refusal::rejected("the order has no lines to invoice")));
    }
    let mut skus = Vec::new();
    for (i, l) in order.lines.iter().enumerate() {
        match l.sku.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => skus.push(s.to_string()),
            None => {
                return Ok(Err(Refusal::rejected(format!(
                    "line {} (`{}`) has no SKU to find its QuickBooks item by",
                    i + 1,
                    l.description
                ))))
            }
        }
    }
    let mut unique = skus.clone();
    unique.sort();
    unique.dedup();
    let list = unique
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = match api
        .query_rows(
            "Item",
            &format!("select * from Item where Name IN ({list})"),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return refuse_fault(api, e).map(|r| r.map(|_| Vec::new())),
    };
    let mut known: std::collections::BTreeMap<String, String> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.get("Name")?.as_str()?.to_string(),
                r.get("Id")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let missing: Vec<String> = unique
        .iter()
        .filter(|s| !known.contains_key(*s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let Some(account) = cfg
            .item_income_account
            .as_deref()
            .filter(|_| cfg.create_items)
        else {
            return Ok(Err(Refusal::rejected(format!(
                "no QuickBooks item for SKU {}: create the item(s) in QuickBooks or set `create_items = true`",
                missing.join(", ")
            ))));
        };
        for sku in missing {
            let body = json!({
                "Name": sku,
                "Sku": sku,
                "Type": "NonInventory",
                "IncomeAccountRef": {"value": account},
            });
            match api
                .write("Item", &body, &map::request_id(&format!("item-{sku}")))
                .await
            {
                Ok(v) => {
                    let id = v
                        .get("Id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    known.insert(sku, id);
                }
                Err(e) => return refuse_fault(api, e).map(|r| r.map(|_| Vec::new())),
            }
        }
    }
    Ok(Ok(skus
        .into_iter()
        .map(|s| (known.get(&s).cloned().unwrap_or_default(), s))
        .collect()))
}
