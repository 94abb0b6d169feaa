//! Typed push refusals against the sandbox store: validation → `Rejected`
//! with the store's message, a stale base → `Conflict` with the store's
//! copy, a throttled write → `Retry` with the host's `Retry-After`; and a
//! batch create whose answer was lost, retried, makes one customer each.

use std::time::Duration;

use serde_json::json;
use synchub_core::model::Contact;
use synchub_core::{Change, ChangeOp, Connector, ErrorClass, ObjectKind, Record, Refusal};
use synchub_woocommerce::sandbox::{self, SandboxHandle, SandboxOptions};

use super::{change, connector, pull_all};

async fn store_of(customers: u64) -> SandboxHandle {
    sandbox::spawn(SandboxOptions {
        customers,
        orders: 0,
        ..Default::default()
    })
    .await
    .expect("spawn")
}

fn create(i: usize) -> Change {
    let mut c = change(
        ChangeOp::Create,
        None,
        Contact {
            given_name: Some(format!("Batch{i}")),
            family_name: Some("Test".into()),
            emails: vec![format!("batch{i}@example.com")],
            ..Default::default()
        },
    );
    c.crm_id = format!("crm-{i}");
    c.idempotency_key = format!("key-{i}");
    c
}

#[tokio::test]
async fn stale_updates_are_conflicts_single_and_batched() {
    // GIVEN two customers the CRM read
    let store = store_of(5).await;
    let conn = connector(&store);
    let (records, _, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    let (a, b) = (records[1].clone(), records[2].clone());
    // WHEN the store admin edits the first after that read
    let a_id: u64 = a.external_id.parse().expect("id");
    assert!(store.edit_customer(a_id, |c| c["last_name"] = json!("Admin")));
    let update = |r: &synchub_core::RemoteRecord| {
        let Some(Record::Contact(mut c)) = r.record.clone() else {
            panic!("contact")
        };
        c.given_name = Some("FromCrm".into());
        let mut ch = change(ChangeOp::Update, Some(&r.external_id), c);
        ch.crm_id = format!("crm-{}", r.external_id);
        ch.base_version = r.version.clone();
        ch
    };
    let writes = store.store().writes;
    // THEN an update based on the old version is a conflict carrying the
    // store's copy, and is not sent
    let single = conn
        .push(ObjectKind::Contact, &[update(&a)])
        .await
        .expect("push");
    match &single[0].result {
        Err(Refusal::Conflict {
            current: Some(current),
            ..
        }) => {
            let Some(Record::Contact(c)) = &current.record else {
                panic!("record")
            };
            assert_eq!(c.family_name.as_deref(), Some("Admin"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.store().writes, writes);
    // AND in a batch the stale one is a conflict while the other is written
    let batch = conn
        .push(ObjectKind::Contact, &[update(&a), update(&b)])
        .await
        .expect("push");
    assert!(
        matches!(
            &batch[0].result,
            Err(Refusal::Conflict {
                current: Some(_),
                ..
            })
        ),
        "{:?}",
        batch[0].result
    );
    let written = batch[1].result.clone().expect("written");
    assert_eq!(written.external_id, b.external_id);
    store.shutdown().await;
}

#[tokio::test]
async fn validation_is_rejected_with_the_stores_message() {
    let store = store_of(2).await;
    let conn = connector(&store);
    let (records, _, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    let bad = Contact {
        emails: vec!["not-an-email".into()],
        ..Default::default()
    };
    let out = conn
        .push(
            ObjectKind::Contact,
            &[change(ChangeOp::Update, Some(&records[0].external_id), bad)],
        )
        .await
        .expect("push");
    assert_eq!(
        out[0].result,
        Err(Refusal::rejected(
            "400 rest_invalid_param: Invalid parameter(s): email"
        ))
    );
    store.shutdown().await;
}

#[tokio::test]
async fn throttled_writes_are_retry_with_the_hosts_delay() {
    // GIVEN a host that answers writes 429 with `Retry-After: 3600` after
    // the first one
    let store = store_of(0).await;
    let conn = connector(&store);
    {
        let mut s = store.store();
        s.faults.throttle_writes = Some(3600);
        s.faults.writes_before_throttle = 1;
    }
    // WHEN 150 creates are pushed (two batches)
    let changes: Vec<Change> = (0..150).map(create).collect();
    let out = conn
        .push(ObjectKind::Contact, &changes)
        .await
        .expect("push");
    // THEN the first batch is written and the second is Retry with the delay
    assert_eq!(out.len(), 150);
    assert!(out[..100].iter().all(|o| o.result.is_ok()));
    for o in &out[100..] {
        match &o.result {
            Err(Refusal::Retry {
                after: Some(after), ..
            }) => assert!(*after >= Duration::from_secs(3600), "{after:?}"),
            other => panic!("expected a retry with a delay, got {other:?}"),
        }
    }
    assert_eq!(store.store().customers.len(), 100);
    // AND a single create refused so fails the call with the delay
    let e = conn
        .push(ObjectKind::Contact, &changes[120..121])
        .await
        .expect_err("throttled");
    assert_eq!(e.class(), ErrorClass::Retry);
    assert!(
        matches!(&e, synchub_core::ConnectorError::Unavailable { retry_after: Some(d), .. } if *d >= Duration::from_secs(3500)),
        "{e:?}"
    );
    store.shutdown().await;
}

#[tokio::test]
async fn a_lost_batch_create_retried_makes_one_customer_each() {
    // GIVEN a store that carries out the next batch, then answers 502
    let store = store_of(3).await;
    let conn = connector(&store);
    let before = store.store().customers.len();
    store.store().faults.lose_next_write = true;
    let mut changes: Vec<Change> = (0..3).map(create).collect();
    // WHEN a batch of creates is pushed and its answer is lost
    let e = conn
        .push(ObjectKind::Contact, &changes)
        .await
        .expect_err("lost");
    // THEN the push is retried later (its outcome is unknown)
    assert_eq!(e.class(), ErrorClass::Retry, "{e}");
    assert_eq!(store.store().customers.len(), before + 3);
    // AND the retried batch, with newer CRM content for one of them, finds
    // the customers the lost batch made and updates them
    if let Record::Contact(c) = &mut changes[1].record {
        c.family_name = Some("Retried".into());
    }
    let out = conn
        .push(ObjectKind::Contact, &changes)
        .await
        .expect("push");
    let ids: Vec<String> = out
        .iter()
        .map(|o| o.result.clone().expect("written").external_id)
        .collect();
    assert_eq!(store.store().customers.len(), before + 3, "{ids:?}");
    let Some(Record::Contact(c)) = out[1].result.clone().expect("written").record else {
        panic!("record")
    };
    assert_eq!(c.family_name.as_deref(), Some("Retried"));
    // AND a create whose email belongs to someone else is still refused
    let (records, _, _) = pull_all(&conn, ObjectKind::Contact, None).await;
    let someone = records
        .iter()
        .find_map(|r| match &r.record {
            Some(Record::Contact(c)) if !c.emails.is_empty() && !ids.contains(&r.external_id) => {
                c.emails.first().cloned()
            }
            _ => None,
        })
        .expect("a seeded customer with an email");
    let mut taken = vec![create(10), create(11)];
    if let Record::Contact(c) = &mut taken[0].record {
        c.emails = vec![someone];
    }
    let out = conn.push(ObjectKind::Contact, &taken).await.expect("push");
    assert!(
        matches!(&out[0].result, Err(Refusal::Rejected { reason }) if reason.starts_with("registration-error-email-exists")),
        "{:?}",
        out[0].result
    );
    assert!(out[1].result.is_ok());
    store.shutdown().await;
}
