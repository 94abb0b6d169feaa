//! One test per sync rule, each named after it, on SQLite and PostgreSQL.

use chrono::{Duration, Utc};
use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::{ObjectKind, Record};
use synchub_engine::DeletePolicy;

use crate::harness::{company, person, set_company, World};

const P: &str = "tai.man@example.hk";

fn policy(default: FieldPolicy) -> MergePolicy {
    MergePolicy {
        default,
        ..MergePolicy::default()
    }
}

/// A world where A and B both hold one person, linked through the CRM.
async fn linked(backend: &str, names: &[&str], policy: MergePolicy) -> World {
    let w = World::new(backend, names, policy).await;
    w.sys(names[0]).put("p1", person("陳大文", P));
    w.settle(4).await;
    for n in names {
        assert!(
            w.find(n, P).is_some(),
            "{n} holds the person after the first rounds"
        );
    }
    w
}

fn ext(w: &World, sys: &str) -> String {
    w.find(sys, P).expect("linked").0
}

/// Newest: the later edit wins whichever system is pulled first; the CRM
/// compares the source times of the fields, not when it applied them.
async fn newest_later_edit_wins_in_any_pull_order(backend: &str) {
    for order in [[0usize, 1], [1, 0]] {
        let w = linked(backend, &["a", "b"], policy(FieldPolicy::Newest)).await;
        let (ea, eb) = (ext(&w, "a"), ext(&w, "b"));
        let t = Utc::now();
        // GIVEN A set the company a minute ago and B ten seconds ago
        w.sys("a").edit_at(
            ObjectKind::Contact,
            &ea,
            t - Duration::seconds(60),
            set_company("A Ltd"),
        );
        w.sys("b").edit_at(
            ObjectKind::Contact,
            &eb,
            t - Duration::seconds(10),
            set_company("B Ltd"),
        );
        // WHEN a round pulls them in this order
        w.round_in(&order).await;
        w.settle(4).await;
        // THEN B's later edit is everywhere
        let all = w.companies(P).await;
        assert!(
            all.iter().all(|c| c.as_deref() == Some("B Ltd")),
            "order {order:?}: {all:?}"
        );
        assert!(w.store().conflicts(false).await.unwrap().is_empty());
    }
}

/// Clock skew: edits closer than the skew guard are not decided by their
/// clocks; the pair goes to review and nothing is silently lost.
async fn edits_within_clock_skew_go_to_review(backend: &str) {
    let w = linked(backend, &["a", "b"], policy(FieldPolicy::Newest)).await;
    let (ea, eb) = (ext(&w, "a"), ext(&w, "b"));
    let t = Utc::now() - Duration::seconds(30);
    w.sys("a")
        .edit_at(ObjectKind::Contact, &ea, t, set_company("A Ltd"));
    w.sys("b").edit_at(
        ObjectKind::Contact,
        &eb,
        t + Duration::seconds(2),
        set_company("B Ltd"),
    );
    let r = w.round().await;
    assert_eq!(r.total().conflicted, 1, "{}", r.to_table());
    let open = w.store().conflicts(false).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].detail.field, "company");
    assert_eq!(open[0].detail.remote, "\"B Ltd\"");
    // B keeps its value while the conflict waits; nothing overwrote it.
    assert_eq!(
        w.find("b", P).map(|(_, r)| company(&r)),
        Some(Some("B Ltd".into()))
    );

    // Beyond the guard the clocks decide: an edit 10 s later wins.
    let w = linked(backend, &["a", "b"], policy(FieldPolicy::Newest)).await;
    let (ea, eb) = (ext(&w, "a"), ext(&w, "b"));
    w.sys("a").edit_at(
        ObjectKind::Contact,
        &ea,
        t + Duration::seconds(10),
        set_company("A Ltd"),
    );
    w.sys("b")
        .edit_at(ObjectKind::Contact, &eb, t, set_company("B Ltd"));
    w.settle(4).await;
    assert!(w.store().conflicts(false).await.unwrap().is_empty());
    assert!(w
        .companies(P)
        .await
        .iter()
        .all(|c| c.as_deref() == Some("A Ltd")));
}

/// Priority: the first source in the list wins, whatever the clocks say.
async fn priority_first_listed_source_wins(backend: &str) {
    let p = policy(FieldPolicy::Priority(vec![
        "b".into(),
        "crm".into(),
        "a".into(),
    ]));
    let w = linked(backend, &["a", "b"], p).await;
    let (ea, eb) = (ext(&w, "a"), ext(&w, "b"));
    let t = Utc::now();
    w.sys("b").edit_at(
        ObjectKind::Contact,
        &eb,
        t - Duration::seconds(60),
        set_company("B Ltd"),
    );
    w.sys("a").edit_at(
        ObjectKind::Contact,
        &ea,
        t - Duration::seconds(1),
        set_company("A Ltd"),
    );
    w.settle(5).await;
    assert!(w
        .companies(P)
        .await
        .iter()
        .all(|c| c.as_deref() == Some("B Ltd")));
    assert!(w.store().conflicts(false).await.unwrap().is_empty());
}

async fn crm_edit(w: &World, value: &str) {
    let rec = w
        .store()
        .records(ObjectKind::Contact, false)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("one contact");
    let mut r = rec.record.clone();
    set_company(value)(&mut r);
    synchub_engine::local::apply_local_edit(&w.store(), &rec.id, r)
        .await
        .unwrap();
}

/// CRM wins: a same-field edit in a system loses to the CRM's own edit.
async fn crm_wins_over_a_concurrent_remote_edit(backend: &str) {
    let w = linked(backend, &["a", "b"], policy(FieldPolicy::CrmWins)).await;
    let ea = ext(&w, "a");
    w.sys("a")
        .edit(ObjectKind::Contact, &ea, set_company("A Ltd"));
    crm_edit(&w, "CRM Ltd").await;
    w.settle(4).await;
    assert!(w
        .companies(P)
        .await
        .iter()
        .all(|c| c.as_deref() == Some("CRM Ltd")));
}

/// Remote wins: the system's edit replaces the CRM's, and reaches B too.
async fn remote_wins_over_a_concurrent_crm_edit(backend: &str) {
    let w = linked(backend, &["a", "b"], policy(FieldPolicy::RemoteWins)).await;
    crm_edit(&w, "CRM Ltd").await;
    let ea = ext(&w, "a");
    w.sys("a")
        .edit(ObjectKind::Contact, &ea, set_company("A Ltd"));
    w.settle(4).await;
    assert!(w
        .companies(P)
        .await
        .iter()
        .all(|c| c.as_deref() == Some("A Ltd")));
}

/// Manual: the CRM keeps its value, the conflict waits for a person, and the
/// system that raised it is not overwritten meanwhile.
async fn manual_conflict_waits_for_review(backend: &str) {
    let w = linked(backend, &["a", "b"], policy(FieldPolicy::Manual)).await;
    let ea = ext(&w, "a");
    crm_edit(&w, "CRM Ltd").await;
    w.sys("a")
        .edit(ObjectKind::Contact, &ea, set_company("A Ltd"));
    w.round().await;
    w.round().await;
    let open = w.store().conflicts(false).await.unwrap();
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(
        w.companies(P).await,
        vec![
            Some("CRM Ltd".into()),
            Some("A Ltd".into()),
            Some("CRM Ltd".into())
        ]
    );
    let before = w.writes();
    w.round().await;
    assert_eq!(
        w.writes(),
        before,
        "a waiting conflict is not re-pushed every round"
    );
}

/// Set merge: an email added in A and another removed in B both survive.
async fn set_merge_keeps_addition_and_removal(backend: &str) {
    let w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    let mut r = person("林美玲", "meiling@example.tw");
    if let Record::Contact(c) = &mut r {
        c.emails.push("old@example.tw".into());
    }
    w.sys("a").put("p1", r);
    w.settle(4).await;
    let (ea, _) = w.find("a", "meiling@example.tw").unwrap();
    let (eb, _) = w.find("b", "meiling@example.tw").unwrap();
    w.sys("a").edit(ObjectKind::Contact, &ea, |r| {
        if let Record::Contact(c) = r {
            c.emails.push("new@example.tw".into());
        }
    });
    w.sys("b").edit(ObjectKind::Contact, &eb, |r| {
        if let Record::Contact(c) = r {
            c.emails.retain(|e| e != "old@example.tw");
        }
    });
    w.settle(4).await;
    let want = vec![
        "meiling@example.tw".to_string(),
        "new@example.tw".to_string(),
    ];
    let crm = w.crm("meiling@example.tw").await.unwrap();
    assert_eq!(crm.as_contact().unwrap().emails, want);
    for s in ["a", "b"] {
        let (_, r) = w.find(s, "meiling@example.tw").unwrap();
        assert_eq!(r.as_contact().unwrap().emails, want, "{s}");
    }
    assert!(w.store().conflicts(false).await.unwrap().is_empty());
}

/// Delete policy `delete`: a delete followed by an edit elsewhere goes to
/// review (the edit is not silently dropped); resolved as delete, the record
/// is gone everywhere. An edit made before the delete loses to it.
async fn delete_policy_delete_vs_concurrent_edit(backend: &str) {
    for edit_first in [false, true] {
        let w = linked(backend, &["a", "b"], MergePolicy::default()).await;
        let (ea, eb) = (ext(&w, "a"), ext(&w, "b"));
        // Both after the record was created (its field times are real ones).
        let t = Utc::now() + Duration::seconds(1);
        let (t_del, t_edit) = if edit_first {
            (t + Duration::seconds(10), t)
        } else {
            (t, t + Duration::seconds(10))
        };
        w.sys("a").delete_at(ObjectKind::Contact, &ea, t_del);
        w.sys("b")
            .edit_at(ObjectKind::Contact, &eb, t_edit, set_company("B Ltd"));
        w.round().await;
        if edit_first {
            w.settle(4).await;
            assert!(w.crm(P).await.is_none(), "the later delete wins");
            assert!(w.find("b", P).is_none(), "and reaches B");
            assert!(w.store().conflicts(false).await.unwrap().is_empty());
            continue;
        }
        let open = w.store().conflicts(false).await.unwrap();
        assert_eq!(open.len(), 1, "{open:#?}");
        assert_eq!(open[0].detail.field, "_deleted");
        assert!(
            w.find("b", P).is_some(),
            "B's later edit is not deleted before review"
        );
        synchub_engine::local::resolve_conflict(&w.store(), &open[0], serde_json::json!(true))
            .await
            .unwrap();
        w.settle(4).await;
        assert!(w.crm(P).await.is_none());
        assert!(w.find("a", P).is_none() && w.find("b", P).is_none());
    }
}

/// Delete policy `archive`: the CRM record is tombstoned, B keeps its copy.
async fn delete_policy_archive_keeps_other_copies(backend: &str) {
    let mut w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    w.deletes = DeletePolicy::Archive;
    w.sys("a").put("p1", person("陳大文", P));
    w.settle(4).await;
    let ea = ext(&w, "a");
    w.sys("a").delete(ObjectKind::Contact, &ea);
    w.settle(4).await;
    assert!(w.crm(P).await.is_none(), "archived in the CRM");
    assert!(w.find("b", P).is_some(), "B keeps its copy");
    // A later edit in B asks a person rather than reviving or dropping it.
    let eb = ext(&w, "b");
    w.sys("b")
        .edit(ObjectKind::Contact, &eb, set_company("B Ltd"));
    w.round().await;
    let open = w.store().conflicts(false).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].detail.field, "_deleted");
    assert!(w.crm(P).await.is_none());
}

/// Delete policy `ignore`: the CRM record stays live and B keeps flowing;
/// A is not re-created behind its user's back.
async fn delete_policy_ignore_keeps_the_record(backend: &str) {
    let mut w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    w.deletes = DeletePolicy::Ignore;
    w.sys("a").put("p1", person("陳大文", P));
    w.settle(4).await;
    let (ea, eb) = (ext(&w, "a"), ext(&w, "b"));
    w.sys("a").delete(ObjectKind::Contact, &ea);
    w.sys("b")
        .edit(ObjectKind::Contact, &eb, set_company("B Ltd"));
    w.settle(4).await;
    assert_eq!(
        w.crm(P).await.as_ref().and_then(company).as_deref(),
        Some("B Ltd")
    );
    assert!(w.find("a", P).is_none(), "A's delete stands");
    assert!(w.store().conflicts(false).await.unwrap().is_empty());
}

/// A stale read (a lagging replica serving a copy from before the delete)
/// never brings back a record deleted later, neither from the deleting
/// system nor from another.
async fn stale_pull_never_resurrects_a_later_delete(backend: &str) {
    let w = linked(backend, &["a", "b"], MergePolicy::default()).await;
    let (ea, eb) = (ext(&w, "a"), ext(&w, "b"));
    let old_a = w.sys("a").entry(ObjectKind::Contact, &ea).unwrap();
    let old_b = w.sys("b").entry(ObjectKind::Contact, &eb).unwrap();
    w.sys("b").delete(ObjectKind::Contact, &eb);
    w.settle(4).await;
    assert!(w.crm(P).await.is_none() && w.find("a", P).is_none());
    w.sys("a").serve_stale(&ea, &old_a);
    w.sys("b").serve_stale(&eb, &old_b);
    let r = w.round().await;
    assert_eq!(r.writes(), 0, "{}", r.to_table());
    assert!(w.crm(P).await.is_none(), "no resurrection in the CRM");
    assert!(w.find("a", P).is_none() && w.find("b", P).is_none());
    assert!(w.store().conflicts(false).await.unwrap().is_empty());
}

/// Echo suppression with three systems: an edit reaches the other two once,
/// and the echoes of those writes are recognised; then nothing is written.
async fn echo_suppressed_with_three_systems(backend: &str) {
    let w = linked(backend, &["a", "b", "c"], MergePolicy::default()).await;
    let ea = ext(&w, "a");
    w.sys("a")
        .edit(ObjectKind::Contact, &ea, set_company("A Ltd"));
    let before = w.writes();
    let r = w.round().await;
    assert_eq!(r.total().pushed, 2, "{}", r.to_table());
    let after = w.writes();
    assert_eq!(after, vec![before[0], before[1] + 1, before[2] + 1]);
    for _ in 0..2 {
        let r = w.round().await;
        assert_eq!(r.writes(), 0, "{}", r.to_table());
        assert_eq!(w.writes(), after, "no further writes anywhere");
    }
    assert!(w
        .companies(P)
        .await
        .iter()
        .all(|c| c.as_deref() == Some("A Ltd")));
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
    newest_later_edit_wins_in_any_pull_order,
    edits_within_clock_skew_go_to_review,
    priority_first_listed_source_wins,
    crm_wins_over_a_concurrent_remote_edit,
    remote_wins_over_a_concurrent_crm_edit,
    manual_conflict_waits_for_review,
    set_merge_keeps_addition_and_removal,
    delete_policy_delete_vs_concurrent_edit,
    delete_policy_archive_keeps_other_copies,
    delete_policy_ignore_keeps_the_record,
    stale_pull_never_resurrects_a_later_delete,
    echo_suppressed_with_three_systems,
);
