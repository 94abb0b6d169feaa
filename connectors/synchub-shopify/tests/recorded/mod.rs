//! The connector against wiremock answers built from the recorded fixtures,
//! and the sandbox's answers compared key by key with the same fixtures.

use serde_json::{json, Value};
use synchub_core::{ChangeOp, Connector, ObjectKind, Record};
use synchub_shopify::sandbox::{self, SandboxOptions};
use synchub_shopify::{ShopifyConfig, ShopifyConnector};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

const GRAPHQL: &str = "/admin/api/2025-01/graphql.json";

fn wiremock_connector(server: &MockServer) -> ShopifyConnector {
    let mut cfg = ShopifyConfig::new("fixture-shop", "shpat_fixture_token");
    cfg.base_url = Some(server.uri());
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(1_000, 1_000));
    // the recorded answers are pages: these tests read the paged path
    cfg.bulk_backfill = false;
    ShopifyConnector::new(cfg).expect("config")
}

/// Answers the `customersCount` a paged backfill sends first (to say how
/// long it will take), ahead of every other mock.
async fn mount_customers_count(server: &MockServer) {
    Mock::given(method("POST"))
        .and(body_string_contains("customersCount"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"customersCount": {"count": 2, "precision": "EXACT"}},
            "extensions": {"cost": {"requestedQueryCost": 1, "actualQueryCost": 1,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 999, "restoreRate": 50.0}}}
        })))
        .with_priority(1)
        .mount(server)
        .await;
}

/// Requests other than the count query.
async fn page_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| !String::from_utf8_lossy(&r.body).contains("customersCount"))
        .count()
}

#[tokio::test]
async fn recorded_customers_page_maps_and_keeps_the_pass_open() {
    let server = MockServer::start().await;
    mount_customers_count(&server).await;
    Mock::given(method("POST"))
        .and(path(GRAPHQL))
        .and(header("x-shopify-access-token", "shpat_fixture_token"))
        .and(body_string_contains("sortKey: UPDATED_AT"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("graphql_customers_page.json")),
        )
        .mount(&server)
        .await;
    let page = wiremock_connector(&server)
        .pull(ObjectKind::Contact, None)
        .await
        .expect("page");
    assert_eq!(page.records.len(), 2);
    assert!(!page.done, "hasNextPage was true");
    let next = page.next.expect("cursor");
    assert_eq!(
        next.0["pass"]["page"],
        fixture("graphql_customers_page.json")["data"]["customers"]["pageInfo"]["endCursor"]
    );
    assert_eq!(next.0["watermark"], "2024-01-02T15:01:55Z");
    let Some(Record::Contact(c)) = &page.records[0].record else {
        panic!("contact")
    };
    assert_eq!(c.full_name.as_deref(), Some("林美玲"));
}

#[tokio::test]
async fn recorded_throttle_is_waited_out_then_the_page_arrives() {
    let server = MockServer::start().await;
    mount_customers_count(&server).await;
    // the recorded THROTTLED answer says (502 - 143) / 100 = 3.59 s; make it short
    let mut throttled = fixture("graphql_throttled.json");
    throttled["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] = json!(500);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(throttled))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("graphql_customers_page.json")),
        )
        .with_priority(3)
        .mount(&server)
        .await;
    let page = wiremock_connector(&server)
        .pull(ObjectKind::Contact, None)
        .await
        .expect("page");
    assert_eq!(page.records.len(), 2);
    // the page request: once THROTTLED, once answered
    assert_eq!(page_requests(&server).await, 2);
}

#[tokio::test]
async fn recorded_max_cost_is_a_config_error_naming_the_setting() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("graphql_max_cost_exceeded.json")),
        )
        .mount(&server)
        .await;
    let err = wiremock_connector(&server)
        .pull(ObjectKind::Order, None)
        .await
        .expect_err("too costly");
    assert_eq!(err.class(), synchub_core::ErrorClass::Config);
    assert!(err.to_string().contains("orders_page_size"), "{err}");
}

#[tokio::test]
async fn recorded_user_error_and_success_of_customer_update() {
    let server = MockServer::start().await;
    let fx = fixture("graphql_customer_update.json");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fx["response_user_error"].clone()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // the recorded success selects fewer fields than the connector; the mapping copes
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fx["response_ok"].clone()))
        .with_priority(2)
        .mount(&server)
        .await;
    let conn = wiremock_connector(&server);
    let contact = synchub_core::model::Contact {
        phones: vec!["+886912000111".into()],
        ..Default::default()
    };
    let id = Some("gid://shopify/Customer/706405506930370084".to_string());
    let changes = [
        change(ChangeOp::Update, id.clone(), contact.clone()),
        change(ChangeOp::Update, id, contact),
    ];
    let outcomes = conn
        .push(ObjectKind::Contact, &changes)
        .await
        .expect("push");
    assert_eq!(
        outcomes[0].result,
        Err(synchub_core::Refusal::rejected(
            "phone: Phone has already been taken"
        ))
    );
    let written = outcomes[1].result.clone().expect("ok");
    assert_eq!(written.version.as_deref(), Some("2024-01-03T02:00:00Z"));
    // the request carried the fixture's input
    let requests = server.received_requests().await.unwrap_or_default();
    let sent: Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(
        sent["variables"]["input"]["phone"],
        fx["request"]["variables"]["input"]["phone"]
    );
}

/// POSTs a raw GraphQL document to the sandbox and returns the JSON answer.
async fn raw(shop: &sandbox::SandboxHandle, query: &str, variables: Value) -> Value {
    let http = synchub_http::HttpClient::builder(shop.base_url.clone())
        .credential(format!("raw:{}", shop.base_url))
        .auth(synchub_http::Auth::header(
            "X-Shopify-Access-Token",
            sandbox::SANDBOX_TOKEN.to_string().into(),
        ))
        .retry(synchub_http::RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        })
        .build()
        .expect("client");
    let resp = http
        .post(GRAPHQL)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("answer");
    resp.json().expect("json")
}

fn assert_covers(expected: &Value, actual: &Value, what: &str) {
    let mut missing = Vec::new();
    missing_keys(&shape(expected), &shape(actual), "", &mut missing);
    assert!(missing.is_empty(), "{what}: sandbox lacks {missing:?}");
}

#[tokio::test]
async fn sandbox_answers_have_the_fixture_key_structure() {
    let shop = sandbox::spawn(SandboxOptions {
        customers: 20,
        orders: 10,
        ..Default::default()
    })
    .await
    .expect("spawn");
    // customers page: every recorded key is present
    let page = raw(
        &shop,
        synchub_shopify::queries::CUSTOMERS,
        json!({"first": 5}),
    )
    .await;
    assert_covers(
        &fixture("graphql_customers_page.json"),
        &page,
        "customers page",
    );
    let orders = raw(
        &shop,
        synchub_shopify::queries::ORDERS,
        json!({"first": 5, "lines": 5}),
    )
    .await;
    assert_covers(&fixture("graphql_orders_page.json"), &orders, "orders page");
    // customerUpdate success and userErrors
    let fx = fixture("graphql_customer_update.json");
    let ok = raw(&shop, synchub_shopify::queries::CUSTOMER_UPDATE,
        json!({"input": {"id": gid(1), "phone": "+886912000111", "tags": ["VIP", "台北", "synchub"]}})).await;
    assert_covers(&fx["response_ok"], &ok, "customerUpdate ok");
    assert_eq!(
        ok["data"]["customerUpdate"]["customer"]["tags"],
        fx["response_ok"]["data"]["customerUpdate"]["customer"]["tags"]
    );
    let taken = raw(
        &shop,
        synchub_shopify::queries::CUSTOMER_UPDATE,
        json!({"input": {"id": gid(0), "phone": "+886912000111"}}),
    )
    .await;
    assert_eq!(shape(&taken), shape(&fx["response_user_error"]));
    assert_eq!(
        taken["data"]["customerUpdate"]["userErrors"],
        fx["response_user_error"]["data"]["customerUpdate"]["userErrors"]
    );
    // THROTTLED and MAX_COST_EXCEEDED: the same keys exactly
    shop.set_throttle(Some((2000.0, 100.0)));
    shop.set_available(143.0);
    let throttled = raw(
        &shop,
        synchub_shopify::queries::CUSTOMERS,
        json!({"first": 250}),
    )
    .await;
    assert_eq!(shape(&throttled), shape(&fixture("graphql_throttled.json")));
    assert_eq!(
        throttled["errors"],
        fixture("graphql_throttled.json")["errors"]
    );
    let costly = raw(
        &shop,
        synchub_shopify::queries::ORDERS,
        json!({"first": 250, "lines": 10}),
    )
    .await;
    assert_eq!(
        shape(&costly),
        shape(&fixture("graphql_max_cost_exceeded.json"))
    );
}
