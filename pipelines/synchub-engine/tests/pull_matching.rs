//! Per-pull probabilistic matching: a contact arriving through a shop that
//! shares no email and no phone with an existing contact still meets it by
//! name, birth date and address, and is merged (at or above the auto-merge
//! probability) or created and queued for review (in the band) inside the
//! page's transaction; a same-name stranger whose email and phone both
//! differ is kept apart. SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use synchub_core::merge::MergePolicy;
use synchub_core::model::{Address, Contact};
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions, RunReport};
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

fn person(name: &str, email: &str, phone: &str) -> Contact {
    Contact {
        full_name: Some(name.into()),
        emails: [email]
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| e.to_string())
            .collect(),
        phones: [phone]
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.to_string())
            .collect(),
        ..Contact::default()
    }
}

fn at_home(mut c: Contact, line1: &str, born: (i32, u32, u32)) -> Contact {
    c.addresses = vec![Address {
        line1: Some(line1.into()),
        city: Some("Kowloon".into()),
        country: Some("HK".into()),
        ..Address::default()
    }];
    c.birth_date = NaiveDate::from_ymd_opt(born.0, born.1, born.2);
    c
}

fn engine(store: Store, crm: &MemorySystem, shop: &MemorySystem) -> Engine {
    let conn = |name: &str, sys: &MemorySystem| Connection {
        name: name.into(),
        connector: Arc::new(sys.connector(50)),
        direction: Direction::Pull,
        objects: vec![ObjectKind::Contact],
        region: Some("HK".into()),
    };
    Engine::new(
        store,
        "pull-matching",
        vec![conn("crm", crm), conn("shop", shop)],
        MergePolicy::default(),
        BTreeMap::new(),
    )
}

async fn run(e: &Engine, dry_run: bool) -> RunReport {
    let r = e
        .run(&RunOptions {
            dry_run,
            ..RunOptions::default()
        })
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r
}

async fn shop_row_meets_existing_contact_by_fuzzy_evidence(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let (crm, shop) = (MemorySystem::new("crm"), MemorySystem::new("shop"));
    // GIVEN two contacts already in the CRM
    crm.put(
        "c1",
        Record::Contact(at_home(
            person("陳大文", "tai.man@example.hk", "+852 9123 4567"),
            "12 Nathan Road",
            (1980, 5, 12),
        )),
    );
    crm.put(
        "c2",
        Record::Contact(person("Wing Kei Lam", "wk.lam@example.hk", "6123 9876")),
    );
    let e = engine(store.clone(), &crm, &MemorySystem::new("empty"));
    run(&e, false).await;
    assert_eq!(
        store
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        2
    );

    // AND a shop whose rows share no email and no phone with them:
    // the same 陳大文, romanized, at the same address with the same birth date;
    shop.put(
        "s1",
        Record::Contact(at_home(
            person("Chan Tai Man", "tmchan@shopmail.example", ""),
            "12 Nathan Rd",
            (1980, 5, 12),
        )),
    );
    // a row with only the name of Wing Kei Lam (a real question for a person);
    shop.put("s2", Record::Contact(person("Wing Kei Lam", "", "")));
    // and a namesake whose email and phone both differ (a stranger).
    shop.put(
        "s3",
        Record::Contact(person("Wing Kei Lam", "lamwk@other.example", "9876 1234")),
    );
    let e = engine(store.clone(), &crm, &shop);

    // WHEN the pull runs dry (its page transaction rolled back)
    let dry = run(&e, true).await;
    // THEN the matcher decided, but nothing of it was kept
    assert_eq!(dry.total().fuzzy_merged, 1, "{dry:#?}");
    assert!(dry.total().fuzzy_queued >= 1, "{dry:#?}");
    assert_eq!(
        store
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store.reviews(true).await.unwrap().is_empty());

    // WHEN it runs for real
    let r = run(&e, false).await;
    let shop_stream = r.total();
    // THEN s1 merged into 陳大文 by fuzzy evidence alone
    assert_eq!(shop_stream.fuzzy_merged, 1, "{}", r.to_table());
    assert_eq!(shop_stream.merged, 1);
    let contacts = store.records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(
        contacts.len(),
        4,
        "s2 and s3 are new contacts: {contacts:#?}"
    );
    let chan = contacts
        .iter()
        .find(|c| {
            c.record
                .as_contact()
                .is_some_and(|c| c.emails.iter().any(|e| e == "tai.man@example.hk"))
        })
        .unwrap();
    let emails = &chan.record.as_contact().unwrap().emails;
    assert!(
        emails.iter().any(|e| e == "tmchan@shopmail.example"),
        "the shop's email joined the existing contact: {emails:?}"
    );
    // AND s2 waits for review with the existing Wing Kei Lam; s3, whose
    // email and phone both differ from it, does not (it may be queued with
    // s2, which has nothing but the name)
    let reviews = store.reviews(true).await.unwrap();
    let pair = |x: &str, y: &str| {
        reviews
            .iter()
            .find(|r| (r.left_id == x && r.right_id == y) || (r.left_id == y && r.right_id == x))
    };
    let lam = contacts
        .iter()
        .find(|c| {
            c.record
                .as_contact()
                .is_some_and(|c| c.emails.iter().any(|e| e == "wk.lam@example.hk"))
        })
        .unwrap();
    let name_only = contacts
        .iter()
        .find(|c| {
            c.record
                .as_contact()
                .is_some_and(|c| c.emails.is_empty() && c.phones.is_empty())
        })
        .unwrap();
    let queued = pair(&name_only.id, &lam.id).expect("s2 queued with Wing Kei Lam");
    assert!(queued.probability >= 0.5 && queued.probability < 0.99);
    let stranger = contacts
        .iter()
        .find(|c| {
            c.record
                .as_contact()
                .is_some_and(|c| c.emails.iter().any(|e| e == "lamwk@other.example"))
        })
        .unwrap();
    assert!(pair(&stranger.id, &lam.id).is_none(), "{reviews:#?}");
    assert!(pair(&stranger.id, &chan.id).is_none());
    assert_eq!(shop_stream.fuzzy_queued as usize, reviews.len());
    // AND the run reports the model it scored with
    let matcher = shop_stream.matcher.expect("the pull matcher is reported");
    assert_eq!(matcher.auto_merge_threshold, 0.99);
    assert!(matcher.model.prior < 0.0);

    // WHEN the shop is pulled again THEN nothing is matched twice
    let again = run(&e, false).await;
    assert_eq!(again.total().fuzzy_merged, 0);
    assert_eq!(store.reviews(true).await.unwrap().len(), reviews.len());
}

#[tokio::test]
async fn shop_row_meets_existing_contact_by_fuzzy_evidence_sqlite() {
    shop_row_meets_existing_contact_by_fuzzy_evidence("sqlite").await;
}
#[tokio::test]
async fn shop_row_meets_existing_contact_by_fuzzy_evidence_postgres() {
    shop_row_meets_existing_contact_by_fuzzy_evidence("postgres").await;
}
