//! A store written by the previous release holds the old cursor shape (a
//! pass in progress kept its `endCursor` under `pass.after`): a run of this
//! release resumes from it without re-reading the shop or skipping anyone.

use serde_json::json;
use synchub_core::{Connector, Cursor, ObjectKind};
use synchub_shopify::sandbox::{self, SandboxOptions};
use synchub_shopify::ShopifyConnector;
use synchub_testkit::harness::{assert_resumed_exactly, pull_all};

#[tokio::test]
async fn a_pass_stored_by_the_previous_release_resumes_without_gaps_or_repeats() {
    // GIVEN a shop of 10 customers read 3 per page, and the first page read
    let shop = sandbox::spawn(SandboxOptions {
        customers: 10,
        orders: 0,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let build = || {
        let mut cfg = shop.config();
        cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
        cfg.bulk_backfill = false;
        cfg.customers_page_size = Some(3);
        ShopifyConnector::new(cfg).expect("config")
    };
    let first = build()
        .pull(ObjectKind::Contact, None)
        .await
        .expect("page 1");
    assert!(!first.done);
    let new_shape = first.next.expect("cursor").0;
    let end_cursor = new_shape["pass"]["page"]
        .as_str()
        .expect("endCursor")
        .to_string();
    // AND the cursor the previous release stored after that page
    let old = Cursor(json!({
        "watermark": new_shape["watermark"],
        "seen": new_shape["seen"],
        "pass": {"since": null, "after": end_cursor}
    }));
    // WHEN a new instance resumes from it
    let conn = build();
    let requests = shop.shop().requests;
    let (resumed, _, pages) = pull_all(&conn, ObjectKind::Contact, Some(&old)).await;
    // THEN it reads exactly the customers the first page did not, in the
    // pages left, and nothing from the start again
    assert_resumed_exactly(&first.records, &resumed, 10);
    assert_eq!(pages, 3);
    assert_eq!(shop.shop().requests - requests, 3);
    shop.shutdown().await;
}
