//! Bad or awkward input that must never block a stream nor vanish: values
//! too long for an index, ids repeated within a page, several source rows of
//! one page matching one CRM record. On SQLite and PostgreSQL.

use std::collections::BTreeSet;

use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::{ObjectKind, Record, RemoteRecord};

use crate::harness::{company, person, World};

fn remote(id: &str, record: Record) -> RemoteRecord {
    RemoteRecord {
        external_id: id.to_string(),
        version: None,
        updated_at: None,
        deleted: false,
        raw: serde_json::json!({ "id": id }),
        record: Some(record),
    }
}

fn with_company(mut r: Record, v: &str) -> Record {
    if let Record::Contact(c) = &mut r {
        c.company = Some(v.into());
    }
    r
}

/// GIVEN a page with a 5 MB external id and a 5 MB email among good rows
/// WHEN it is applied
/// THEN both become dead letters naming the id and the field, the good rows
///      land, and applying the page again changes nothing and fails nothing.
async fn oversized_values_are_dead_letters_and_the_page_lands(backend: &str) {
    let w = World::new(backend, &["a"], MergePolicy::default()).await;
    let engine = w.engine_in(&[]);
    let huge = "x".repeat(5 * 1024 * 1024);
    let page = vec![
        remote("ok-1", person("陳大文", "tai.man@example.hk")),
        remote(&huge, person("Huge Id", "huge.id@example.com")),
        remote(
            "huge-email",
            person("Huge Mail", &format!("{huge}@example.com")),
        ),
        remote("ok-2", person("林美玲", "meiling@example.tw")),
    ];
    for attempt in 0..2 {
        let r = engine
            .apply_remote("a", ObjectKind::Contact, page.clone())
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: the page failed: {e}"));
        assert_eq!(r.dead_lettered, 2, "attempt {attempt}: {r:?}");
        if attempt == 0 {
            assert_eq!(r.created, 2, "{r:?}");
        }
    }
    assert!(w.crm("tai.man@example.hk").await.is_some());
    assert!(w.crm("meiling@example.tw").await.is_some());
    assert_eq!(
        w.store()
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        2
    );
    let dead = w.store().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2, "a replay adds no second row: {dead:#?}");
    let by_id = dead
        .iter()
        .find(|d| d.reason.contains("external id"))
        .expect("a dead letter for the long id");
    assert!(
        by_id.reason.contains("item 2") && by_id.reason.contains("5242880 bytes"),
        "{}",
        by_id.reason
    );
    assert!(by_id.external_id.as_deref().unwrap().len() < 100);
    let by_email = dead
        .iter()
        .find(|d| d.external_id.as_deref() == Some("huge-email"))
        .expect("a dead letter for the long email");
    assert!(
        by_email.reason.starts_with("field `emails`"),
        "{}",
        by_email.reason
    );
}

/// GIVEN a page where two items carry the same id
/// WHEN it is applied
/// THEN the first is applied, the later one is a dead letter naming both
///      items, and the report says so (nothing merged silently).
async fn duplicate_id_in_a_page_is_a_dead_letter(backend: &str) {
    let w = World::new(backend, &["a"], MergePolicy::default()).await;
    let engine = w.engine_in(&[]);
    let page = vec![
        remote("7", person("陳大文", "tai.man@example.hk")),
        remote("8", person("林美玲", "meiling@example.tw")),
        remote("7", person("王小明", "siu.ming@example.hk")),
    ];
    let r = engine
        .apply_remote("a", ObjectKind::Contact, page)
        .await
        .unwrap();
    assert_eq!((r.created, r.updated, r.dead_lettered), (2, 0, 1), "{r:?}");
    assert!(w.crm("tai.man@example.hk").await.is_some());
    assert!(w.crm("siu.ming@example.hk").await.is_none());
    let dead = w.store().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].external_id.as_deref(), Some("7"));
    assert!(
        dead[0].reason.contains("duplicate id `7`") && dead[0].reason.contains("items 1 and 3"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].payload.contains("\"7\""));
}

/// GIVEN a CRM contact, and one page of another source holding three rows
///       of that person (same email), each with another company
/// WHEN the page is applied under the manual policy
/// THEN every conflict row shows as remote the company of the very row it
///      names, one row per source row, and the report counts them alike.
async fn conflicts_of_rows_merged_into_one_record_name_their_own_row(backend: &str) {
    let policy = MergePolicy {
        default: FieldPolicy::Manual,
        ..MergePolicy::default()
    };
    let w = World::new(backend, &["crm", "b"], policy).await;
    let email = "tai.man@example.hk";
    w.sys("crm")
        .put("p1", with_company(person("陳大文", email), "CRM Ltd"));
    w.round_in(&[0]).await;
    let engine = w.engine_in(&[1]);
    let rows = [("r1", "One Ltd"), ("r2", "Two Ltd"), ("r3", "Three Ltd")];
    let page: Vec<RemoteRecord> = rows
        .iter()
        .map(|(id, co)| remote(id, with_company(person("陳大文", email), co)))
        .collect();
    let r = engine
        .apply_remote("b", ObjectKind::Contact, page)
        .await
        .unwrap();
    let open = w.store().conflicts(false).await.unwrap();
    let company_rows: Vec<_> = open
        .iter()
        .filter(|c| c.detail.field == "company")
        .collect();
    assert_eq!(company_rows.len(), rows.len(), "{open:#?}");
    for (id, co) in rows {
        let c = company_rows
            .iter()
            .find(|c| c.detail.external_id == id)
            .unwrap_or_else(|| panic!("no conflict names {id}: {open:#?}"));
        assert_eq!(c.detail.remote, format!("\"{co}\""), "{c:#?}");
        assert_eq!(c.detail.local, "\"CRM Ltd\"", "{c:#?}");
    }
    let named: BTreeSet<(&str, &str)> = open
        .iter()
        .map(|c| (c.detail.crm_id.as_str(), c.detail.external_id.as_str()))
        .collect();
    assert_eq!(r.conflicted, named.len() as u64, "{r:?}");
    assert_eq!(
        w.crm(email).await.as_ref().and_then(company).as_deref(),
        Some("CRM Ltd")
    );
    // A replay of the same page adds no row and changes none.
    let again = w.engine_in(&[1]);
    let page: Vec<RemoteRecord> = rows
        .iter()
        .map(|(id, co)| remote(id, with_company(person("陳大文", email), co)))
        .collect();
    again
        .apply_remote("b", ObjectKind::Contact, page)
        .await
        .unwrap();
    assert_eq!(w.store().conflicts(false).await.unwrap(), open);
}

/// A source that serves two fixed pages.
struct TwoPages([Vec<RemoteRecord>; 2]);

#[async_trait::async_trait]
impl synchub_core::Connector for TwoPages {
    fn kind(&self) -> &'static str {
        "two_pages"
    }
    fn objects(&self) -> Vec<synchub_core::connector::ObjectSpec> {
        vec![synchub_core::connector::ObjectSpec {
            kind: ObjectKind::Contact,
            can_read: true,
            incremental: true,
            can_write: false,
        }]
    }
    async fn check(&self) -> Result<(), synchub_core::ConnectorError> {
        Ok(())
    }
    async fn pull(
        &self,
        _object: ObjectKind,
        from: Option<&synchub_core::Cursor>,
    ) -> Result<synchub_core::Page, synchub_core::ConnectorError> {
        let second = from.is_some_and(|c| c.0["page"] == 1);
        Ok(synchub_core::Page {
            records: self.0[usize::from(second)].clone(),
            rejected: Vec::new(),
            next: Some(synchub_core::Cursor(
                serde_json::json!({ "page": if second { 2 } else { 1 } }),
            )),
            done: second,
        })
    }
}

/// GIVEN a source whose second page repeats an id of the first with
///       nothing saying it is newer, and repeats another with a later time
/// WHEN a run reads both pages
/// THEN the report warns about the first (naming both reads), not about
///      the record that was simply updated during the run.
async fn id_repeated_across_pages_of_a_run_is_reported(backend: &str) {
    let w = World::new(backend, &[], MergePolicy::default()).await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let at = |mut r: RemoteRecord, t| {
        r.updated_at = Some(t);
        r
    };
    let pages = [
        vec![
            at(remote("u1", person("陳大文", "tai.man@example.hk")), t0),
            remote("d2", person("林美玲", "meiling@example.tw")),
        ],
        vec![
            remote("d2", person("王小明", "siu.ming@example.hk")),
            at(
                remote("u1", person("陳大文", "tai.man@example.hk")),
                t0 + chrono::Duration::minutes(1),
            ),
        ],
    ];
    let engine = synchub_engine::Engine::new(
        w.store(),
        "dup-test",
        vec![synchub_engine::Connection {
            name: "src".into(),
            connector: std::sync::Arc::new(TwoPages(pages)),
            direction: synchub_engine::Direction::Pull,
            objects: vec![ObjectKind::Contact],
            region: None,
        }],
        MergePolicy::default(),
        Default::default(),
    );
    let r = engine
        .run(&synchub_engine::RunOptions::default())
        .await
        .unwrap();
    let s = &r.streams["src.contact"];
    assert_eq!(s.repeated_ids, 1, "{s:?}");
    assert!(
        s.warnings[0]
            .contains("id `d2` was read twice in this run (page 1 item 2 and page 2 item 1)"),
        "{:?}",
        s.warnings
    );
    assert!(r.to_table().contains("warning in src.contact: id `d2`"));
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name("sqlite").await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name("postgres").await;
            })*
        }
    };
}

both!(
    oversized_values_are_dead_letters_and_the_page_lands,
    duplicate_id_in_a_page_is_a_dead_letter,
    conflicts_of_rows_merged_into_one_record_name_their_own_row,
    id_repeated_across_pages_of_a_run_is_reported,
);
