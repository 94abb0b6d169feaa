//! Issue 16 through the engine: Shopify-sandbox orders reach the QuickBooks
//! and Xero sandboxes as invoices only in the state `invoice_when` names,
//! exactly once; a payment recorded in QuickBooks settles the CRM order
//! and the invoice is on the customer's timeline; a stale SyncToken is
//! re-read, merged and pushed again without counting a failed attempt; a
//! Xero day limit keeps the refused rows out of every drain until it
//! resumes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;
use synchub_core::merge::MergePolicy;
use synchub_core::{ObjectKind, Record};
use synchub_engine::invoices::{InvoiceRules, InvoiceWhen};
use synchub_engine::{Connection, Direction, Engine, RunOptions, RunReport};
use synchub_http::{
    Deps, MemoryTokenStore, QuotaConfig, QuotaRegistry, SecretString, TokenCipher, TokenSet,
    TokenVault,
};
use synchub_quickbooks::sandbox as qbo_sandbox;
use synchub_quickbooks::QuickBooks;
use synchub_shopify::sandbox as shopify_sandbox;
use synchub_shopify::sandbox::FIRST_ORDER_ID;
use synchub_shopify::ShopifyConnector;
use synchub_store::records::StoredRecord;
use synchub_store::Store;
use synchub_testkit::TestDb;
use synchub_xero::sandbox as xero_sandbox;
use synchub_xero::Xero;

const SHOP: &str = "shop";
const QBO: &str = "qbo";
const XERO: &str = "xero";

fn vault() -> TokenVault {
    // A key made at test time, never written in the source.
    #[allow(clippy::disallowed_methods)]
    let seed = format!(
        "{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    let key: String = Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cipher = TokenCipher::from_key_material(&SecretString::from(key)).unwrap();
    TokenVault::new(Arc::new(MemoryTokenStore::default()), cipher)
}

async fn deps(vault: &TokenVault, connection: &str, access: String, refresh: String) -> Deps {
    vault
        .save(
            connection,
            &TokenSet {
                access_token: SecretString::from(access),
                refresh_token: Some(SecretString::from(refresh)),
                expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
                scopes: vec![],
                extra: Default::default(),
            },
        )
        .await
        .unwrap();
    // A registry per test: quotas are not shared between tests.
    let registry: &'static QuotaRegistry = Box::leak(Box::new(QuotaRegistry::new()));
    let mut deps = Deps::new(connection, ".").with_tokens(vault.clone());
    deps.quotas = registry;
    deps
}

fn conn(
    name: &str,
    connector: Arc<dyn synchub_core::Connector>,
    direction: Direction,
    objects: &[ObjectKind],
) -> Connection {
    Connection {
        name: name.into(),
        connector,
        direction,
        objects: objects.to_vec(),
        region: Some("TW".into()),
    }
}

async fn round(engine: &Engine) -> RunReport {
    engine.run(&RunOptions::default()).await.unwrap()
}

/// The QuickBooks documents (Invoice and SalesReceipt) per CRM order id.
fn qbo_docs(qbo: &qbo_sandbox::SandboxHandle) -> BTreeMap<String, Vec<(String, Value)>> {
    let company = qbo.state.company();
    let mut out: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for entity in ["Invoice", "SalesReceipt"] {
        for v in company.all(entity) {
            let note = v["PrivateNote"].as_str().unwrap_or_default();
            if let Some(order) = synchub_quickbooks::map::order_from_note(note) {
                out.entry(order)
                    .or_default()
                    .push((entity.to_string(), v.clone()));
            }
        }
    }
    out
}

/// The live CRM order of the Shopify sandbox's seed order `i`.
async fn crm_order(store: &Store, i: u64) -> StoredRecord {
    let number = (1001 + i).to_string();
    let hits: Vec<StoredRecord> = store
        .records(ObjectKind::Order, false)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| match &r.record {
            Record::Order(o) => o.number.as_deref().is_some_and(|n| n.ends_with(&number)),
            _ => false,
        })
        .collect();
    assert_eq!(hits.len(), 1, "one CRM order numbered {number}");
    hits.into_iter().next().unwrap()
}

async fn pending_rows(store: &Store, connection: &str) -> Vec<(String, i64, Option<String>)> {
    let rows = sqlx::query(
        "SELECT crm_id, attempts, last_error FROM outbox \
         WHERE connection = $1 AND done_at IS NULL ORDER BY id",
    )
    .bind(connection)
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get::<String, _>("crm_id"),
                r.get::<i64, _>("attempts"),
                r.get::<Option<String>, _>("last_error"),
            )
        })
        .collect()
}

async fn shopify() -> (shopify_sandbox::SandboxHandle, Arc<ShopifyConnector>) {
    let shop = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions {
        customers: 8,
        orders: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    // Order 0 is fulfilled but not yet paid: QuickBooks gets an Invoice.
    assert!(shop.edit_order(FIRST_ORDER_ID, |o| o.financial = "PENDING".into()));
    let connector = Arc::new(ShopifyConnector::new(shop.config()).unwrap());
    (shop, connector)
}

async fn quickbooks(
    vault: &TokenVault,
) -> (
    qbo_sandbox::SandboxHandle,
    synchub_quickbooks::QuickBooksConfig,
    Deps,
) {
    let qbo = qbo_sandbox::spawn(qbo_sandbox::SandboxOptions {
        currencies: vec!["TWD".into(), "HKD".into(), "CNY".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut cfg = qbo.config();
    cfg.invoice_when = synchub_quickbooks::InvoiceWhen::Fulfilled;
    cfg.create_items = true;
    cfg.item_income_account = Some("79".into());
    let d = deps(
        vault,
        QBO,
        qbo.state.access_token(),
        qbo.state.refresh_token(),
    )
    .await;
    (qbo, cfg, d)
}

async fn routed_and_settled(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let vault = vault();
    let (shop, shop_conn) = shopify().await;
    let (qbo, cfg, qdeps) = quickbooks(&vault).await;
    let qb = Arc::new(QuickBooks::new(cfg, &qdeps).unwrap());
    let mut rules = InvoiceRules::default();
    rules.set(QBO, InvoiceWhen::Fulfilled);
    let engine = Engine::new(
        store.clone(),
        "books",
        vec![
            conn(
                SHOP,
                shop_conn,
                Direction::Pull,
                &[ObjectKind::Contact, ObjectKind::Order],
            ),
            conn(
                QBO,
                qb,
                Direction::TwoWay,
                &[ObjectKind::Contact, ObjectKind::Order, ObjectKind::Invoice],
            ),
        ],
        MergePolicy::default(),
        BTreeMap::new(),
    )
    .with_invoice_rules(rules);

    // GIVEN five shop orders: 0 fulfilled and unpaid, 1 paid and not
    // fulfilled, 2 and 4 paid and fulfilled, 3 cancelled.
    let r = round(&engine).await;
    let order = |i| crm_order(&store, i);
    let (o0, o1, o2, o3, o4) = (
        order(0).await,
        order(1).await,
        order(2).await,
        order(3).await,
        order(4).await,
    );
    let docs = qbo_docs(&qbo);
    // THEN only the fulfilled ones are invoiced, once each: 0 as an
    // Invoice (unpaid), 2 and 4 as SalesReceipts (paid).
    assert_eq!(docs.get(&o0.id).map(Vec::len), Some(1), "{docs:?}");
    assert_eq!(docs[&o0.id][0].0, "Invoice");
    assert_eq!(
        docs.get(&o2.id).map(|d| d[0].0.as_str()),
        Some("SalesReceipt")
    );
    assert!(docs.get(&o4.id).map_or(0, Vec::len) <= 1, "{docs:?}");
    assert!(!docs.contains_key(&o1.id), "unfulfilled: not invoiced");
    assert!(!docs.contains_key(&o3.id), "cancelled: not invoiced");
    // The skipped orders were neither refused nor left failing.
    let left = pending_rows(&store, QBO).await;
    assert!(
        !left.iter().any(|(id, _, _)| *id == o1.id || *id == o3.id),
        "{left:?}\n{}",
        r.to_table()
    );
    assert!(
        r.streams[&format!("{QBO}.order")].pushed >= 2,
        "{}",
        r.to_table()
    );
    // WHEN order 1 is fulfilled in the shop THEN the next run invoices it.
    assert!(shop.edit_order(FIRST_ORDER_ID + 1, |o| o.fulfillment = "FULFILLED".into()));
    round(&engine).await;
    let docs = qbo_docs(&qbo);
    assert_eq!(docs.get(&o1.id).map(Vec::len), Some(1), "{docs:?}");
    // A round with nothing new creates nothing.
    round(&engine).await;
    let again = qbo_docs(&qbo);
    assert_eq!(again.len(), docs.len());
    assert!(again.values().all(|d| d.len() == 1), "{again:?}");

    // WHEN the customer pays order 0's invoice in QuickBooks.
    let (_, invoice) = &docs[&o0.id][0];
    let id = invoice["Id"].as_str().unwrap().to_string();
    let total = invoice["TotalAmt"].as_f64().unwrap();
    assert!(
        matches!(&o0.record, Record::Order(o) if o.financial_status.as_deref() == Some("pending"))
    );
    qbo.state
        .company()
        .write(
            "Payment",
            json!({"CustomerRef": invoice["CustomerRef"].clone(), "TotalAmt": total,
                   "Line": [{"Amount": total, "LinkedTxn": [{"TxnId": id, "TxnType": "Invoice"}]}]}),
        )
        .unwrap();
    round(&engine).await;
    // THEN the CRM order is paid with no balance left.
    let paid = crm_order(&store, 0).await;
    let Record::Order(o) = &paid.record else {
        panic!("not an order")
    };
    assert_eq!(o.financial_status.as_deref(), Some("paid"));
    assert_eq!(o.custom.get("balance"), Some(&json!("0")));
    assert!(paid.version > o0.version);
    // AND the invoice is on the customer's timeline.
    let customer = o
        .customer
        .as_ref()
        .and_then(|c| c.crm_id.clone())
        .expect("order 0 has a CRM customer");
    let timeline = store.contact_timeline(&customer).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|t| t.kind == "invoice" && t.status.as_deref() == Some("paid")),
        "{timeline:?}"
    );
    assert!(timeline.iter().any(|t| t.kind == "order"), "{timeline:?}");
    qbo.shutdown().await;
    shop.shutdown().await;
}

// GIVEN shop orders in several states WHEN synced with QuickBooks (`invoice_when = fulfilled`) THEN only fulfilled orders are invoiced, once; a payment in QuickBooks marks the CRM order paid and the invoice is on the timeline.
#[tokio::test(flavor = "multi_thread")]
async fn orders_are_invoiced_in_the_named_state_and_payments_settle_them_sqlite() {
    routed_and_settled("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_are_invoiced_in_the_named_state_and_payments_settle_them_postgres() {
    routed_and_settled("postgres").await;
}

// GIVEN a CRM contact linked to a QuickBooks customer WHEN the customer changes in QuickBooks after our last read and the CRM edits it too THEN the push meets a stale SyncToken, the engine merges QuickBooks' copy and pushes again: both edits land, no failed attempt.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_sync_token_is_merged_and_pushed_again_without_a_failed_attempt() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let vault = vault();
    let (qbo, cfg, qdeps) = quickbooks(&vault).await;
    let qb: Arc<dyn synchub_core::Connector> = Arc::new(QuickBooks::new(cfg, &qdeps).unwrap());
    let build = |direction| {
        Engine::new(
            store.clone(),
            "books",
            vec![conn(QBO, qb.clone(), direction, &[ObjectKind::Contact])],
            MergePolicy::default(),
            BTreeMap::new(),
        )
    };
    // The fixture customers are read into the CRM.
    round(&build(Direction::TwoWay)).await;
    let crm = store
        .records(ObjectKind::Contact, false)
        .await
        .unwrap()
        .into_iter()
        .find(|r| matches!(&r.record, Record::Contact(c) if c.emails.iter().any(|e| e.eq_ignore_ascii_case("birds@intuit.com"))))
        .expect("customer 1 in the CRM");
    let token_before = qbo.state.company().get("Customer", "1").unwrap()["SyncToken"].clone();
    // QuickBooks changes the customer (a new SyncToken) ...
    qbo.state
        .company()
        .write(
            "Customer",
            json!({"Id": "1", "SyncToken": token_before, "sparse": true, "Notes": "VIP since 2019"}),
        )
        .unwrap();
    // ... and the CRM edits another field before reading it.
    let Record::Contact(mut edited) = crm.record.clone() else {
        panic!("not a contact")
    };
    edited.title = Some("Director".into());
    synchub_engine::local::apply_local_edit(&store, &crm.id, Record::Contact(edited))
        .await
        .unwrap();
    // WHEN only the push runs (the read is what would have avoided the conflict).
    let r = round(&build(Direction::Push)).await;
    // THEN both edits are in QuickBooks.
    let c = qbo.state.company().get("Customer", "1").cloned().unwrap();
    assert_eq!(c["Title"], "Director", "{c}");
    assert_eq!(c["Notes"], "VIP since 2019", "{c}");
    let s = &r.streams[&format!("{QBO}.contact")];
    assert_eq!(s.push_failed, 0, "{}", r.to_table());
    assert!(s.pushed >= 1, "{}", r.to_table());
    assert!(pending_rows(&store, QBO).await.is_empty());
    assert!(
        store.failed_pushes(10).await.unwrap().is_empty(),
        "the conflict was not a failed attempt"
    );
    qbo.shutdown().await;
}

// GIVEN Xero answering its day limit mid-drain WHEN the run ends THEN the refused rows wait (no attempt counted) and the next run sends nothing for them; a higher limit later lets them through, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_day_limit_keeps_the_rows_waiting_without_failed_attempts() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let vault = vault();
    let (shop, shop_conn) = shopify().await;
    let xero = xero_sandbox::spawn(0).await.unwrap();
    for org in xero.state.orgs().values_mut() {
        org.currencies = vec!["TWD".into(), "HKD".into(), "CNY".into()];
    }
    let mut xcfg = xero.config(xero_sandbox::TENANT_A);
    xcfg.invoice_when = synchub_xero::InvoiceWhen::Placed;
    xcfg.quota = Some(QuotaConfig::per_second(100, 100));
    let xdeps = deps(
        &vault,
        XERO,
        xero.state.access_token(),
        xero.state.refresh_token(),
    )
    .await;
    let x = Arc::new(Xero::new(xcfg, &xdeps).unwrap());
    let mut rules = InvoiceRules::default();
    rules.set(XERO, InvoiceWhen::Placed);
    let engine = Engine::new(
        store.clone(),
        "books",
        vec![
            conn(
                SHOP,
                shop_conn,
                Direction::Pull,
                &[ObjectKind::Contact, ObjectKind::Order],
            ),
            conn(XERO, x, Direction::Push, &[ObjectKind::Order]),
        ],
        MergePolicy::default(),
        BTreeMap::new(),
    )
    .with_invoice_rules(rules);
    // Room for one or two invoices today, not for four.
    xero.state.set_limits(
        xero_sandbox::TENANT_A,
        xero_sandbox::Limits {
            per_day: 4,
            ..Default::default()
        },
    );
    round(&engine).await;
    let invoiced =
        |x: &xero_sandbox::SandboxHandle| x.state.orgs()[xero_sandbox::TENANT_A].invoices.len();
    let first = invoiced(&xero);
    let waiting: Vec<_> = pending_rows(&store, XERO)
        .await
        .into_iter()
        .filter(|(_, _, e)| e.as_deref().is_some_and(|e| e.contains("try again in")))
        .collect();
    assert!(!waiting.is_empty(), "the day limit stopped the drain");
    assert!(first < 4, "four placed orders, {first} invoiced");
    for (id, attempts, _) in &waiting {
        assert_eq!(*attempts, 0, "{id}: waiting is not a failed attempt");
    }
    // WHEN the next run comes before the limit resumes THEN nothing is sent for them.
    let throttled = xero.state.throttled();
    round(&engine).await;
    assert_eq!(invoiced(&xero), first);
    assert_eq!(
        xero.state.throttled(),
        throttled,
        "no request was sent for the waiting rows"
    );
    let still: Vec<_> = pending_rows(&store, XERO)
        .await
        .into_iter()
        .filter(|(_, _, e)| e.as_deref().is_some_and(|e| e.contains("try again in")))
        .collect();
    assert_eq!(still, waiting);
    shop.shutdown().await;
    xero.shutdown().await;
}
