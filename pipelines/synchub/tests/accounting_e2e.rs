//! GIVEN a Shopify sandbox whose orders flow through `synchub run` into the
//! QuickBooks and Xero sandboxes (served on loopback ports)
//! WHEN the process is SIGKILLed right after each remote invoice create,
//! before the engine commits the batch that holds it, and run again each time
//! THEN every order has exactly one QuickBooks document and exactly one Xero
//! invoice; a payment recorded in QuickBooks marks the CRM order paid on the
//! next run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use synchub_core::{ObjectKind, Record};
use synchub_engine::invoices::InvoiceWhen;
use synchub_http::{SecretString, TokenCipher, TokenSet, TokenVault};
use synchub_quickbooks::sandbox as qbo_sandbox;
use synchub_shopify::sandbox as shopify_sandbox;
use synchub_shopify::sandbox::{FIRST_ORDER_ID, SANDBOX_TOKEN};
use synchub_store::Store;
use synchub_testkit::process::kill_when;
use synchub_testkit::TestDb;
use synchub_xero::sandbox as xero_sandbox;

/// A vault key made at test time (32 bytes in hex), never written in the source.
fn key() -> String {
    use sha2::{Digest, Sha256};
    #[allow(clippy::disallowed_methods)]
    let seed = format!(
        "{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn pipeline(shop: &shopify_sandbox::SandboxHandle, qbo: &str, xero: &str) -> String {
    let cfg = shop.config();
    format!(
        r#"version = 1
name = "books"
region = "TW"

[[connections]]
name = "shop"
kind = "shopify"
direction = "pull"
objects = ["contact", "order"]

[connections.config]
shop = "{shop}"
base_url = "{base}"
access_token = "{SANDBOX_TOKEN}"

[[connections]]
name = "qbo"
kind = "quickbooks"
direction = "two-way"
objects = ["order", "invoice"]

[connections.config]
realm_id = "{realm}"
client_id = "{qbo_client}"
client_secret = "qbo-sandbox-secret"
base_url = "{qbo}"
token_url = "{qbo}/oauth2/v1/tokens/bearer"
auth_url = "{qbo}/connect/oauth2"
invoice_when = "placed"
create_items = true
item_income_account = "79"

[[connections]]
name = "xero"
kind = "xero"
direction = "push"
objects = ["order"]

[connections.config]
tenant_id = "{tenant}"
client_id = "xero-sandbox-client"
client_secret = "xero-sandbox-secret"
base_url = "{xero}/api.xro/2.0/"
token_url = "{xero}/connect/token"
auth_url = "{xero}/identity/connect/authorize"
invoice_when = "placed"
"#,
        shop = cfg.shop,
        base = shop.base_url,
        realm = qbo_sandbox::SANDBOX_REALM,
        qbo_client = qbo_sandbox::SANDBOX_CLIENT_ID,
        tenant = xero_sandbox::TENANT_A,
    )
}

fn spawn_run(db: &str, pipeline: &Path, key: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once"])
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", db)
        .env("SYNCHUB_SECRET_KEY", key)
        .env_remove("SYNCHUB_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn synchub")
}

async fn seal_tokens(store: &Store, key: &str, connection: &str, access: String, refresh: String) {
    let vault = TokenVault::new(
        Arc::new(synchub_store::tokens::SqlTokenStore::new(store.clone())),
        TokenCipher::from_key_material(&SecretString::from(key.to_string())).unwrap(),
    );
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
}

/// QuickBooks documents (Invoice, SalesReceipt) per CRM order id.
fn qbo_docs(qbo: &qbo_sandbox::SandboxHandle) -> BTreeMap<String, Vec<Value>> {
    let company = qbo.state.company();
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entity in ["Invoice", "SalesReceipt"] {
        for v in company.all(entity) {
            let note = v["PrivateNote"].as_str().unwrap_or_default();
            if let Some(order) = synchub_quickbooks::map::order_from_note(note) {
                out.entry(order).or_default().push(v.clone());
            }
        }
    }
    out
}

/// Xero invoices per CRM order id (`Reference = "synchub order <id>"`).
fn xero_docs(xero: &xero_sandbox::SandboxHandle) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for v in &xero.state.orgs()[xero_sandbox::TENANT_A].invoices {
        let reference = v["Reference"].as_str().unwrap_or_default();
        if let Some(order) = reference.strip_prefix("synchub order ") {
            out.entry(order.to_string()).or_default().push(v.clone());
        }
    }
    out
}

async fn linked_orders(store: &Store, connection: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM id_link WHERE connection = $1 AND object = 'order'",
    )
    .bind(connection)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

async fn exactly_once_across_kills(backend: &str) {
    let shop = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions {
        customers: 8,
        orders: 8,
        ..Default::default()
    })
    .await
    .unwrap();
    // Order 0 is not paid yet: QuickBooks makes it an Invoice.
    assert!(shop.edit_order(FIRST_ORDER_ID, |o| o.financial = "PENDING".into()));
    let qbo = qbo_sandbox::spawn(qbo_sandbox::SandboxOptions {
        currencies: vec!["TWD".into(), "HKD".into(), "CNY".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let xero = xero_sandbox::spawn(0).await.unwrap();
    for org in xero.state.orgs().values_mut() {
        org.currencies = vec!["TWD".into(), "HKD".into(), "CNY".into()];
    }
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let key = key();
    seal_tokens(
        &store,
        &key,
        "qbo",
        qbo.state.access_token(),
        qbo.state.refresh_token(),
    )
    .await;
    seal_tokens(
        &store,
        &key,
        "xero",
        xero.state.access_token(),
        xero.state.refresh_token(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("books.toml");
    std::fs::write(&file, pipeline(&shop, &qbo.url(), &xero.url())).unwrap();

    // Kill each run as soon as one more invoice exists remotely than before.
    let docs = |q: &qbo_sandbox::SandboxHandle, x: &xero_sandbox::SandboxHandle| {
        qbo_docs(q).values().map(Vec::len).sum::<usize>()
            + xero_docs(x).values().map(Vec::len).sum::<usize>()
    };
    let (mut kills, mut in_window) = (0, 0);
    for _ in 0..8 {
        let before = docs(&qbo, &xero);
        let mut child = spawn_run(&db.url, &file, &key);
        let (q, x, count) = (&qbo, &xero, &docs);
        let killed = kill_when(&mut child, Duration::from_secs(60), move || async move {
            count(q, x) > before
        })
        .await;
        if !killed {
            break;
        }
        kills += 1;
        // Created remotely, not committed locally: fewer links than documents.
        let links = linked_orders(&store, "qbo").await + linked_orders(&store, "xero").await;
        if (links as usize) < docs(&qbo, &xero) {
            in_window += 1;
        }
        // The killed drain's claims are not lapsed by hand: the next run
        // sees their process has ended and takes them over at once.
    }
    assert!(kills >= 4, "only {kills} runs were killed after a create");
    assert!(
        in_window >= 4,
        "only {in_window} of {kills} kills fell between a remote create and the local commit"
    );
    let status = spawn_run(&db.url, &file, &key).wait().unwrap();
    assert!(status.success(), "the final run failed: {status}");

    // THEN exactly one document per order in each ledger.
    let orders: Vec<(String, bool, bool)> = store
        .records(ObjectKind::Order, false)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| match &r.record {
            Record::Order(o) if InvoiceWhen::Placed.matches(o) => Some((
                r.id.clone(),
                o.customer.is_some(),
                o.financial_status.as_deref() == Some("pending"),
            )),
            _ => None,
        })
        .collect();
    let (q, x) = (qbo_docs(&qbo), xero_docs(&xero));
    assert!(orders.len() >= 6, "{orders:?}");
    for (id, has_customer, _) in &orders {
        let (nq, nx) = (q.get(id).map_or(0, Vec::len), x.get(id).map_or(0, Vec::len));
        assert!(
            nq <= 1 && nx <= 1,
            "order {id}: {nq} QuickBooks, {nx} Xero documents"
        );
        if *has_customer {
            assert_eq!((nq, nx), (1, 1), "order {id}: {q:?}\n{x:?}");
        }
    }
    assert_eq!(
        linked_orders(&store, "qbo").await as usize,
        q.values().map(Vec::len).sum::<usize>()
    );
    assert_eq!(
        linked_orders(&store, "xero").await as usize,
        x.values().map(Vec::len).sum::<usize>()
    );

    // WHEN order 0's invoice is paid in QuickBooks THEN the next run marks the CRM order paid.
    let order0 = orders
        .iter()
        .find(|(_, _, pending)| *pending)
        .map(|(id, _, _)| id.clone())
        .expect("the unpaid order");
    let invoice = q[&order0][0].clone();
    let total = invoice["TotalAmt"].as_f64().unwrap();
    qbo.state
        .company()
        .write(
            "Payment",
            json!({"CustomerRef": invoice["CustomerRef"].clone(), "TotalAmt": total,
                   "Line": [{"Amount": total, "LinkedTxn": [{"TxnId": invoice["Id"].clone(), "TxnType": "Invoice"}]}]}),
        )
        .unwrap();
    let status = spawn_run(&db.url, &file, &key).wait().unwrap();
    assert!(status.success(), "the payment run failed: {status}");
    let rec = store.record(&order0).await.unwrap().expect("order 0");
    let Record::Order(o) = &rec.record else {
        panic!("not an order")
    };
    assert_eq!(o.financial_status.as_deref(), Some("paid"), "{o:?}");
    assert_eq!(o.custom.get("balance"), Some(&json!("0")));
    // Still one document each.
    assert!(qbo_docs(&qbo).values().all(|d| d.len() == 1));
    assert!(xero_docs(&xero).values().all(|d| d.len() == 1));
    shop.shutdown().await;
    qbo.shutdown().await;
    xero.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_invoice_per_order_in_each_ledger_across_sigkills_sqlite() {
    exactly_once_across_kills("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_invoice_per_order_in_each_ledger_across_sigkills_postgres() {
    exactly_once_across_kills("postgres").await;
}
