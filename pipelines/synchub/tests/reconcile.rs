//! Deletes a source never announces: Shopify drops a deleted customer from
//! every listing, and a missed `customers/delete` webhook leaves no trace in
//! an incremental read. `synchub run --full-refresh` reads everything and
//! treats a linked customer the shop no longer returns as deleted there
//! (here: archived in the CRM); an incremental run does not guess.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;
use synchub_core::{ObjectKind, Record};
use synchub_shopify::sandbox::{
    self, SandboxOptions, FIRST_CUSTOMER_ID, SANDBOX_TOKEN, SANDBOX_WEBHOOK_SECRET,
};
use synchub_testkit::TestDb;

fn run(db: &str, pipeline: &std::path::Path, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once", "--report", "json"])
        .args(extra)
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn is_deleted_in_crm(db: &TestDb, email: &str) -> bool {
    let store = db.store().await;
    let all = store.records(ObjectKind::Contact, true).await.unwrap();
    let hit = all
        .iter()
        .find(|r| matches!(&r.record, Record::Contact(c) if c.emails.iter().any(|e| e.eq_ignore_ascii_case(email))))
        .unwrap_or_else(|| panic!("no contact with {email}"));
    hit.deleted
}

async fn scenario(backend: &str) {
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let cfg = shop.config();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("shop.toml");
    std::fs::write(
        &pipeline,
        synchub_testkit::data::shopify_pull_pipeline(
            &cfg.shop,
            &shop.base_url,
            SANDBOX_TOKEN,
            SANDBOX_WEBHOOK_SECRET,
        ),
    )
    .unwrap();
    let db = TestDb::of(backend).await;
    run(&db.url, &pipeline, &[]);

    // The shop deletes a customer; the webhook never arrives.
    let gone = FIRST_CUSTOMER_ID + 5;
    let email = shop
        .shop()
        .customers
        .get(gone)
        .and_then(|c| c.email)
        .expect("seed customer with an email");
    assert!(shop.shop().delete_customer(gone));
    shop.take_webhooks();
    assert!(!is_deleted_in_crm(&db, &email).await);

    // An incremental run cannot see it.
    let quiet = run(&db.url, &pipeline, &[]);
    assert_eq!(quiet["streams"]["shop_tw.contact"]["deleted"], 0, "{quiet}");
    assert!(!is_deleted_in_crm(&db, &email).await);

    // A complete read finds it gone and applies the delete policy, once.
    let full = run(&db.url, &pipeline, &["--full-refresh"]);
    assert_eq!(full["streams"]["shop_tw.contact"]["deleted"], 1, "{full}");
    assert!(is_deleted_in_crm(&db, &email).await);
    let again = run(&db.url, &pipeline, &["--full-refresh"]);
    assert_eq!(again["streams"]["shop_tw.contact"]["deleted"], 0, "{again}");
    let store = db.store().await;
    let live = store
        .records(ObjectKind::Contact, false)
        .await
        .unwrap()
        .len();
    let all = store
        .records(ObjectKind::Contact, true)
        .await
        .unwrap()
        .len();
    assert_eq!(all - live, 1, "only the deleted customer is archived");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_refresh_finds_unannounced_deletes_sqlite() {
    scenario("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_refresh_finds_unannounced_deletes_postgres() {
    scenario("postgres").await;
}
