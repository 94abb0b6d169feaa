//! A store written by the previous release holds the old cursor shape (a
//! pass in progress was `{since, page: n, started_at, max_seen}`): a run of
//! this release resumes from it without re-reading the store or skipping
//! anyone.

use serde_json::json;
use synchub_core::{Connector, Cursor, ObjectKind};
use synchub_testkit::harness::{assert_resumed_exactly, pull_all};
use synchub_woocommerce::sandbox::{self, SandboxOptions};
use synchub_woocommerce::WooConnector;

#[tokio::test]
async fn a_pass_stored_by_the_previous_release_resumes_without_gaps_or_repeats() {
    // GIVEN a store of 10 customers read 3 per page, and the first page read
    let store = sandbox::spawn(SandboxOptions {
        customers: 10,
        orders: 0,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let build = || {
        let mut cfg = store.config();
        cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
        cfg.per_page = 3;
        WooConnector::new(cfg).expect("config")
    };
    let first = build()
        .pull(ObjectKind::Contact, None)
        .await
        .expect("page 1");
    assert!(!first.done);
    let now = first.next.expect("cursor").0;
    // AND the cursor the previous release stored after that page: its
    // watermark unmoved until the pass ends, the pass's next page as a
    // number, the store's clock at the pass's start and the newest time seen
    let old = Cursor(json!({
        "watermark": null,
        "seen": now["seen"],
        "pass": {
            "since": null,
            "page": 2,
            "started_at": now["pass"]["until"],
            "max_seen": now["watermark"]
        }
    }));
    // WHEN a new instance resumes from it
    let conn = build();
    let requests = store.store().requests;
    let (resumed, cursor, pages) = pull_all(&conn, ObjectKind::Contact, Some(&old)).await;
    // THEN it reads exactly the customers the first page did not, in the
    // pages left, and nothing from the start again
    assert_resumed_exactly(&first.records, &resumed, 10);
    assert_eq!(pages, 3);
    assert_eq!(store.store().requests - requests, 3);
    // AND the next pass reads nothing unchanged
    let again = conn
        .pull(ObjectKind::Contact, Some(&cursor))
        .await
        .expect("next pass");
    assert!(again.records.is_empty(), "{:?}", again.records);
    store.shutdown().await;
}
