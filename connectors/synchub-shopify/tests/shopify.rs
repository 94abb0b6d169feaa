//! Connector tests: against the sandbox (pagination, resume, incremental,
//! write-back and its echo, userErrors, throttling, bulk backfill, webhooks)
//! and against wiremock answers built from the recorded fixtures, plus a
//! check that the sandbox answers with the fixtures' JSON key structure.

mod common;
mod limits;
mod recorded;
mod refusals;
mod upgrade;

use common::*;
use serde_json::json;
use synchub_core::WebhookAction;
use synchub_core::{ChangeOp, Connector, ConnectorError, ErrorClass, ObjectKind, Record};
use synchub_shopify::sandbox::{self, SandboxOptions, FIRST_CUSTOMER_ID};
use synchub_shopify::ShopifyConnector;

#[tokio::test]
async fn paginates_customers_and_orders_to_the_end() {
    // GIVEN a shop of 600 customers and 60 orders
    let shop = sandbox::spawn(SandboxOptions {
        customers: 600,
        orders: 60,
        ..Default::default()
    })
    .await
    .expect("spawn");
    // the point is the paged path (page sizes and counts): bulk off
    let conn = paged_connector(&shop);
    // WHEN both streams are pulled to the end
    let (customers, cursor, pages) = pull_all(&conn, ObjectKind::Contact, None).await;
    let (orders, _, order_pages) = pull_all(&conn, ObjectKind::Order, None).await;
    // THEN every record arrives once, in pages of 250 customers and 16
    // orders (the largest orders page under the 1,000-point maximum)
    assert_eq!(customers.len(), 600);
    assert_eq!(pages, 3);
    assert_eq!(orders.len(), 60);
    assert_eq!(order_pages, 4);
    assert_eq!(distinct(&customers), 600);
    let first = customers
        .iter()
        .find(|r| r.external_id == gid(0))
        .expect("story customer");
    let Some(Record::Contact(c)) = &first.record else {
        panic!("contact")
    };
    assert_eq!(c.full_name.as_deref(), Some("陳大文"));
    assert_eq!(c.phones, vec!["+886932111222", "+886 932-111-222"]);
    let zero_line = orders
        .iter()
        .find(|r| r.external_id.ends_with("/5001000003"))
        .expect("0-line order");
    let Some(Record::Order(o)) = &zero_line.record else {
        panic!("order")
    };
    assert!(o.lines.is_empty());
    assert!(cursor.0["watermark"].is_string());
    shop.shutdown().await;
}

#[tokio::test]
async fn resumes_from_a_stored_cursor_without_gaps_or_repeats() {
    let shop = sandbox::spawn(SandboxOptions {
        customers: 600,
        orders: 0,
        ..Default::default()
    })
    .await
    .expect("spawn");
    // GIVEN one page read and its cursor stored
    let first = connector(&shop)
        .pull(ObjectKind::Contact, None)
        .await
        .expect("page");
    assert!(!first.done);
    let stored = serde_json::to_string(&first.next).expect("store");
    // WHEN a new instance (after a restart) continues from it
    let restored: Option<synchub_core::Cursor> = serde_json::from_str(&stored).expect("load");
    let (rest, _, _) = pull_all(&connector(&shop), ObjectKind::Contact, restored.as_ref()).await;
    // THEN the two parts make the whole shop exactly once
    let mut all = first.records.clone();
    all.extend(rest);
    assert_eq!(all.len(), 600);
    assert_eq!(distinct(&all), 600);
}

#[tokio::test]
async fn incremental_pull_returns_only_the_edit_and_then_nothing() {
    let shop = sandbox::spawn(SandboxOptions {
        customers: 300,
        orders: 10,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let conn = connector(&shop);
    let (_, cursor, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    // GIVEN nothing changed, WHEN pulling again, THEN the overlap is de-duplicated exactly
    let (none, cursor, _) = pull_all(&conn, ObjectKind::Contact, Some(&cursor)).await;
    assert!(
        none.is_empty(),
        "{:?}",
        none.iter().map(|r| &r.external_id).collect::<Vec<_>>()
    );
    // GIVEN an edit in the shop admin
    assert!(shop.edit_customer(FIRST_CUSTOMER_ID + 42, |c| c.note =
        Some("called back".into())));
    let (changed, cursor, _) = pull_all(&conn, ObjectKind::Contact, Some(&cursor)).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].external_id, gid(42));
    let (again, _, _) = pull_all(&conn, ObjectKind::Contact, Some(&cursor)).await;
    assert!(again.is_empty());
}

#[tokio::test]
async fn write_back_then_the_echo_and_its_webhook() {
    let shop = sandbox::spawn(SandboxOptions {
        customers: 30,
        orders: 0,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let conn = connector(&shop);
    let (records, cursor, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    let linda = records
        .iter()
        .find(|r| r.external_id == gid(1))
        .expect("林美玲");
    let Some(Record::Contact(mut contact)) = linda.record.clone() else {
        panic!("contact")
    };
    contact.phones = vec!["+886912000999".into()];
    contact.tags.push("synchub".into());
    // WHEN the CRM change is pushed
    let outcomes = conn
        .push(
            ObjectKind::Contact,
            &[change(ChangeOp::Update, Some(gid(1)), contact.clone())],
        )
        .await
        .expect("push");
    let written = outcomes[0].result.clone().expect("written");
    assert_eq!(written.external_id, gid(1));
    let Some(Record::Contact(after)) = &written.record else {
        panic!("record")
    };
    assert_eq!(after.phones[0], "+886912000999");
    // THEN the next incremental pull returns the echo, with the written version
    let (echo, _, _) = pull_all(&conn, ObjectKind::Contact, Some(&cursor)).await;
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].version, written.version);
    assert_eq!(echo[0].record, written.record);
    // AND the shop sent a signed customers/update webhook, accepted once
    let hooks = shop.take_webhooks();
    assert_eq!(hooks.len(), 1);
    let headers = header_map(&hooks[0].headers);
    let outcome = conn
        .handle_webhook(&headers, &hooks[0].body)
        .await
        .expect("verified");
    assert!(
        matches!(
            outcome,
            WebhookAction::Sync {
                object: ObjectKind::Contact,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        conn.handle_webhook(&headers, &hooks[0].body).await,
        Ok(WebhookAction::Nothing("duplicate"))
    );
    // AND a create returns the new id
    let new = synchub_core::model::Contact {
        full_name: Some("張雅婷".into()),
        emails: vec!["yating@example.tw".into()],
        ..Default::default()
    };
    let created = conn
        .push(ObjectKind::Contact, &[change(ChangeOp::Create, None, new)])
        .await
        .expect("push");
    let id = created[0].result.clone().expect("created").external_id;
    assert!(id.starts_with("gid://shopify/Customer/"));
}

#[tokio::test]
async fn user_errors_become_per_record_errors() {
    let shop = sandbox::spawn(SandboxOptions {
        customers: 10,
        orders: 0,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let conn = connector(&shop);
    let taken = synchub_core::model::Contact {
        emails: vec!["meiling.lin@example.com.tw".into()],
        ..Default::default()
    };
    // a phone that is not E.164 is not sent (Shopify would refuse the whole
    // write); the next one is, and it belongs to another customer
    let bad_phone = synchub_core::model::Contact {
        phones: vec!["0912-345-678".into(), "+886912000111".into()],
        ..Default::default()
    };
    let ok = synchub_core::model::Contact {
        given_name: Some("大文".into()),
        family_name: Some("陳".into()),
        ..Default::default()
    };
    let outcomes = conn
        .push(
            ObjectKind::Contact,
            &[
                change(ChangeOp::Update, Some(gid(0)), taken),
                change(ChangeOp::Update, Some(gid(0)), bad_phone),
                change(
                    ChangeOp::Update,
                    Some("gid://shopify/Customer/1".into()),
                    ok.clone(),
                ),
                change(ChangeOp::Update, Some(gid(0)), ok),
            ],
        )
        .await
        .expect("push");
    assert_eq!(
        outcomes[0].result,
        Err(synchub_core::Refusal::rejected(
            "email: Email has already been taken"
        ))
    );
    assert_eq!(
        outcomes[1].result,
        Err(synchub_core::Refusal::rejected(
            "phone: Phone has already been taken"
        ))
    );
    assert_eq!(
        outcomes[2].result,
        Err(synchub_core::Refusal::rejected(
            "id: Customer does not exist"
        ))
    );
    assert!(outcomes[3].result.is_ok());
}

#[tokio::test]
async fn throttled_then_success_through_the_runtime() {
    // GIVEN a cost bucket that is empty but refills fast
    let shop = sandbox::spawn(SandboxOptions {
        customers: 50,
        orders: 0,
        throttle: Some((1000.0, 5000.0)),
        ..Default::default()
    })
    .await
    .expect("spawn");
    shop.set_available(0.0);
    // WHEN a page is pulled (paged: bulk off), THEN the runtime waits the bucket out and succeeds
    let page = paged_connector(&shop)
        .pull(ObjectKind::Contact, None)
        .await
        .expect("page");
    assert_eq!(page.records.len(), 50);
    assert!(
        shop.shop().throttled >= 1,
        "the sandbox answered THROTTLED at least once"
    );
}

#[tokio::test]
async fn bad_token_is_a_reauth_error_that_names_no_secret() {
    let shop = sandbox::spawn(SandboxOptions::default())
        .await
        .expect("spawn");
    let mut cfg = shop.config();
    cfg.access_token = "shpat_wrong_token_value".to_string().into();
    let conn = ShopifyConnector::new(cfg).expect("build");
    let err = conn.check().await.expect_err("401");
    assert_eq!(err.class(), ErrorClass::Reauth, "{err}");
    assert!(!err.to_string().contains("shpat_wrong_token_value"));
    connector(&shop).check().await.expect("good token");
}

#[tokio::test]
async fn bulk_backfill_streams_everything_then_goes_incremental() {
    let shop = sandbox::spawn(SandboxOptions {
        customers: 4_500,
        orders: 2_100,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let mut cfg = shop.config();
    cfg.bulk_backfill = true;
    let conn = ShopifyConnector::new(cfg).expect("build");
    let (customers, cursor, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    assert_eq!(customers.len(), 4_500);
    assert_eq!(distinct(&customers), 4_500);
    let (orders, _, _) = pull_all(&conn, ObjectKind::Order, None).await;
    assert_eq!(orders.len(), 2_100);
    let lines: usize = orders
        .iter()
        .map(|r| match &r.record {
            Some(Record::Order(o)) => o.lines.len(),
            _ => 0,
        })
        .sum();
    assert!(
        lines > 2_100,
        "line items attached from child lines: {lines}"
    );
    // the cursor is now incremental: an edit comes through pages
    assert!(cursor.0.get("bulk").is_none());
    shop.edit_customer(FIRST_CUSTOMER_ID + 7, |c| c.tags = vec!["edited".into()]);
    let (changed, _, _) = pull_all(&conn, ObjectKind::Contact, Some(&cursor)).await;
    assert_eq!(
        changed
            .iter()
            .map(|r| r.external_id.clone())
            .collect::<Vec<_>>(),
        vec![gid(7)]
    );
}

#[tokio::test]
async fn auth_errors_and_unknown_streams_are_classified() {
    let shop = sandbox::spawn(SandboxOptions::default())
        .await
        .expect("spawn");
    let err = connector(&shop)
        .pull(ObjectKind::Invoice, None)
        .await
        .expect_err("no invoices");
    assert!(matches!(err, ConnectorError::Config(_)), "{err}");
    let err = connector(&shop)
        .push(ObjectKind::Order, &[])
        .await
        .expect_err("orders are read-only");
    assert_eq!(err.class(), ErrorClass::Config);
    let _ = json!(null);
}
