//! A store written by the previous release holds the old cursor shape (a
//! pass in progress kept its `endCursor` under `pass.after`): a run of this
//! release resumes from it without re-reading the shop or skipping anyone.

use std::collections::BTreeSet;

use serde_json::json;
use synchub_core::{Connector, Cursor, ObjectKind};
use synchub_shopify::sandbox::{self, SandboxOptions};
use synchub_shopify::ShopifyConnector;

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
    let mut cursor = Some(old);
    let mut resumed = Vec::new();
    let mut pages = 0;
    loop {
        let page = conn
            .pull(ObjectKind::Contact, cursor.as_ref())
            .await
            .expect("page");
        pages += 1;
        resumed.extend(page.records.into_iter().map(|r| r.external_id));
        cursor = page.next;
        if page.done {
            break;
        }
    }
    // THEN it reads exactly the customers the first page did not, in the
    // pages left, and nothing from the start again
    let before: BTreeSet<String> = first.records.into_iter().map(|r| r.external_id).collect();
    let after: BTreeSet<String> = resumed.iter().cloned().collect();
    assert_eq!(resumed.len(), after.len(), "repeats: {resumed:?}");
    assert!(before.is_disjoint(&after), "re-read: {before:?} {after:?}");
    assert_eq!(
        before.len() + after.len(),
        10,
        "skipped: {before:?} {after:?}"
    );
    assert_eq!(pages, 3);
    assert_eq!(shop.shop().requests - requests, 3);
    shop.shutdown().await;
}
