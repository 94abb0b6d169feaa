//! A planned page written in bulk (`page::write_page`), on SQLite and
//! PostgreSQL: what is read back is exactly what was written, on
//! PostgreSQL's packed-array path (NULLs, empty strings, text with control
//! characters inside JSON) and on its fallback (an id holding the packing's
//! separator); replaced keys drop the old ones; a capped key lookup leaves
//! out keys shared by more records than the cap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::json;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_store::links::{self, Link};
use synchub_store::page::{write_page, PageWrites};
use synchub_store::records::{self, RecordWrite};
use synchub_testkit::TestDb;

fn contact(name: &str, email: &str) -> Record {
    let mut c = Contact {
        full_name: Some(name.into()),
        emails: vec![email.into()],
        ..Contact::default()
    };
    c.custom
        .insert("note".into(), json!("tab\there \u{1f} unit \u{1e} record"));
    Record::Contact(c)
}

fn write(id: &str, record: Record, version: i64) -> RecordWrite {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    RecordWrite {
        id: id.into(),
        record,
        version,
        deleted: false,
        field_times: BTreeMap::from([("full_name".to_string(), at)]),
    }
}

fn link(ext: &str, crm: &str, version: Option<&str>) -> Link {
    Link {
        connection: "shop".into(),
        object: ObjectKind::Contact,
        external_id: ext.into(),
        crm_id: crm.into(),
        remote_version: version.map(str::to_string),
        remote_updated_at: None,
        snapshot: Some(serde_json::Map::from_iter([("a".to_string(), json!("b"))])),
        snapshot_hash: Some("h".into()),
        deleted: false,
    }
}

async fn page_reads_back_as_written(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    // GIVEN a page of three new contacts: one plain, one whose id holds the
    // packing's separator (PostgreSQL's fallback path), links with a NULL
    // and an empty remote version
    let odd = "c\u{1f}2".to_string();
    let page = PageWrites {
        object: Some(ObjectKind::Contact),
        records: vec![
            write("c1", contact("陳大文", "a@example.com"), 1),
            write(&odd, contact("Ana García", "b@example.com"), 1),
            write("c3", contact("Wei Wang", "c@example.com"), 1),
        ],
        new_keys: vec![
            (
                "c1".into(),
                vec!["email:a@example.com".into(), "fuzzy:1".into()],
            ),
            (
                odd.clone(),
                vec!["email:b@example.com".into(), "fuzzy:1".into()],
            ),
            (
                "c3".into(),
                vec!["email:c@example.com".into(), "fuzzy:1".into()],
            ),
        ],
        links: vec![
            link("x1", "c1", None),
            link("x2", &odd, Some("")),
            link("x3", "c3", Some("7")),
        ],
        ..PageWrites::default()
    };
    // WHEN it is written in one transaction
    let mut tx = store.begin().await.unwrap();
    write_page(&mut tx, &page).await.unwrap();
    tx.commit().await.unwrap();

    // THEN every record, link and key reads back exactly
    let mut conn = store.pool().acquire().await.unwrap();
    let ids: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
    let stored = records::get_many(&mut conn, &ids).await.unwrap();
    for w in &page.records {
        let s = &stored[&w.id];
        assert_eq!(
            (&s.record, s.version, s.deleted, &s.field_times),
            (&w.record, w.version, w.deleted, &w.field_times),
            "{backend}"
        );
        assert_eq!(s.hash, w.record.content_hash());
    }
    let exts: Vec<String> = vec!["x1".into(), "x2".into(), "x3".into()];
    let got = links::by_external_ids(&mut conn, "shop", ObjectKind::Contact, &exts)
        .await
        .unwrap();
    for l in &page.links {
        assert_eq!(&got[&l.external_id], l, "{backend}");
    }
    let keys = records::keys_of(&mut conn, &ids).await.unwrap();
    assert_eq!(keys["c1"], vec!["email:a@example.com", "fuzzy:1"]);
    assert_eq!(keys[&odd], vec!["email:b@example.com", "fuzzy:1"]);

    // AND a capped lookup keeps a key three records share only when the
    // cap allows three
    let probe = vec!["fuzzy:1".to_string(), "email:a@example.com".to_string()];
    let (hits, crowded) = records::find_by_keys_capped(&mut conn, ObjectKind::Contact, &probe, 2)
        .await
        .unwrap();
    assert_eq!(
        hits,
        vec![("email:a@example.com".to_string(), "c1".to_string())],
        "{backend}"
    );
    assert_eq!(crowded, vec!["fuzzy:1".to_string()]);
    let (hits, crowded) = records::find_by_keys_capped(&mut conn, ObjectKind::Contact, &probe, 3)
        .await
        .unwrap();
    assert_eq!(hits.len(), 4, "{backend}: {hits:?}");
    assert!(crowded.is_empty());
    drop(conn);

    // WHEN a later page changes c1's email (its keys replaced) and a link
    let later = PageWrites {
        object: Some(ObjectKind::Contact),
        records: vec![write("c1", contact("陳大文", "new@example.com"), 2)],
        replaced_keys: vec![("c1".into(), vec!["email:new@example.com".into()])],
        links: vec![link("x1", "c1", Some("8"))],
        ..PageWrites::default()
    };
    let mut tx = store.begin().await.unwrap();
    write_page(&mut tx, &later).await.unwrap();
    tx.commit().await.unwrap();
    // THEN the old keys are gone, the record and link replaced
    let mut conn = store.pool().acquire().await.unwrap();
    let keys = records::keys_of(&mut conn, &["c1".to_string()])
        .await
        .unwrap();
    assert_eq!(keys["c1"], vec!["email:new@example.com"], "{backend}");
    let s = records::get_many(&mut conn, &["c1".to_string()])
        .await
        .unwrap();
    assert_eq!(s["c1"].version, 2);
    assert_eq!(s["c1"].record, later.records[0].record);
    let got = links::by_external_ids(&mut conn, "shop", ObjectKind::Contact, &exts)
        .await
        .unwrap();
    assert_eq!(got["x1"].remote_version.as_deref(), Some("8"));
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn page_reads_back_as_written_sqlite() {
    page_reads_back_as_written("sqlite").await;
}

#[tokio::test]
async fn page_reads_back_as_written_postgres() {
    page_reads_back_as_written("postgres").await;
}
