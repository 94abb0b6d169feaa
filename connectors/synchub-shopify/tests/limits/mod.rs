//! Rate limits as the shop counts them: documented query costs, the
//! single-query maximum, the bucket, and what the shop says it charged.

use serde_json::json;
use synchub_core::ObjectKind;
use synchub_shopify::client::ShopifyClient;
use synchub_shopify::sandbox::{self, SandboxOptions};
use synchub_shopify::{queries, ShopifyConfig, ShopifyError};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

#[tokio::test]
async fn query_over_the_single_query_maximum_is_never_sent() {
    // GIVEN a shop that charges the documented costs
    let shop = sandbox::spawn(SandboxOptions::default())
        .await
        .expect("spawn");
    let client = ShopifyClient::new(&shop.config()).expect("client");
    // WHEN the connector is asked to send 25 orders × 10 line items (1,502 points)
    let vars = json!({"first": 25, "after": null, "query": null, "lines": 10});
    let err = client
        .graphql(queries::ORDERS, vars, true)
        .await
        .expect_err("over the maximum");
    // THEN it is refused before sending, naming the cost, the limit and the host
    let ShopifyError::MaxCost(message) = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("1502") && message.contains("(1000)"),
        "{message}"
    );
    assert!(message.contains("127.0.0.1"), "{message}");
    assert_eq!(shop.shop().requests, 0, "the query reached the shop");
    shop.shutdown().await;
}

#[tokio::test]
async fn paged_streams_pass_a_documented_cost_bucket_without_throttled() {
    // GIVEN a 1,000-point bucket that charges the documented costs (restore
    // rate raised so the test is quick: the waits are what is tested)
    let shop = sandbox::spawn(SandboxOptions {
        customers: 1_500,
        orders: 200,
        throttle: Some((1000.0, 2000.0)),
        ..Default::default()
    })
    .await
    .expect("spawn");
    let conn = paged_connector(&shop);
    // WHEN both streams are read to the end, page by page
    let (customers, _, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    let (orders, _, order_pages) = pull_all(&conn, ObjectKind::Order, None).await;
    // THEN everything arrived and the shop never answered THROTTLED or MAX_COST_EXCEEDED
    assert_eq!((customers.len(), orders.len()), (1_500, 200));
    assert_eq!(order_pages, 13, "pages of 16 orders");
    let throttled = shop.shop().throttled;
    assert_eq!(throttled, 0, "THROTTLED answers");
    shop.shutdown().await;
}

#[tokio::test]
async fn learns_the_cost_the_shop_charges_for_a_query_shape() {
    // GIVEN a shop that prices the shop query at 900 points (our rules say 1)
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"shop": {"name": "x", "myshopifyDomain": "x.myshopify.com"}},
            "extensions": {"cost": {"requestedQueryCost": 900, "actualQueryCost": 1,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 999, "restoreRate": 50.0}}}
        })))
        .mount(&server)
        .await;
    let mut cfg = ShopifyConfig::new("learn", "shpat_x");
    cfg.base_url = Some(server.uri());
    let client = ShopifyClient::new(&cfg).expect("client");
    assert_eq!(
        client
            .requested_cost(queries::SHOP, &json!({}))
            .expect("cost"),
        1
    );
    // WHEN one answer reports the cost
    client
        .graphql(queries::SHOP, json!({}), true)
        .await
        .expect("answer");
    // THEN the next request of that shape waits for the shop's figure
    assert_eq!(
        client
            .requested_cost(queries::SHOP, &json!({}))
            .expect("cost"),
        900
    );
}

#[tokio::test]
async fn bulk_backfill_leaves_the_watermark_a_paged_backfill_leaves() {
    // GIVEN a quiet shop, read once page by page and once by a bulk export
    let shop = sandbox::spawn(SandboxOptions {
        customers: 2_600,
        orders: 300,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let paged = paged_connector(&shop);
    let mut cfg = shop.config();
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
    cfg.bulk_backfill = true;
    let bulk = synchub_shopify::ShopifyConnector::new(cfg).expect("bulk connector");
    for object in [ObjectKind::Contact, ObjectKind::Order] {
        let (by_pages, paged_cursor, _) = pull_all(&paged, object, None).await;
        let (by_bulk, bulk_cursor, _) = pull_all(&bulk, object, None).await;
        assert_eq!(by_pages.len(), by_bulk.len());
        // THEN the bulk path leaves the same incremental cursor
        let p = synchub_shopify::stored::watermark(Some(&paged_cursor)).expect("paged cursor");
        let b = synchub_shopify::stored::watermark(Some(&bulk_cursor)).expect("bulk cursor");
        assert!(p.watermark.is_some());
        assert_eq!(b, p, "{object}");
        // AND the first incremental run after the bulk backfill reads nothing, in one request
        let before = shop.shop().requests;
        let (again, _, pages) = pull_all(&bulk, object, Some(&bulk_cursor)).await;
        assert_eq!((again.len(), pages), (0, 1), "{object}");
        assert_eq!(shop.shop().requests - before, 1);
    }
    shop.shutdown().await;
}

#[tokio::test]
async fn paged_backfill_time_is_estimated_by_the_documented_costs() {
    // GIVEN the default page sizes (250 customers: 752 points; 16 orders × 10 lines: 962)
    let conn = synchub_shopify::ShopifyConnector::new(ShopifyConfig::new("est", "shpat_x"))
        .expect("connector");
    // THEN 20,000 orders at a standard plan's 50 points/s take 1,250 pages × 962 / 50 s
    let orders = conn
        .paged_backfill_estimate(ObjectKind::Order, 20_000, 50.0)
        .expect("estimate");
    assert_eq!(orders.as_secs(), 24_050);
    // AND 20,000 customers 80 pages × 752 / 100 s at 100 points/s
    let customers = conn
        .paged_backfill_estimate(ObjectKind::Contact, 20_000, 100.0)
        .expect("estimate");
    assert_eq!(customers.as_secs(), 601);
    assert!(conn
        .paged_backfill_estimate(ObjectKind::Invoice, 1, 50.0)
        .is_none());
}

#[test]
fn shop_ca_file_reaches_the_http_client() {
    // GIVEN a pipeline table naming a CA file that is not there
    let table = json!({"shop": "example-tw", "access_token": "shpat_x",
        "ca_file": "/nonexistent/company-proxy-ca.pem"});
    // THEN building the connector fails naming the file, before any request
    let err = synchub_shopify::ShopifyConnector::from_value(table).expect_err("no such file");
    assert!(
        err.to_string()
            .contains("/nonexistent/company-proxy-ca.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn paged_backfill_says_how_long_it_takes_by_the_documented_costs() {
    // GIVEN a shop of 1,000 customers and 1,600 orders on a standard plan
    // (a 1,000-point bucket restoring 50 points/s), bulk operations off
    let shop = sandbox::spawn(SandboxOptions {
        customers: 1_000,
        orders: 1_600,
        throttle: Some((1000.0, 50.0)),
        ..Default::default()
    })
    .await
    .expect("spawn");
    let mut cfg = shop.config();
    cfg.bulk_backfill = false;
    let conn = synchub_shopify::ShopifyConnector::new(cfg)
        .expect("valid config")
        .named("shop_tw");
    // WHEN the paged backfill is announced
    let orders = conn
        .paged_backfill_notice(ObjectKind::Order)
        .await
        .expect("count")
        .expect("a notice");
    let customers = conn
        .paged_backfill_notice(ObjectKind::Contact)
        .await
        .expect("count")
        .expect("a notice");
    // THEN it names the count from `ordersCount` / `customersCount` and the
    // documented cost: 100 pages of 16 orders × 962 points = 96,200 points at
    // 50/s (the restore rate of the count's own throttleStatus) = 1,924 s;
    // 4 pages of 250 customers × 752 points = 3,008 points = 60.16 s
    assert!(
        orders.starts_with(
            "shop_tw.order: paged backfill of 1,600 orders ≈ 32 min 4 s at 50 points/s; \
             set bulk_backfill = true"
        ),
        "{orders}"
    );
    assert!(
        customers.starts_with(
            "shop_tw.contact: paged backfill of 1,000 customers ≈ 1 min at 50 points/s;"
        ),
        "{customers}"
    );
    // and each count cost the documented 1 point
    assert_eq!(shop.shop().charged, 2, "points charged for two counts");
    shop.shutdown().await;
}

#[tokio::test]
async fn bulk_is_the_default_for_a_backfill() {
    // GIVEN a connector config that does not mention bulk_backfill
    let cfg: ShopifyConfig =
        serde_json::from_value(json!({"shop": "example-tw", "access_token": "shpat_x"}))
            .expect("config");
    // THEN a backfill uses a bulk operation; `false` stays an explicit opt-out
    assert!(cfg.bulk_backfill);
    assert!(ShopifyConfig::new("example-tw", "shpat_x").bulk_backfill);
    let off: ShopifyConfig = serde_json::from_value(
        json!({"shop": "example-tw", "access_token": "shpat_x", "bulk_backfill": false}),
    )
    .expect("config");
    assert!(!off.bulk_backfill);
}
