//! Two-way sync through the CRM between two in-memory systems, on SQLite and
//! PostgreSQL: one person in both becomes one contact, edits flow both ways,
//! our own writes are not synced back, and a quiet round writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions, RunReport};
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

fn contact(name: &str, email: &str, phone: &str) -> Record {
    Record::Contact(Contact {
        full_name: Some(name.into()),
        emails: vec![email.into()],
        phones: vec![phone.into()],
        ..Contact::default()
    })
}

fn engine(store: Store, a: &MemorySystem, b: &MemorySystem, policy: MergePolicy) -> Engine {
    let conn = |name: &str, sys: &MemorySystem| Connection {
        name: name.into(),
        connector: Arc::new(sys.connector(50)),
        direction: Direction::TwoWay,
        objects: vec![ObjectKind::Contact],
        region: Some("TW".into()),
    };
    Engine::new(
        store,
        "two-way",
        vec![conn("shop_a", a), conn("shop_b", b)],
        policy,
        BTreeMap::new(),
    )
}

async fn round(e: &Engine) -> RunReport {
    let r = e.run(&RunOptions::default()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r
}

fn emails(r: &Record) -> Vec<String> {
    r.as_contact().unwrap().emails.clone()
}

async fn same_person_in_both_becomes_one_contact_and_edits_flow(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let (a, b) = (MemorySystem::new("a"), MemorySystem::new("b"));
    a.put(
        "a1",
        contact("陳大文", "Tai.Man@Example.hk", "+852 9123 4567"),
    );
    b.put(
        "b7",
        contact("Chan Tai Man", "tai.man@example.hk", "+852 9123-4567"),
    );
    a.put(
        "a2",
        contact("林美玲", "meiling@example.tw", "0912-345-678"),
    );
    let e = engine(store.clone(), &a, &b, MergePolicy::default());

    // GIVEN one person in both shops and one only in A WHEN a round runs
    let r1 = round(&e).await;
    // THEN the CRM holds two contacts and B got A's other customer.
    let crm = store.records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(crm.len(), 2, "{crm:#?}");
    assert_eq!(r1.total().merged, 1);
    assert_eq!(b.live(ObjectKind::Contact).len(), 2, "B received 林美玲");
    assert!(b
        .live(ObjectKind::Contact)
        .values()
        .any(|r| emails(r) == ["meiling@example.tw"]));

    // A round that echoes our own writes back changes nothing...
    round(&e).await;
    // ...and then a quiet round writes nothing anywhere.
    let (wa, wb) = (a.writes(), b.writes());
    let quiet = round(&e).await;
    assert_eq!(quiet.writes(), 0, "{}", quiet.to_table());
    assert_eq!(
        (a.writes(), b.writes()),
        (wa, wb),
        "no remote writes in a quiet round"
    );

    // WHEN B edits 林美玲's phone THEN the CRM and A get it, once.
    let (bid, _) = b
        .live(ObjectKind::Contact)
        .into_iter()
        .find(|(_, r)| emails(r) == ["meiling@example.tw"])
        .unwrap();
    assert!(b.edit(ObjectKind::Contact, &bid, |r| {
        if let Record::Contact(c) = r {
            c.phones = vec!["+886 2 2345 6789".into()];
        }
    }));
    let r = round(&e).await;
    assert_eq!(r.total().updated, 1, "{}", r.to_table());
    let a2 = a.get(ObjectKind::Contact, "a2").unwrap();
    assert_eq!(
        a2.as_contact().unwrap().phones,
        vec!["+886223456789".to_string()]
    );
    round(&e).await;
    let quiet = round(&e).await;
    assert_eq!(quiet.writes(), 0, "{}", quiet.to_table());
}

async fn throttled_source_is_waited_out(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let (a, b) = (MemorySystem::new("a"), MemorySystem::new("b"));
    for i in 0..120 {
        a.put(
            &format!("a{i}"),
            contact(&format!("Person {i}"), &format!("p{i}@example.com"), ""),
        );
    }
    a.throttle_next(2);
    let e = engine(store.clone(), &a, &b, MergePolicy::default());
    let r = round(&e).await;
    assert_eq!(r.total().created, 120, "{}", r.to_table());
    assert_eq!(
        store
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        120
    );
    assert_eq!(
        b.live(ObjectKind::Contact).len(),
        120,
        "nothing lost or doubled"
    );
}

async fn manual_conflict_resolved_and_pushed(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let (a, b) = (MemorySystem::new("a"), MemorySystem::new("b"));
    a.put("a1", contact("Jane Doe", "jane@example.com", ""));
    let policy = MergePolicy {
        fields: [("company".to_string(), FieldPolicy::Manual)].into(),
        ..MergePolicy::default()
    };
    let e = engine(store.clone(), &a, &b, policy);
    round(&e).await;
    round(&e).await;
    let (bid, _) = b.live(ObjectKind::Contact).into_iter().next().unwrap();
    let set_company = |name: &'static str| {
        move |r: &mut Record| {
            if let Record::Contact(c) = r {
                c.company = Some(name.into());
            }
        }
    };
    // Both sides set the company between two rounds.
    a.edit(ObjectKind::Contact, "a1", set_company("Acme Taiwan"));
    b.edit(ObjectKind::Contact, &bid, set_company("Acme HK"));
    let r = round(&e).await;
    assert_eq!(r.total().conflicted, 1, "{}", r.to_table());
    let open = store.conflicts(false).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].detail.field, "company");
    // While it waits, B keeps its value.
    assert_eq!(
        b.get(ObjectKind::Contact, &bid)
            .unwrap()
            .as_contact()
            .unwrap()
            .company
            .as_deref(),
        Some("Acme HK")
    );

    synchub_engine::local::resolve_conflict(
        &store,
        &open[0],
        serde_json::json!("Acme Greater China"),
    )
    .await
    .unwrap();
    round(&e).await;
    for rec in [
        a.get(ObjectKind::Contact, "a1").unwrap(),
        b.get(ObjectKind::Contact, &bid).unwrap(),
    ] {
        assert_eq!(
            rec.as_contact().unwrap().company.as_deref(),
            Some("Acme Greater China")
        );
    }
    assert!(store.conflicts(false).await.unwrap().is_empty());
    round(&e).await;
    assert_eq!(round(&e).await.writes(), 0);
}

#[tokio::test]
async fn same_person_one_contact_edits_flow_sqlite() {
    same_person_in_both_becomes_one_contact_and_edits_flow("sqlite").await;
}
#[tokio::test]
async fn same_person_one_contact_edits_flow_postgres() {
    same_person_in_both_becomes_one_contact_and_edits_flow("postgres").await;
}
#[tokio::test]
async fn throttled_source_is_waited_out_sqlite() {
    throttled_source_is_waited_out("sqlite").await;
}
#[tokio::test]
async fn throttled_source_is_waited_out_postgres() {
    throttled_source_is_waited_out("postgres").await;
}
#[tokio::test]
async fn manual_conflict_resolved_and_pushed_sqlite() {
    manual_conflict_resolved_and_pushed("sqlite").await;
}
#[tokio::test]
async fn manual_conflict_resolved_and_pushed_postgres() {
    manual_conflict_resolved_and_pushed("postgres").await;
}
