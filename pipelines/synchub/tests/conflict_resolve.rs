//! A manual conflict resolved through the command line
//! (`synchub conflicts resolve ID --take local|remote|VALUE`) against a
//! file database, then pushed out to every connected system by the engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_store::Store;
use synchub_testkit::{MemorySystem, TestDb};

fn engine(store: &Store, systems: &[(&str, &MemorySystem)]) -> Engine {
    let conns = systems
        .iter()
        .map(|(name, sys)| Connection {
            name: name.to_string(),
            connector: Arc::new(sys.connector(10)),
            direction: Direction::TwoWay,
            objects: vec![ObjectKind::Contact],
            region: Some("HK".into()),
        })
        .collect();
    let policy = MergePolicy {
        default: FieldPolicy::Manual,
        ..MergePolicy::default()
    };
    Engine::new(store.clone(), "cli-resolve", conns, policy, BTreeMap::new())
}

fn synchub(db: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .output()
        .expect("run synchub");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "synchub {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn field(r: &Record, f: fn(&Contact) -> Option<String>) -> Option<String> {
    r.as_contact().and_then(f)
}

#[tokio::test]
async fn manual_conflict_resolved_through_the_cli_reaches_every_system() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let (a, b, c) = (
        MemorySystem::new("a"),
        MemorySystem::new("b"),
        MemorySystem::new("c"),
    );
    a.put(
        "a1",
        Record::Contact(Contact {
            full_name: Some("陳大文".into()),
            emails: vec!["tai.man@example.hk".into()],
            ..Contact::default()
        }),
    );
    let e = engine(&store, &[("a", &a), ("b", &b), ("c", &c)]);
    for _ in 0..2 {
        e.run(&RunOptions::default()).await.unwrap();
    }
    let (bid, _) = b.live(ObjectKind::Contact).into_iter().next().unwrap();

    // GIVEN A and B set company and title differently between two rounds
    a.edit(ObjectKind::Contact, "a1", |r| {
        if let Record::Contact(c) = r {
            c.company = Some("Acme Taiwan".into());
            c.title = Some("Buyer".into());
        }
    });
    b.edit(ObjectKind::Contact, &bid, |r| {
        if let Record::Contact(c) = r {
            c.company = Some("Acme HK".into());
            c.title = Some("Head Buyer".into());
        }
    });
    e.run(&RunOptions::default()).await.unwrap();
    let open = store.conflicts(false).await.unwrap();
    assert_eq!(open.len(), 2, "{open:#?}");
    let listed = synchub(&db.url, &["conflicts", "list"]);
    for c in &open {
        assert!(listed.contains(&c.detail.field), "{listed}");
    }

    // WHEN an operator takes B's company and types a title
    let by_field = |f: &str| open.iter().find(|c| c.detail.field == f).unwrap().id;
    synchub(
        &db.url,
        &[
            "conflicts",
            "resolve",
            &by_field("company").to_string(),
            "--take",
            "remote",
        ],
    );
    synchub(
        &db.url,
        &[
            "conflicts",
            "resolve",
            &by_field("title").to_string(),
            "--take",
            "Purchasing Lead",
        ],
    );
    assert!(store.conflicts(false).await.unwrap().is_empty());
    e.run(&RunOptions::default()).await.unwrap();

    // THEN every system holds the chosen values
    let crm = store.records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(crm.len(), 1);
    let mut copies = vec![crm[0].record.clone()];
    for sys in [&a, &b, &c] {
        let live = sys.live(ObjectKind::Contact);
        assert_eq!(live.len(), 1, "one copy per system");
        copies.extend(live.into_values());
    }
    for r in &copies {
        assert_eq!(field(r, |c| c.company.clone()).as_deref(), Some("Acme HK"));
        assert_eq!(
            field(r, |c| c.title.clone()).as_deref(),
            Some("Purchasing Lead")
        );
    }
    // ...and the next rounds write nothing.
    e.run(&RunOptions::default()).await.unwrap();
    let writes = (a.writes(), b.writes(), c.writes());
    let quiet = e.run(&RunOptions::default()).await.unwrap();
    assert_eq!(quiet.writes(), 0, "{}", quiet.to_table());
    assert_eq!((a.writes(), b.writes(), c.writes()), writes);
}
