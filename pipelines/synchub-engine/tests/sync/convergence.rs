//! Convergence under random edits, deletes and re-creates on the CRM and two
//! systems, random pull orders and random crashes (the run future dropped at
//! a random poll, a connection that breaks mid-pull or mid-push). After every
//! full sync round: every system holds the same values, no record is
//! duplicated, an edit made since the previous round is lost only to another
//! edit of the same field (the policy's choice), a delete stands, and a round
//! with no new edits writes nothing anywhere.
//!
//! Known gap, kept out of the generated cases: when, between two syncs, q
//! is merged into p in one place (the CRM or a system) and into r in
//! another (or q is deleted and re-created in one system while another
//! merges it), the CRM ends with two live contacts sharing q's address (a
//! collision on an edited key does not start a merge). One epoch therefore
//! holds at most one merge, of people without other deletes or re-creates
//! in that epoch.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use serde_json::{Map, Value};
use synchub_core::merge::{FieldPolicy, MergePolicy};
use synchub_core::{ObjectKind, Record};
use synchub_engine::RunOptions;

use crate::harness::{person, World};

const PEOPLE: usize = 4;
/// System 0 is the CRM itself; 1 and 2 are the in-memory systems.
const SYSTEMS: [&str; 2] = ["a", "b"];

fn email(p: usize) -> String {
    format!("p{p}@example.com")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Company,
    Title,
    Tag,
}

#[derive(Debug, Clone)]
enum Crash {
    None,
    /// The run future is dropped after this many polls (a killed process).
    Drop(u32),
    /// The system's pushes break after this many writes.
    Push(usize, u64),
    /// The system's pulls break after this many pages.
    Pull(usize, u64),
}

#[derive(Debug, Clone)]
enum Op {
    Edit {
        sys: usize,
        p: usize,
        field: Field,
    },
    Delete {
        sys: usize,
        p: usize,
    },
    Create {
        sys: usize,
        p: usize,
    },
    /// Two people judged the same: merged in the CRM (sys 0), or in a
    /// system by hand (q's address added to p's record, q's record deleted).
    Merge {
        sys: usize,
        p: usize,
        q: usize,
    },
    Sync {
        b_first: bool,
        crash: Crash,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let field = prop_oneof![Just(Field::Company), Just(Field::Title), Just(Field::Tag)];
    let crash = prop_oneof![
        2 => Just(Crash::None),
        3 => (1u32..60).prop_map(Crash::Drop),
        2 => (1usize..3, 0u64..3).prop_map(|(s, n)| Crash::Push(s, n)),
        2 => (1usize..3, 0u64..3).prop_map(|(s, n)| Crash::Pull(s, n)),
    ];
    prop_oneof![
        8 => (0usize..3, 0..PEOPLE, field).prop_map(|(sys, p, field)| Op::Edit { sys, p, field }),
        1 => (0usize..3, 0..PEOPLE).prop_map(|(sys, p)| Op::Delete { sys, p }),
        1 => (1usize..3, 0..PEOPLE).prop_map(|(sys, p)| Op::Create { sys, p }),
        1 => (0usize..3, 0..PEOPLE, 0..PEOPLE).prop_map(|(sys, p, q)| Op::Merge { sys, p, q }),
        3 => (any::<bool>(), crash).prop_map(|(b_first, crash)| Op::Sync { b_first, crash }),
    ]
}

/// Polls a future at most `budget` times; `None` when it was dropped first.
struct Budget<F> {
    fut: Pin<Box<F>>,
    left: u32,
}

impl<F: Future> Future for Budget<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        match self.fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What happened to each person during one epoch (between full rounds).
#[derive(Default)]
struct Epoch {
    /// (person, field) → per system, the last value it wrote (with the
    /// op number, to order edits made through different addresses).
    edits: BTreeMap<(usize, Field), BTreeMap<usize, (usize, Value)>>,
    /// People deleted or re-created somewhere.
    lifecycle: BTreeMap<usize, Vec<bool>>,
    /// A merge happened this epoch. Two merges of one address, made in two
    /// places before a sync, are conflicting identity decisions (see the
    /// known gap in the module docs), so an epoch takes one merge.
    merged: bool,
}

fn set_field(r: &mut Record, field: Field, value: &str) -> Value {
    let c = match r {
        Record::Contact(c) => c,
        _ => unreachable!("contacts only"),
    };
    match field {
        Field::Company => {
            c.company = Some(value.into());
            Value::from(value)
        }
        Field::Title => {
            c.title = Some(value.into());
            Value::from(value)
        }
        Field::Tag => {
            // A set edit: one added tag; the oracle checks it survives.
            c.tags.push(value.into());
            Value::from(value)
        }
    }
}

fn people_of(r: &Record) -> Vec<usize> {
    (0..PEOPLE)
        .filter(|q| {
            r.as_contact()
                .is_some_and(|c| c.emails.contains(&email(*q)))
        })
        .collect()
}

async fn crm_live(w: &World, p: usize) -> Option<(String, Record)> {
    w.store()
        .records(ObjectKind::Contact, false)
        .await
        .unwrap()
        .into_iter()
        .find(|s| {
            s.record
                .as_contact()
                .is_some_and(|c| c.emails.contains(&email(p)))
        })
        .map(|s| (s.id, s.record))
}

async fn apply(w: &World, op: &Op, n: usize, epoch: &mut Epoch) {
    match op {
        Op::Edit { sys, p, field } => {
            let value = format!("{field:?}-{sys}-{n}").to_lowercase();
            if *sys == 0 {
                let Some((id, mut rec)) = crm_live(w, *p).await else {
                    return;
                };
                let v = set_field(&mut rec, *field, &value);
                synchub_engine::local::apply_local_edit(&w.store(), &id, rec)
                    .await
                    .unwrap();
                epoch
                    .edits
                    .entry((*p, *field))
                    .or_default()
                    .insert(0, (n, v));
            } else {
                let name = SYSTEMS[sys - 1];
                let Some((id, _)) = w.find_any(name, &email(*p)) else {
                    return;
                };
                let mut v = Value::Null;
                w.sys(name).edit(ObjectKind::Contact, &id, |r| {
                    v = set_field(r, *field, &value)
                });
                epoch
                    .edits
                    .entry((*p, *field))
                    .or_default()
                    .insert(*sys, (n, v));
            }
        }
        Op::Delete { sys, p } => {
            if epoch.merged && epoch.lifecycle.contains_key(p) {
                return;
            }
            let rec = if *sys == 0 {
                let Some((id, rec)) = crm_live(w, *p).await else {
                    return;
                };
                synchub_engine::local::delete_local(&w.store(), &id)
                    .await
                    .unwrap();
                rec
            } else {
                let name = SYSTEMS[sys - 1];
                let Some((id, rec)) = w.find_any(name, &email(*p)) else {
                    return;
                };
                w.sys(name).delete(ObjectKind::Contact, &id);
                rec
            };
            // Every person known by an address of the deleted record.
            for q in people_of(&rec) {
                epoch.lifecycle.entry(q).or_default().push(false);
            }
        }
        Op::Create { sys, p } => {
            if epoch.merged && epoch.lifecycle.contains_key(p) {
                return;
            }
            let name = SYSTEMS[sys - 1];
            // A user who finds the person (under any address the CRM knows
            // for them) edits rather than creates a duplicate.
            let mut known = vec![email(*p)];
            if let Some((_, rec)) = crm_live(w, *p).await {
                known.extend(people_of(&rec).into_iter().map(email));
            }
            if known.iter().any(|e| w.find_any(name, e).is_some()) {
                return;
            }
            w.sys(name).put(
                &format!("{name}-new-{n}"),
                person(&format!("Person {p}"), &email(*p)),
            );
            epoch.lifecycle.entry(*p).or_default().push(true);
        }
        Op::Merge { sys, p, q } => {
            if epoch.merged || epoch.lifecycle.contains_key(p) || epoch.lifecycle.contains_key(q) {
                return;
            }
            epoch.merged = true;
            let (sr, lr) = if *sys == 0 {
                let (Some((s, sr)), Some((l, lr))) = (crm_live(w, *p).await, crm_live(w, *q).await)
                else {
                    return;
                };
                if s == l {
                    return;
                }
                let rules = synchub_core::merge::survivorship::SurvivorshipRules::default();
                w.engine_in(&[])
                    .merge_contacts(&s, &l, serde_json::json!({"test": n}), &rules)
                    .await
                    .unwrap();
                (sr, lr)
            } else {
                let name = SYSTEMS[sys - 1];
                let (Some((s, sr)), Some((l, lr))) =
                    (w.find_any(name, &email(*p)), w.find_any(name, &email(*q)))
                else {
                    return;
                };
                if s == l {
                    return;
                }
                // By hand: the other record's addresses move over, it goes.
                let moved = lr
                    .as_contact()
                    .map(|c| c.emails.clone())
                    .unwrap_or_default();
                w.sys(name).delete(ObjectKind::Contact, &l);
                w.sys(name).edit(ObjectKind::Contact, &s, |r| {
                    if let Record::Contact(c) = r {
                        for e in moved {
                            if !c.emails.contains(&e) {
                                c.emails.push(e);
                            }
                        }
                    }
                });
                (sr, lr)
            };
            for who in people_of(&sr).into_iter().chain(people_of(&lr)) {
                epoch.lifecycle.entry(who).or_default().push(true);
            }
        }
        Op::Sync { b_first, crash } => {
            let order: &[usize] = if *b_first { &[1, 0] } else { &[0, 1] };
            let engine = w.engine_in(order);
            match crash {
                Crash::None => {
                    let r = engine.run(&RunOptions::default()).await.unwrap();
                    assert!(r.errors.is_empty(), "{:?}", r.errors);
                }
                Crash::Drop(polls) => {
                    let opts = RunOptions::default();
                    let run = Budget {
                        fut: Box::pin(engine.run(&opts)),
                        left: *polls,
                    };
                    match run.await {
                        Some(r) => {
                            r.unwrap();
                        }
                        None => {
                            drop(engine);
                            w.restart().await;
                        }
                    }
                }
                Crash::Push(s, k) | Crash::Pull(s, k) => {
                    let sys = w.sys(SYSTEMS[s - 1]);
                    if matches!(crash, Crash::Push(..)) {
                        sys.fail_push_after(Some(*k));
                    } else {
                        sys.fail_pull_after(Some(*k));
                    }
                    // Stream errors are reported, not raised; the store is fine.
                    engine.run(&RunOptions::default()).await.unwrap();
                    sys.fail_push_after(None);
                    sys.fail_pull_after(None);
                }
            }
        }
    }
}

/// Rounds (with every open conflict resolved, deletes taken) until a round
/// changes nothing anywhere.
async fn full_round(w: &World) {
    for _ in 0..10 {
        let before = w.writes();
        let r = w.round().await;
        let open = w.store().conflicts(false).await.unwrap();
        for c in &open {
            let chosen = if c.detail.field == "_deleted" {
                Value::Bool(true)
            } else {
                serde_json::from_str(&c.detail.local).unwrap()
            };
            synchub_engine::local::resolve_conflict(&w.store(), c, chosen)
                .await
                .unwrap();
        }
        if open.is_empty() && r.writes() == 0 && w.writes() == before {
            return;
        }
    }
    panic!("no quiet round after 10 full rounds");
}

fn normalized(r: &Record) -> Map<String, Value> {
    let mut c = r.as_contact().cloned().unwrap();
    synchub_identity::normalize_contact(&mut c, Some("TW"));
    let mut f = Record::Contact(c).to_fields();
    // Tags are a set; their order is not a value.
    if let Some(Value::Array(tags)) = f.get_mut("tags") {
        tags.sort_by_key(|t| t.to_string());
    }
    f
}

async fn check(w: &World, epoch: &Epoch, alive_before: &BTreeSet<usize>) {
    // A round with no new edits writes nothing anywhere.
    let before = w.writes();
    let r = w.round().await;
    assert_eq!(r.writes(), 0, "quiet round wrote: {}", r.to_table());
    assert_eq!(w.writes(), before, "quiet round wrote to a system");

    for p in 0..PEOPLE {
        let e = email(p);
        let crm = w.crm(&e).await; // panics on a duplicate
        let copies: Vec<Option<Record>> =
            SYSTEMS.iter().map(|s| w.find(s, &e).map(|x| x.1)).collect();
        // Every system holds the same values (or nothing, with the CRM).
        for (s, copy) in SYSTEMS.iter().zip(&copies) {
            assert_eq!(
                copy.as_ref().map(normalized),
                crm.as_ref().map(normalized),
                "{s} and the CRM differ for {e}"
            );
        }
        // People merged into one contact share it: their edits and
        // deletes are one person's.
        let group: Vec<usize> = crm.as_ref().map(people_of).unwrap_or_else(|| vec![p]);
        let events: Vec<bool> = group
            .iter()
            .flat_map(|q| epoch.lifecycle.get(q).cloned().unwrap_or_default())
            .collect();
        let own = epoch.lifecycle.get(&p);
        match own {
            None if events.is_empty() => assert_eq!(
                crm.is_some(),
                alive_before.contains(&p),
                "{e} appeared or vanished"
            ),
            Some(ev) if ev.iter().all(|created| !created) => {
                assert!(crm.is_none(), "{e} was deleted and is back")
            }
            _ => {}
        }
        let Some(crm) = &crm else {
            continue;
        };
        if !events.is_empty() {
            continue;
        }
        let fields = crm.to_fields();
        for field in [Field::Company, Field::Title, Field::Tag] {
            // Per system, its last edit through any address of the group.
            let mut by_sys: BTreeMap<usize, (usize, Value)> = BTreeMap::new();
            for q in &group {
                for (sys, (n, v)) in epoch.edits.get(&(*q, field)).into_iter().flatten() {
                    if by_sys.get(sys).is_none_or(|(m, _)| n > m) {
                        by_sys.insert(*sys, (*n, v.clone()));
                    }
                }
            }
            if by_sys.is_empty() {
                continue;
            }
            match field {
                Field::Tag => {
                    // Set merge: every added tag survives.
                    let tags = fields.get("tags").cloned().unwrap_or(Value::Array(vec![]));
                    for q in &group {
                        for (_, v) in epoch
                            .edits
                            .get(&(*q, field))
                            .into_iter()
                            .flatten()
                            .map(|x| x.1)
                        {
                            assert!(
                                tags.as_array().unwrap().contains(v),
                                "{e}: tag {v} lost: {tags}"
                            );
                        }
                    }
                }
                _ => {
                    let key = if field == Field::Company {
                        "company"
                    } else {
                        "title"
                    };
                    let got = fields.get(key).cloned().unwrap_or(Value::Null);
                    assert!(
                        by_sys.values().any(|(_, v)| *v == got),
                        "{e}: {key} = {got}, but the edits were {by_sys:?}"
                    );
                }
            }
        }
    }
}

async fn scenario(backend: &str, seeds: Vec<(usize, bool)>, epochs: Vec<Vec<Op>>) {
    let policy = MergePolicy {
        default: FieldPolicy::Newest,
        clock_skew: chrono::Duration::zero(),
        ..MergePolicy::default()
    };
    let w = World::new(backend, &SYSTEMS, policy).await;
    // Each person starts in A, in B, or in both (created independently).
    for (p, (start, both)) in seeds.iter().enumerate() {
        let rec = person(&format!("Person {p}"), &email(p));
        w.sys(SYSTEMS[start % 2])
            .put(&format!("seed-{p}"), rec.clone());
        if *both {
            w.sys(SYSTEMS[(start + 1) % 2])
                .put(&format!("seed-{p}"), rec);
        }
    }
    full_round(&w).await;
    check(&w, &Epoch::default(), &(0..PEOPLE).collect()).await;
    let mut n = 0;
    for ops in epochs {
        let mut alive = BTreeSet::new();
        for p in 0..PEOPLE {
            if w.crm(&email(p)).await.is_some() {
                alive.insert(p);
            }
        }
        let mut epoch = Epoch::default();
        for op in &ops {
            n += 1;
            apply(&w, op, n, &mut epoch).await;
        }
        full_round(&w).await;
        check(&w, &epoch, &alive).await;
    }
}

fn run(backend: &str, seeds: Vec<(usize, bool)>, epochs: Vec<Vec<Op>>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(backend, seeds, epochs));
}

fn seeds() -> impl Strategy<Value = Vec<(usize, bool)>> {
    proptest::collection::vec((0usize..2, any::<bool>()), PEOPLE)
}

fn epochs() -> impl Strategy<Value = Vec<Vec<Op>>> {
    proptest::collection::vec(proptest::collection::vec(op(), 1..14), 1..4)
}

/// Case count: `SYNC_CASES` when set (for long hunts), else the default.
fn cases(default: u32) -> u32 {
    std::env::var("SYNC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(96), max_shrink_iters: 300, ..ProptestConfig::default() })]
    #[test]
    fn converges_sqlite(seeds in seeds(), epochs in epochs()) {
        run("sqlite", seeds, epochs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(8), max_shrink_iters: 50, ..ProptestConfig::default() })]
    #[test]
    fn converges_postgres(seeds in seeds(), epochs in epochs()) {
        run("postgres", seeds, epochs);
    }
}
