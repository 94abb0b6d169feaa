//! Convergence under random edits, deletes and re-creates on the CRM and two
//! systems, random pull orders and random crashes (the run future dropped at
//! a random poll, a connection that breaks mid-pull or mid-push). After every
//! full sync round: every system holds the same values, no record is
//! duplicated, an edit made since the previous round is lost only to another
//! edit of the same field (the policy's choice), a delete stands, and a round
//! with no new edits writes nothing anywhere.

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
    Edit { sys: usize, p: usize, field: Field },
    Delete { sys: usize, p: usize },
    Create { sys: usize, p: usize },
    Sync { b_first: bool, crash: Crash },
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
    /// (person, field) → per system, the last value it wrote.
    edits: BTreeMap<(usize, Field), BTreeMap<usize, Value>>,
    /// People deleted or re-created somewhere.
    lifecycle: BTreeMap<usize, Vec<bool>>,
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
                epoch.edits.entry((*p, *field)).or_default().insert(0, v);
            } else {
                let name = SYSTEMS[sys - 1];
                let Some((id, _)) = w.find_any(name, &email(*p)) else {
                    return;
                };
                let mut v = Value::Null;
                w.sys(name).edit(ObjectKind::Contact, &id, |r| {
                    v = set_field(r, *field, &value)
                });
                epoch.edits.entry((*p, *field)).or_default().insert(*sys, v);
            }
        }
        Op::Delete { sys, p } => {
            if *sys == 0 {
                let Some((id, _)) = crm_live(w, *p).await else {
                    return;
                };
                synchub_engine::local::delete_local(&w.store(), &id)
                    .await
                    .unwrap();
            } else {
                let name = SYSTEMS[sys - 1];
                let Some((id, _)) = w.find_any(name, &email(*p)) else {
                    return;
                };
                w.sys(name).delete(ObjectKind::Contact, &id);
            }
            epoch.lifecycle.entry(*p).or_default().push(false);
        }
        Op::Create { sys, p } => {
            let name = SYSTEMS[sys - 1];
            if w.find_any(name, &email(*p)).is_some() {
                return;
            }
            w.sys(name).put(
                &format!("{name}-new-{n}"),
                person(&format!("Person {p}"), &email(*p)),
            );
            epoch.lifecycle.entry(*p).or_default().push(true);
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
        let events = epoch.lifecycle.get(&p);
        match events {
            None => assert_eq!(
                crm.is_some(),
                alive_before.contains(&p),
                "{e} appeared or vanished"
            ),
            Some(ev) if ev.iter().all(|created| !created) => {
                assert!(crm.is_none(), "{e} was deleted and is back")
            }
            Some(_) => {}
        }
        let (Some(crm), None) = (&crm, events) else {
            continue;
        };
        let fields = crm.to_fields();
        for ((who, field), by_sys) in epoch.edits.range((p, Field::Company)..=(p, Field::Tag)) {
            debug_assert_eq!(*who, p);
            match field {
                Field::Tag => {
                    // Set merge: every added tag survives.
                    let tags = fields.get("tags").cloned().unwrap_or(Value::Array(vec![]));
                    for v in by_sys.values() {
                        assert!(
                            tags.as_array().unwrap().contains(v),
                            "{e}: tag {v} lost: {tags}"
                        );
                    }
                }
                _ => {
                    let key = if *field == Field::Company {
                        "company"
                    } else {
                        "title"
                    };
                    let got = fields.get(key).cloned().unwrap_or(Value::Null);
                    assert!(
                        by_sys.values().any(|v| *v == got),
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
