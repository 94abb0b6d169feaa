//! Orders invoiced into the QuickBooks sandbox at Intuit's documented
//! per-realm limit (500 requests a minute, a sliding 60 s window answering
//! 429 beyond it), in real time. Prints
//! `BENCH name=invoice_qbo orders=… requests=… seconds=… utilization=… throttled=…`;
//! utilization is the requests served over what the limit allowed in the
//! elapsed time. `BENCH_ORDERS` sets the count (default 10,000: about
//! 100 minutes at five requests an order).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use synchub_core::model::{LineItem, Order, PartyRef, Record};
use synchub_core::{Change, ChangeOp, Connector, ObjectKind};
use synchub_http::{
    Deps, MemoryTokenStore, QuotaConfig, QuotaRegistry, SecretString, TokenCipher, TokenSet,
    TokenVault,
};
use synchub_quickbooks::sandbox::{spawn, SandboxOptions};
use synchub_quickbooks::{InvoiceWhen, QuickBooks};

const LIMIT: usize = 500;
const WINDOW: Duration = Duration::from_secs(60);

fn order(i: usize) -> Order {
    let price = Decimal::new(1_000 + (i as i64 % 9_000), 2);
    Order {
        number: Some(format!("#B{i}")),
        customer: Some(PartyRef {
            email: Some("Birds@Intuit.com".into()),
            name: Some("Amy's Bird Sanctuary".into()),
            ..PartyRef::default()
        }),
        status: Some("open".into()),
        financial_status: Some("pending".into()),
        currency: "USD".into(),
        lines: vec![LineItem {
            sku: Some("Services".into()),
            description: "Services".into(),
            quantity: Decimal::ONE,
            unit_price: price,
            total: price,
            ..LineItem::default()
        }],
        total: price,
        ..Order::default()
    }
}

#[tokio::main]
async fn main() {
    let orders: usize = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sandbox = spawn(SandboxOptions {
        rate_limit: Some((LIMIT, WINDOW)),
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox");
    #[allow(clippy::disallowed_methods)]
    let seed = format!("{:?}", std::time::SystemTime::now());
    let key: String = Sha256::digest(seed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let vault = TokenVault::new(
        Arc::new(MemoryTokenStore::default()),
        TokenCipher::from_key_material(&SecretString::from(key)).expect("key"),
    );
    vault
        .save(
            "bench",
            &TokenSet {
                access_token: SecretString::from(sandbox.state.access_token()),
                refresh_token: Some(SecretString::from(sandbox.state.refresh_token())),
                expires_at: Some(Utc::now() + chrono::Duration::hours(4)),
                scopes: vec![],
                extra: Default::default(),
            },
        )
        .await
        .expect("tokens");
    let registry: &'static QuotaRegistry = Box::leak(Box::new(QuotaRegistry::new()));
    let mut deps = Deps::new("bench", ".").with_tokens(vault);
    deps.quotas = registry;
    let mut cfg = sandbox.config();
    cfg.invoice_when = InvoiceWhen::Placed;
    // The documented 500 a minute, shaped so that no 60 s window ever
    // holds more than 500 (a burst of one on a 499/min rate).
    cfg.quota = Some(QuotaConfig::per_minute(499, 1));
    let qb = QuickBooks::new(cfg, &deps).expect("connector");

    let started = Instant::now();
    let served_before = sandbox.state.served();
    let mut refused = 0usize;
    for chunk in (0..orders).collect::<Vec<_>>().chunks(100) {
        let changes: Vec<Change> = chunk
            .iter()
            .map(|&i| Change {
                crm_id: format!("bench-order-{i}"),
                op: ChangeOp::Create,
                external_id: None,
                base_version: None,
                record: Record::Order(order(i)),
                idempotency_key: format!("bench-{i}"),
                base: None,
            })
            .collect();
        let out = qb.push(ObjectKind::Order, &changes).await.expect("push");
        refused += out.iter().filter(|o| o.result.is_err()).count();
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = sandbox.state.served() - served_before;
    let allowed = LIMIT as f64 * seconds / WINDOW.as_secs_f64();
    let invoices = sandbox.state.company().all("Invoice").count();
    println!(
        "BENCH name=invoice_qbo orders={orders} invoices={invoices} refused={refused} requests={requests} seconds={seconds:.1} requests_per_min={:.1} utilization={:.3} throttled={}",
        requests as f64 * 60.0 / seconds,
        requests as f64 / allowed.max(1.0),
        sandbox.state.throttled()
    );
    sandbox.shutdown().await;
}
