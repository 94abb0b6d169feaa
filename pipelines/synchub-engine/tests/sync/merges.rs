//! Contact merges and unmerges, and matching a pulled record to an existing
//! contact, on SQLite and PostgreSQL.

use synchub_core::merge::survivorship::{Survivorship, SurvivorshipRules};
use synchub_core::merge::MergePolicy;
use synchub_core::model::Contact;
use synchub_core::{ObjectKind, Record};
use synchub_engine::{RunOptions, RunReport};
use synchub_store::records::StoredRecord;

use crate::harness::{company, World};

fn contact(name: &str, email: &str, company: Option<&str>, phone: Option<&str>) -> Record {
    Record::Contact(Contact {
        full_name: Some(name.into()),
        emails: vec![email.into()],
        company: company.map(Into::into),
        phones: phone.map(|p| vec![p.to_string()]).unwrap_or_default(),
        ..Contact::default()
    })
}

/// Pulls every system into the CRM without pushing anything.
async fn pull_only(w: &World) {
    let e = w.engine_in(&[]);
    let mut report = RunReport::default();
    for c in e.connections() {
        e.pull_stream(c, ObjectKind::Contact, &RunOptions::default(), &mut report)
            .await
            .unwrap();
    }
}

async fn crm_all(w: &World) -> Vec<StoredRecord> {
    w.store().records(ObjectKind::Contact, true).await.unwrap()
}

async fn by_email(w: &World, email: &str) -> StoredRecord {
    crm_all(w)
        .await
        .into_iter()
        .find(|r| {
            !r.deleted
                && r.record
                    .as_contact()
                    .unwrap()
                    .emails
                    .iter()
                    .any(|e| e == email)
        })
        .expect("live contact")
}

fn live(w: &World, sys: &str) -> Vec<Record> {
    w.sys(sys).live(ObjectKind::Contact).into_values().collect()
}

/// GIVEN one person known to A by one address and to B by another, WHEN
/// the two CRM contacts are merged THEN the golden record (survivorship
/// rules, emails united) replaces both copies in both systems, the history
/// keeps the before-images, and a later record with the loser's address
/// attaches to the survivor. WHEN the merge is undone THEN both contacts,
/// their keys and links are as before and each system holds its own again.
async fn merge_and_unmerge_restore_everything(backend: &str) {
    let w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    w.sys("a").put(
        "a1",
        contact("陳大文", "tai.man@example.hk", Some("Acme"), None),
    );
    w.sys("b").put(
        "b1",
        contact(
            "Chan Tai Man",
            "tm.chan@work.hk",
            Some("Acme Trading Ltd"),
            Some("+852 9123 4567"),
        ),
    );
    pull_only(&w).await;
    let (s, l) = (
        by_email(&w, "tai.man@example.hk").await,
        by_email(&w, "tm.chan@work.hk").await,
    );
    let before = crm_all(&w).await;
    let s_links = w.store().links_of(&s.id).await.unwrap();
    let l_links = w.store().links_of(&l.id).await.unwrap();

    let rules = SurvivorshipRules {
        default: Survivorship::MostRecent,
        fields: [
            ("company".to_string(), Survivorship::MostComplete),
            (
                "full_name".to_string(),
                Survivorship::SourcePriority(vec!["a".into()]),
            ),
        ]
        .into(),
    };
    let e = w.engine_in(&[]);
    let evidence = serde_json::json!({"score": 0.97, "keys": ["phone", "name"]});
    let out = e
        .merge_contacts(&s.id, &l.id, evidence.clone(), &rules)
        .await
        .unwrap();
    assert!(out.from_loser.contains(&"company".to_string()), "{out:?}");

    // The golden record: A's spelling of the name (source priority, though
    // B's is more recent), the fuller company, both emails, B's phone.
    let g = w.store().record(&s.id).await.unwrap().unwrap();
    let gc = g.record.as_contact().unwrap().clone();
    assert_eq!(gc.full_name.as_deref(), Some("陳大文"));
    assert_eq!(gc.company.as_deref(), Some("Acme Trading Ltd"));
    assert_eq!(gc.emails, vec!["tai.man@example.hk", "tm.chan@work.hk"]);
    assert_eq!(gc.phones, vec!["+85291234567"]);
    let lr = w.store().record(&l.id).await.unwrap().unwrap();
    assert!(lr.deleted);
    assert_eq!(lr.merged_into.as_deref(), Some(s.id.as_str()));
    // Every source value stays attached: both links now belong to the survivor.
    let links = w.store().links_of(&s.id).await.unwrap();
    assert_eq!(links.len(), 2, "{links:#?}");
    assert!(w.store().links_of(&l.id).await.unwrap().is_empty());
    let hist = w.store().merges(false).await.unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].detail.evidence, evidence);
    assert_eq!(hist[0].detail.loser_before.record, l.record);
    assert_eq!(hist[0].detail.survivor_before.record, s.record);
    assert_eq!(hist[0].detail.links_before.len(), l_links.len());

    // Pushed out: each system holds one record, the golden one.
    w.settle(5).await;
    for sys in ["a", "b"] {
        let recs = live(&w, sys);
        assert_eq!(recs.len(), 1, "{sys}: {recs:#?}");
        assert_eq!(recs[0].as_contact().unwrap().emails, gc.emails, "{sys}");
        assert_eq!(company(&recs[0]).as_deref(), Some("Acme Trading Ltd"));
    }
    // Undo: both contacts as before, then each system its own copies.
    e.unmerge(out.merge_id).await.unwrap();
    assert!(
        e.unmerge(out.merge_id).await.is_err(),
        "an undone merge cannot be undone twice"
    );
    let after = crm_all(&w).await;
    for b in &before {
        let a = after.iter().find(|a| a.id == b.id).unwrap();
        assert_eq!(
            (&a.record, a.deleted, &a.merged_into),
            (&b.record, b.deleted, &b.merged_into)
        );
        assert_eq!(a.field_times, b.field_times);
    }
    let restored = w.store().links_of(&l.id).await.unwrap();
    let ids = |ls: &[synchub_store::links::Link]| {
        let mut v: Vec<(String, String)> = ls
            .iter()
            .map(|l| (l.connection.clone(), l.external_id.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(&restored),
        ids(&l_links),
        "the loser's links point at it again"
    );
    let s_now: Vec<_> = w
        .store()
        .links_of(&s.id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids(&s_now), ids(&s_links));
    assert!(w.store().merges(false).await.unwrap().is_empty());
    assert!(w.store().merges(true).await.unwrap()[0].undone_at.is_some());

    w.settle(6).await;
    for sys in ["a", "b"] {
        let recs = live(&w, sys);
        assert_eq!(recs.len(), 2, "{sys} holds both people again: {recs:#?}");
    }
    let live_crm = w.store().records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(live_crm.len(), 2);
    for r in live_crm {
        let copy_a = w
            .find("a", &r.record.as_contact().unwrap().emails[0])
            .unwrap()
            .1;
        assert_eq!(
            company(&copy_a),
            company(&r.record),
            "A holds the restored values"
        );
    }
}

/// A merge where both systems already hold both people deletes the loser's
/// copies (delete policy `delete`), and an unmerge creates them anew.
async fn merge_deletes_duplicate_copies_and_unmerge_recreates_them(backend: &str) {
    let w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    w.sys("a")
        .put("a1", contact("林美玲", "meiling@example.tw", None, None));
    w.sys("b").put(
        "b1",
        contact("Lin Mei-Ling", "ml.lin@shop.tw", Some("Shop"), None),
    );
    w.settle(5).await;
    assert_eq!(live(&w, "a").len(), 2);
    let (s, l) = (
        by_email(&w, "meiling@example.tw").await,
        by_email(&w, "ml.lin@shop.tw").await,
    );
    let e = w.engine_in(&[]);
    let out = e
        .merge_contacts(
            &s.id,
            &l.id,
            serde_json::json!({"by": "operator"}),
            &SurvivorshipRules::default(),
        )
        .await
        .unwrap();
    w.settle(5).await;
    for sys in ["a", "b"] {
        let recs = live(&w, sys);
        assert_eq!(
            recs.len(),
            1,
            "{sys}: the loser's copy is deleted: {recs:#?}"
        );
        assert_eq!(recs[0].as_contact().unwrap().emails.len(), 2);
    }
    e.unmerge(out.merge_id).await.unwrap();
    w.settle(6).await;
    for sys in ["a", "b"] {
        assert_eq!(live(&w, sys).len(), 2, "{sys} holds both again");
        assert!(w.find(sys, "ml.lin@shop.tw").is_some());
    }
    assert_eq!(
        w.store()
            .records(ObjectKind::Contact, false)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// After a merge, a new record with the loser's address attaches to the
/// survivor (the loser's keys moved with it), not to the tombstone.
async fn after_a_merge_the_losers_address_finds_the_survivor(backend: &str) {
    let w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    w.sys("a")
        .put("a1", contact("陳大文", "tai.man@example.hk", None, None));
    w.sys("b")
        .put("b1", contact("Chan Tai Man", "tm.chan@work.hk", None, None));
    pull_only(&w).await;
    let (s, l) = (
        by_email(&w, "tai.man@example.hk").await,
        by_email(&w, "tm.chan@work.hk").await,
    );
    let e = w.engine_in(&[]);
    e.merge_contacts(
        &s.id,
        &l.id,
        serde_json::json!({}),
        &SurvivorshipRules::default(),
    )
    .await
    .unwrap();
    w.settle(5).await;
    w.sys("a")
        .put("a2", contact("Tai Man Chan", "TM.Chan@work.hk", None, None));
    w.settle(5).await;
    let all = w.store().records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].id, s.id);
    assert!(w
        .store()
        .links_of(&s.id)
        .await
        .unwrap()
        .iter()
        .any(|l| l.external_id == "a2"));
}

/// A record pulled from a system that meets an existing contact by email
/// (written differently) attaches to it instead of creating a second.
async fn pull_meeting_existing_contact_by_email_attaches(backend: &str) {
    let w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    w.sys("a")
        .put("a1", contact("陳大文", "Tai.Man@Example.hk", None, None));
    pull_only(&w).await;
    let crm = by_email(&w, "tai.man@example.hk").await;
    w.sys("b").put(
        "b9",
        contact("Chan Tai Man", " TAI.MAN@example.HK ", Some("Acme"), None),
    );
    w.settle(5).await;
    let all = w.store().records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].id, crm.id);
    let links = w.store().links_of(&crm.id).await.unwrap();
    assert!(
        links
            .iter()
            .any(|l| l.connection == "b" && l.external_id == "b9"),
        "{links:#?}"
    );
    assert_eq!(live(&w, "b").len(), 1, "no second copy pushed to B");
    assert_eq!(company(&all[0].record).as_deref(), Some("Acme"));
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
    merge_and_unmerge_restore_everything,
    merge_deletes_duplicate_copies_and_unmerge_recreates_them,
    after_a_merge_the_losers_address_finds_the_survivor,
    pull_meeting_existing_contact_by_email_attaches,
);
