//! Typed push refusals against the sandbox: validation → `Rejected` with
//! the shop's words, a stale base → `Conflict` with the shop's copy, a
//! throttled or failing write → `Retry` with the shop's `Retry-After`; and
//! a create whose answer was lost, retried, makes one customer.

use std::time::Duration;

use synchub_core::model::Contact;
use synchub_core::{ChangeOp, Connector, ErrorClass, ObjectKind, Record, Refusal};
use synchub_shopify::sandbox::{self, SandboxOptions, FIRST_CUSTOMER_ID};

use crate::common::*;

async fn shop_of(customers: u64) -> sandbox::SandboxHandle {
    sandbox::spawn(SandboxOptions {
        customers,
        orders: 0,
        ..Default::default()
    })
    .await
    .expect("spawn")
}

fn person(i: u32) -> Contact {
    Contact {
        given_name: Some(format!("Refusal{i}")),
        family_name: Some("Test".into()),
        emails: vec![format!("refusal{i}@example.com")],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_stale_update_is_a_conflict_carrying_the_shops_copy() {
    // GIVEN a customer the CRM read
    let shop = shop_of(5).await;
    let conn = connector(&shop);
    let (records, _, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    let read = records
        .iter()
        .find(|r| r.external_id == gid(2))
        .expect("customer 2")
        .clone();
    let Some(Record::Contact(mut contact)) = read.record.clone() else {
        panic!("contact")
    };
    // WHEN the shop admin edits it after that read
    {
        let mut s = shop.shop();
        let mut row = s.customers.get(FIRST_CUSTOMER_ID + 2).expect("row");
        row.note = Some("edited in the admin".into());
        s.save_customer(row, "customers/update");
    }
    // AND the CRM pushes an update based on the version it read
    contact.given_name = Some("Changed".into());
    let mut stale = change(ChangeOp::Update, Some(gid(2)), contact.clone());
    stale.base_version = read.version.clone();
    let writes = shop.shop().writes;
    let out = conn
        .push(ObjectKind::Contact, std::slice::from_ref(&stale))
        .await
        .expect("push");
    // THEN it is a conflict carrying the shop's current copy, and nothing is written
    let current = match &out[0].result {
        Err(Refusal::Conflict {
            current: Some(current),
            reason,
        }) => {
            assert!(reason.contains(&gid(2)), "{reason}");
            current.clone()
        }
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert_ne!(current.version, read.version);
    let Some(Record::Contact(theirs)) = &current.record else {
        panic!("record")
    };
    assert_eq!(theirs.custom["note"], "edited in the admin");
    assert_eq!(shop.shop().writes, writes, "a stale update is not sent");
    // AND based on the shop's current version the same update is written
    stale.base_version = current.version.clone();
    let out = conn
        .push(ObjectKind::Contact, &[stale])
        .await
        .expect("push");
    let written = out[0].result.clone().expect("written");
    let Some(Record::Contact(after)) = written.record else {
        panic!("record")
    };
    assert_eq!(after.given_name.as_deref(), Some("Changed"));
    // AND an update of a customer the shop no longer has is refused for good
    shop.shop().delete_customer(FIRST_CUSTOMER_ID + 3);
    let mut gone = change(ChangeOp::Update, Some(gid(3)), contact);
    gone.base_version = read.version;
    let out = conn.push(ObjectKind::Contact, &[gone]).await.expect("push");
    assert!(
        matches!(&out[0].result, Err(Refusal::Rejected { reason }) if reason.contains("no longer exists")),
        "{:?}",
        out[0].result
    );
    shop.shutdown().await;
}

#[tokio::test]
async fn validation_is_rejected_with_the_shops_message() {
    let shop = shop_of(0).await;
    let conn = connector(&shop);
    let mut bad = person(1);
    bad.emails = vec!["not-an-email".into()];
    let out = conn
        .push(ObjectKind::Contact, &[change(ChangeOp::Create, None, bad)])
        .await
        .expect("push");
    assert_eq!(
        out[0].result,
        Err(Refusal::rejected("email: Email is invalid"))
    );
    assert_eq!(shop.shop().customers.len(), 0);
    shop.shutdown().await;
}

#[tokio::test]
async fn a_throttled_write_is_retry_with_the_shops_delay() {
    // GIVEN a shop that starts refusing writes with 429 and `Retry-After:
    // 3600` after the first one (longer than any wait the runtime sleeps)
    let shop = shop_of(0).await;
    let conn = connector(&shop);
    {
        let mut s = shop.shop();
        s.faults.throttle_writes = Some(3600);
        s.faults.writes_before_throttle = 1;
    }
    let mut changes: Vec<_> = (1..=3)
        .map(|i| change(ChangeOp::Create, None, person(i)))
        .collect();
    for (i, c) in changes.iter_mut().enumerate() {
        c.crm_id = format!("crm-{i}");
        c.idempotency_key = format!("key-{i}");
    }
    // WHEN three creates are pushed
    let out = conn
        .push(ObjectKind::Contact, &changes)
        .await
        .expect("push");
    // THEN the first is written, the throttled one and the one after it
    // (not sent) are Retry with the shop's delay
    assert!(out[0].result.is_ok(), "{:?}", out[0].result);
    for o in &out[1..] {
        match &o.result {
            Err(Refusal::Retry {
                after: Some(after), ..
            }) => assert!(*after >= Duration::from_secs(3600), "{after:?}"),
            other => panic!("expected a retry with a delay, got {other:?}"),
        }
    }
    assert_eq!(shop.shop().customers.len(), 1);
    // AND when nothing could be written the call fails as a whole, with
    // the rest of the delay (the runtime holds the shop's quota until then),
    // so the batch stays queued
    let e = conn
        .push(ObjectKind::Contact, &changes[1..])
        .await
        .expect_err("throttled");
    assert_eq!(e.class(), ErrorClass::Retry);
    assert!(
        matches!(&e, synchub_core::ConnectorError::Unavailable { retry_after: Some(d), .. } if *d >= Duration::from_secs(3500)),
        "{e:?}"
    );
    shop.shutdown().await;
}

#[tokio::test]
async fn a_lost_create_is_retry_and_its_retry_makes_one_customer() {
    // GIVEN a shop holding one customer the CRM created
    let shop = shop_of(0).await;
    let conn = connector(&shop);
    let mut first = change(ChangeOp::Create, None, person(7));
    first.crm_id = "crm-first".into();
    first.idempotency_key = "key-first".into();
    let mut lost = change(ChangeOp::Create, None, person(8));
    lost.crm_id = "crm-lost".into();
    lost.idempotency_key = "key-lost".into();
    let out = conn
        .push(ObjectKind::Contact, std::slice::from_ref(&first))
        .await
        .expect("push");
    assert!(out[0].result.is_ok(), "{:?}", out[0].result);
    // WHEN the next create is carried out but its answer is lost (502)
    shop.shop().faults.lose_next_write = true;
    let e = conn
        .push(ObjectKind::Contact, std::slice::from_ref(&lost))
        .await
        .expect_err("lost");
    // THEN the push is retried later (its outcome is unknown), not refused for good
    assert_eq!(e.class(), ErrorClass::Retry, "{e}");
    assert_eq!(shop.shop().customers.len(), 2);
    // AND its retry, with the CRM's newer content, updates the customer
    // the lost create made instead of making another
    let mut again = lost.clone();
    let Record::Contact(c) = &mut again.record else {
        panic!("contact")
    };
    c.family_name = Some("Retried".into());
    let out = conn
        .push(ObjectKind::Contact, &[again])
        .await
        .expect("push");
    let written = out[0].result.clone().expect("written");
    let Some(Record::Contact(after)) = written.record else {
        panic!("record")
    };
    assert_eq!(after.family_name.as_deref(), Some("Retried"));
    assert_eq!(shop.shop().customers.len(), 2, "one customer per change");
    shop.shutdown().await;
}
