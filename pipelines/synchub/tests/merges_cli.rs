//! `synchub merges list|show|unmerge` against a file database: a merge made
//! by the engine is listed, undone from the command line, and the restored
//! contacts reach the connected system on the next run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;

use synchub_core::merge::survivorship::SurvivorshipRules;
use synchub_core::merge::MergePolicy;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_testkit::{MemorySystem, TestDb};

fn synchub(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(args)
        .env("SYNCHUB_DATABASE_URL", db)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run synchub")
}

fn person(name: &str, email: &str, company: &str) -> Record {
    Record::Contact(Contact {
        full_name: Some(name.into()),
        emails: vec![email.into()],
        company: Some(company.into()),
        ..Contact::default()
    })
}

#[tokio::test]
async fn merge_listed_and_undone_through_the_cli() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let a = MemorySystem::new("a");
    a.put("a1", person("陳大文", "tai.man@example.hk", "Acme"));
    a.put(
        "a2",
        person("Chan Tai Man", "tm.chan@work.hk", "Acme Trading"),
    );
    let conn = Connection {
        name: "a".into(),
        connector: Arc::new(a.connector(10)),
        direction: Direction::TwoWay,
        objects: vec![ObjectKind::Contact],
        region: Some("HK".into()),
    };
    let e = Engine::new(
        store.clone(),
        "merges-cli",
        vec![conn],
        MergePolicy::default(),
        BTreeMap::new(),
    );
    e.run(&RunOptions::default()).await.unwrap();
    let before = store.records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(before.len(), 2);
    let out = e
        .merge_contacts(
            &before[0].id,
            &before[1].id,
            serde_json::json!({"score": 0.91}),
            &SurvivorshipRules::default(),
        )
        .await
        .unwrap();
    e.run(&RunOptions::default()).await.unwrap();
    assert_eq!(
        store
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        1
    );

    // GIVEN the merge is listed with its evidence
    let list = synchub(&db.url, &["merges", "list"]);
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(&before[1].id) && text.contains("0.91"),
        "{text}"
    );
    // and as JSON for programs
    let json = synchub(&db.url, &["merges", "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("merges list json");
    assert_eq!(
        v["merges"][0]["loser"],
        serde_json::json!(before[1].id),
        "{v}"
    );
    assert_eq!(v["merges"][0]["id"], serde_json::json!(out.merge_id), "{v}");
    let show = synchub(&db.url, &["merges", "show", &out.merge_id.to_string()]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("loser_before"));

    // WHEN it is undone from the command line
    let undo = synchub(&db.url, &["merges", "unmerge", &out.merge_id.to_string()]);
    assert!(
        undo.status.success(),
        "{}",
        String::from_utf8_lossy(&undo.stderr)
    );

    // THEN both contacts are back as they were, and the system gets them
    let after = store.records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(after.len(), 2);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.id, &b.record), (&a.id, &a.record));
    }
    e.run(&RunOptions::default()).await.unwrap();
    e.run(&RunOptions::default()).await.unwrap();
    let live = a.live(ObjectKind::Contact);
    let companies: Vec<Option<String>> = live
        .values()
        .map(|r| r.as_contact().unwrap().company.clone())
        .collect();
    assert_eq!(live.len(), 2, "{live:#?}");
    assert!(companies.contains(&Some("Acme".into())));
    assert!(companies.contains(&Some("Acme Trading".into())));

    // A second undo is refused with one clear line.
    let again = synchub(&db.url, &["merges", "unmerge", &out.merge_id.to_string()]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        err.contains("already undone") && !err.contains("panicked"),
        "{err}"
    );
    assert_eq!(synchub(&db.url, &["merges", "list"]).status.code(), Some(0));
}
