//! Accounting targets (QuickBooks, Xero): which CRM orders an accounting
//! connection invoices, and what a pulled invoice's balance does to the CRM
//! order it bills.
//!
//! An order is queued for every pushing connection; the drain creates an
//! invoice only for an order in the state the connection's `invoice_when`
//! names. Other orders are skipped (their queue entry is done, nothing is
//! refused or counted as failed): when the order later reaches that state,
//! its change is queued again and invoiced then.
//!
//! A pulled invoice that names its order (`order_crm_id`) settles that
//! order in the same transaction as the invoice page: its balance becomes
//! the order's `custom.balance`, and a paid invoice marks the order paid
//! (a part payment marks it `partially_paid`). The order only moves towards
//! paid; an invoice never takes a paid order back.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;
use synchub_core::model::Order;
use synchub_core::{ObjectKind, Record, RemoteRecord};
use synchub_store::records::{self, RecordWrite};
use synchub_store::{StoreError, Tx};

use crate::config::PipelineConfig;
use crate::{Connection, Engine};

/// The connector kinds that turn orders into invoices.
pub const ACCOUNTING_KINDS: &[&str] = &["quickbooks", "xero"];

/// The custom field of an order holding what its invoice still owes.
pub const BALANCE_FIELD: &str = "balance";

/// When a CRM order becomes an invoice (the `invoice_when` key of an
/// accounting connection's `config`; `paid` when absent, as the connectors
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceWhen {
    /// `financial_status = "paid"`.
    #[default]
    Paid,
    /// `fulfillment_status = "fulfilled"`.
    Fulfilled,
    /// `status = "closed"` (or `completed`).
    Closed,
    /// Every order that is not cancelled.
    Placed,
}

impl InvoiceWhen {
    /// Whether `order` is in the state this rule names (the same test the
    /// connectors apply).
    pub fn matches(self, order: &Order) -> bool {
        let is = |v: &Option<String>, want: &[&str]| {
            v.as_deref()
                .is_some_and(|s| want.iter().any(|w| s.eq_ignore_ascii_case(w)))
        };
        match self {
            InvoiceWhen::Paid => is(&order.financial_status, &["paid"]),
            InvoiceWhen::Fulfilled => is(&order.fulfillment_status, &["fulfilled"]),
            InvoiceWhen::Closed => is(&order.status, &["closed", "completed"]),
            InvoiceWhen::Placed => !is(&order.status, &["cancelled", "canceled"]),
        }
    }
}

/// The invoicing rule of every accounting connection, by connection name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceRules {
    rules: BTreeMap<String, InvoiceWhen>,
}

impl InvoiceRules {
    /// The rules of a pipeline's accounting connections; an `invoice_when`
    /// that is not one of the four states is an error naming the key.
    pub fn from_pipeline(cfg: &PipelineConfig) -> Result<InvoiceRules, String> {
        let mut rules = InvoiceRules::default();
        for (i, c) in cfg.connections.iter().enumerate() {
            if !ACCOUNTING_KINDS.contains(&c.kind.as_str()) {
                continue;
            }
            let when = match c.config.get("invoice_when") {
                None | Some(Value::Null) => InvoiceWhen::default(),
                Some(v) => InvoiceWhen::deserialize(v).map_err(|e| {
                    format!("key `connections[{i}].config.invoice_when`: {e} (paid, fulfilled, closed or placed)")
                })?,
            };
            rules.set(&c.name, when);
        }
        Ok(rules)
    }

    /// Sets the rule of one connection.
    pub fn set(&mut self, connection: &str, when: InvoiceWhen) {
        self.rules.insert(connection.to_string(), when);
    }

    /// The rule of a connection, if it is an accounting target.
    pub fn get(&self, connection: &str) -> Option<InvoiceWhen> {
        self.rules.get(connection).copied()
    }

    /// Whether a new `record` of `object` goes to `connection` now: always,
    /// except an order for an accounting target in another state.
    pub fn routes(&self, connection: &str, object: ObjectKind, record: &Record) -> bool {
        match (object, record, self.get(connection)) {
            (ObjectKind::Order, Record::Order(order), Some(when)) => when.matches(order),
            _ => true,
        }
    }
}

/// Whether `conn` can read `object`: a two-way accounting connection
/// writes orders it cannot read (they come back as invoices), and such a
/// stream is not pulled (a failed pull would hold its pushes).
pub(crate) fn readable(conn: &Connection, object: ObjectKind) -> bool {
    conn.connector
        .objects()
        .iter()
        .any(|s| s.kind == object && s.can_read)
}

/// The order state an invoice's balance stands for, if any.
fn settled_status(total: Decimal, due: Decimal, status: Option<&str>) -> Option<&'static str> {
    if status.is_some_and(|s| {
        ["voided", "void", "deleted", "draft"]
            .iter()
            .any(|v| s.eq_ignore_ascii_case(v))
    }) {
        return None;
    }
    if due <= Decimal::ZERO {
        Some("paid")
    } else if due < total {
        Some("partially_paid")
    } else {
        None
    }
}

/// How far towards paid a financial status is.
fn paid_rank(status: Option<&str>) -> u8 {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("paid") | Some("refunded") | Some("partially_refunded") => 2,
        Some("partially_paid") => 1,
        _ => 0,
    }
}

/// Applies pulled invoices to the CRM orders they bill, inside the page's
/// transaction `tx`; returns how many orders changed. The changed orders
/// are queued for the other pushing connections (not back to `conn`).
pub(crate) async fn settle_orders(
    engine: &Engine,
    conn: &Connection,
    object: ObjectKind,
    tx: &mut Tx,
    pulled: &[RemoteRecord],
) -> Result<u64, StoreError> {
    if object != ObjectKind::Invoice {
        return Ok(0);
    }
    // The last invoice of the page for each order wins.
    let mut by_order: BTreeMap<String, (Decimal, Decimal, Option<String>)> = BTreeMap::new();
    for r in pulled.iter().filter(|r| !r.deleted) {
        let Some(Record::Invoice(inv)) = &r.record else {
            continue;
        };
        let (Some(order_id), Some(due)) = (&inv.order_crm_id, inv.amount_due) else {
            continue;
        };
        by_order.insert(order_id.clone(), (inv.total, due, inv.status.clone()));
    }
    if by_order.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = by_order.keys().cloned().collect();
    let current = records::get_many(tx, &ids).await?;
    let now = Utc::now();
    let mut writes = Vec::new();
    let mut versions: HashMap<String, (i64, bool)> = HashMap::new();
    for (id, (total, due, status)) in &by_order {
        let Some(stored) = current.get(id) else {
            continue;
        };
        let Record::Order(order) = &stored.record else {
            continue;
        };
        if stored.deleted || stored.merged_into.is_some() {
            continue;
        }
        let mut next = order.clone();
        let balance = Value::String(due.normalize().to_string());
        next.custom.insert(BALANCE_FIELD.to_string(), balance);
        if let Some(settled) = settled_status(*total, *due, status.as_deref()) {
            if paid_rank(Some(settled)) > paid_rank(order.financial_status.as_deref()) {
                next.financial_status = Some(settled.to_string());
            }
        }
        if &next == order {
            continue;
        }
        let before = Record::Order(order.clone()).to_fields();
        let after = Record::Order(next.clone()).to_fields();
        let field_times =
            crate::apply::next_field_times(&stored.field_times, Some(&before), &after, now);
        tracing::info!(connection = %conn.name, order = %id, balance = %due, financial_status = ?next.financial_status, "invoice settles the CRM order");
        versions.insert(id.clone(), (stored.version + 1, false));
        writes.push(RecordWrite {
            id: id.clone(),
            record: Record::Order(next),
            version: stored.version + 1,
            deleted: false,
            field_times,
        });
    }
    if writes.is_empty() {
        return Ok(0);
    }
    records::upsert_many(tx, &writes).await?;
    crate::local::plan_outbox(
        engine,
        tx,
        ObjectKind::Order,
        Some(conn.name.as_str()),
        &versions,
        &BTreeSet::new(),
        &BTreeSet::new(),
    )
    .await?;
    Ok(writes.len() as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn order(financial: Option<&str>, fulfilled: Option<&str>, status: Option<&str>) -> Order {
        Order {
            financial_status: financial.map(str::to_string),
            fulfillment_status: fulfilled.map(str::to_string),
            status: status.map(str::to_string),
            currency: "USD".into(),
            total: dec!(10),
            ..Order::default()
        }
    }

    #[test]
    fn rules_route_only_orders_in_the_named_state() {
        let mut rules = InvoiceRules::default();
        rules.set("qbo", InvoiceWhen::Fulfilled);
        let open = Record::Order(order(Some("pending"), None, Some("open")));
        let done = Record::Order(order(Some("pending"), Some("fulfilled"), Some("open")));
        assert!(!rules.routes("qbo", ObjectKind::Order, &open));
        assert!(rules.routes("qbo", ObjectKind::Order, &done));
        // Not an accounting target: everything goes.
        assert!(rules.routes("shop", ObjectKind::Order, &open));
        rules.set("xero", InvoiceWhen::Placed);
        let cancelled = Record::Order(order(None, None, Some("cancelled")));
        assert!(!rules.routes("xero", ObjectKind::Order, &cancelled));
        assert!(rules.routes("xero", ObjectKind::Order, &open));
    }

    #[test]
    fn rules_come_from_the_pipeline_file() {
        let cfg: PipelineConfig = toml::from_str(
            r#"
version = 1
name = "p"
[[connections]]
name = "qbo"
kind = "quickbooks"
direction = "push"
config = { invoice_when = "closed" }
[[connections]]
name = "xero"
kind = "xero"
direction = "push"
[[connections]]
name = "shop"
kind = "shopify"
direction = "pull"
config = { invoice_when = "nonsense" }
"#,
        )
        .unwrap();
        let rules = InvoiceRules::from_pipeline(&cfg).unwrap();
        assert_eq!(rules.get("qbo"), Some(InvoiceWhen::Closed));
        assert_eq!(rules.get("xero"), Some(InvoiceWhen::Paid));
        assert_eq!(rules.get("shop"), None);
        let bad: PipelineConfig = toml::from_str(
            r#"
version = 1
name = "p"
[[connections]]
name = "qbo"
kind = "quickbooks"
direction = "push"
config = { invoice_when = "sometimes" }
"#,
        )
        .unwrap();
        let e = InvoiceRules::from_pipeline(&bad).unwrap_err();
        assert!(e.contains("connections[0].config.invoice_when"), "{e}");
    }

    #[test]
    fn a_balance_moves_the_order_towards_paid_only() {
        assert_eq!(
            settled_status(dec!(10), dec!(0), Some("paid")),
            Some("paid")
        );
        assert_eq!(
            settled_status(dec!(10), dec!(4), Some("partially_paid")),
            Some("partially_paid")
        );
        assert_eq!(settled_status(dec!(10), dec!(10), Some("open")), None);
        assert_eq!(settled_status(dec!(10), dec!(0), Some("voided")), None);
        assert!(paid_rank(Some("paid")) > paid_rank(Some("partially_paid")));
        assert!(paid_rank(Some("partially_paid")) > paid_rank(Some("pending")));
    }
}
