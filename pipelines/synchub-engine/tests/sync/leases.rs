//! One process at a time per stream, on SQLite and PostgreSQL: stream
//! leases (takeover after the TTL, fencing tokens refusing a stale holder's
//! page), pages whose cursor would move backwards, outbox claims, and two
//! engines running one pipeline at the same time.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use synchub_core::merge::MergePolicy;
use synchub_core::{
    Change, ChangeOp, Connector, ConnectorError, Cursor, ObjectKind, ObjectSpec, Page, PushOutcome,
};
use synchub_engine::{
    Connection, DeletePolicy, Direction, Engine, LeaseOptions, RunOptions, RunReport,
};
use synchub_store::leases::{self, Claim, Lease, StreamKey};
use synchub_store::outbox::{self, ClaimBy, OutboxEntry};
use synchub_store::{cursors, Store};
use synchub_testkit::{MemorySystem, TestDb};

use crate::harness::{person, World};

const TTL: Duration = Duration::from_secs(30);

fn key(pipeline: &str, connection: &str) -> StreamKey {
    StreamKey {
        pipeline: pipeline.into(),
        connection: connection.into(),
        object: ObjectKind::Contact,
    }
}

fn granted(c: Claim) -> Lease {
    match c {
        Claim::Granted(l) => l,
        Claim::Held(row) => panic!("expected a grant, got: {row}"),
    }
}

async fn lease_is_taken_over_after_its_ttl(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let k = key("p", "shop");
    let t0 = Utc::now();
    // GIVEN a lease granted for 30 s
    let a = granted(store.try_acquire_lease_at(&k, t0, TTL).await.unwrap());
    assert_eq!(a.token, 1);

    // WHEN another process asks within the TTL THEN it is told who holds it
    let Claim::Held(row) = store
        .try_acquire_lease_at(&k, t0 + chrono::Duration::seconds(10), TTL)
        .await
        .unwrap()
    else {
        panic!("a live lease was granted twice")
    };
    assert_eq!(row.pid, i64::from(std::process::id()));
    assert_eq!(row.host, leases::host_name());
    assert_eq!(row.acquired_at, a.acquired_at);
    assert_eq!(row.token, 1);
    let text = row.to_string();
    assert!(
        text.contains(&format!("pid {}", std::process::id()))
            && text.contains(&format!("since {}", a.acquired_at))
            && text.contains("p/shop.contact"),
        "{text}"
    );

    // WHEN the holder is silent past the TTL THEN the lease is taken over
    // with a greater token, and the old holder can no longer renew it
    let b = granted(
        store
            .try_acquire_lease_at(&k, t0 + chrono::Duration::seconds(31), TTL)
            .await
            .unwrap(),
    );
    assert_eq!(b.token, 2);
    assert!(!store
        .renew_lease_at(&a, t0 + chrono::Duration::seconds(32), TTL)
        .await
        .unwrap());
    assert!(store
        .renew_lease_at(&b, t0 + chrono::Duration::seconds(32), TTL)
        .await
        .unwrap());
    // A renewal moves the end: 40 s after the takeover it is still held.
    assert!(matches!(
        store
            .try_acquire_lease_at(&k, t0 + chrono::Duration::seconds(61), TTL)
            .await
            .unwrap(),
        Claim::Held(_)
    ));

    // A stale holder cannot release the new one's lease; a release frees
    // the stream at once and the token keeps counting up.
    assert!(!store.release_lease(&a).await.unwrap());
    assert!(store.release_lease(&b).await.unwrap());
    let c = granted(
        store
            .try_acquire_lease_at(&k, t0 + chrono::Duration::seconds(62), TTL)
            .await
            .unwrap(),
    );
    assert_eq!(c.token, 3);
    // Other streams are independent.
    let other = granted(
        store
            .try_acquire_lease_at(&key("p", "crm"), t0, TTL)
            .await
            .unwrap(),
    );
    assert_eq!(other.token, 1);
    assert_eq!(store.leases().await.unwrap().len(), 2);
}

async fn a_dead_local_holders_lease_is_taken_over_at_once(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let k = key("p", "shop");
    // GIVEN a lease held (far from expiry) by a process of this host that
    // has ended, as a SIGKILLed run leaves it
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = i64::from(child.id());
    child.wait().unwrap();
    granted(
        store
            .try_acquire_lease_at(&k, Utc::now(), TTL)
            .await
            .unwrap(),
    );
    sqlx::query("UPDATE stream_lease SET pid = $1")
        .bind(dead_pid)
        .execute(store.pool())
        .await
        .unwrap();
    // WHEN a new run asks without waiting THEN it gets the stream at once,
    // with the next token
    let lease = granted(store.acquire_lease(&k, TTL, Duration::ZERO).await.unwrap());
    assert_eq!(lease.token, 2);
    // AND a live holder (this process) is never taken over that way
    let Claim::Held(row) = store.acquire_lease(&k, TTL, Duration::ZERO).await.unwrap() else {
        panic!("a live holder's lease was taken")
    };
    assert_eq!(row.token, 2);
}

async fn fencing_token_rejects_a_stale_holders_commit(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let k = key("p", "shop");
    let t0 = Utc::now();
    let a = granted(store.try_acquire_lease_at(&k, t0, TTL).await.unwrap());
    let b = granted(
        store
            .try_acquire_lease_at(&k, t0 + chrono::Duration::seconds(60), TTL)
            .await
            .unwrap(),
    );
    // GIVEN a holder that stalled and was taken over, WHEN it tries to
    // commit a page THEN the fencing check in its transaction fails
    let mut tx = store.begin().await.unwrap();
    assert!(!leases::fence(&mut tx, &a, t0, TTL).await.unwrap());
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(leases::fence(&mut tx, &b, t0, TTL).await.unwrap());
    tx.commit().await.unwrap();
}

/// A hook run before the n-th pull (1-based) of a wrapped connector: what
/// another process does meanwhile.
type Hook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Hooked {
    inner: synchub_testkit::MemoryConnector,
    pulls: AtomicUsize,
    at: usize,
    hook: Hook,
}

#[async_trait]
impl Connector for Hooked {
    fn kind(&self) -> &'static str {
        "hooked"
    }
    fn objects(&self) -> Vec<ObjectSpec> {
        self.inner.objects()
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        self.inner.check().await
    }
    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        if self.pulls.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            (self.hook)().await;
        }
        self.inner.pull(object, from).await
    }
    async fn push(
        &self,
        object: ObjectKind,
        changes: &[Change],
    ) -> Result<Vec<PushOutcome>, ConnectorError> {
        self.inner.push(object, changes).await
    }
}

/// An engine pulling ten contacts of system `shop` three per page, with
/// `hook` run before the second page is read.
fn hooked_engine(store: &Store, sys: &MemorySystem, hook: Hook) -> Engine {
    Engine::new(
        store.clone(),
        "p",
        vec![Connection {
            name: "shop".into(),
            connector: Arc::new(Hooked {
                inner: sys.connector(3),
                pulls: AtomicUsize::new(0),
                at: 2,
                hook,
            }),
            direction: Direction::Pull,
            objects: vec![ObjectKind::Contact],
            region: None,
        }],
        MergePolicy::default(),
        BTreeMap::from([(ObjectKind::Contact, DeletePolicy::Delete)]),
    )
}

fn ten_contacts() -> MemorySystem {
    let sys = MemorySystem::new("shop");
    for i in 0..10 {
        sys.put(
            &format!("c{i}"),
            person(&format!("Person {i}"), &format!("p{i}@example.com")),
        );
    }
    sys
}

async fn crm_count(store: &Store) -> usize {
    store
        .records(ObjectKind::Contact, true)
        .await
        .unwrap()
        .len()
}

async fn a_taken_over_run_cannot_commit_its_next_page(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let sys = ten_contacts();
    // GIVEN a run whose lease is taken over (its holder looked dead: the
    // other process's clock is past the TTL) while it reads page 2
    let thief = store.clone();
    let hook: Hook = Arc::new(move || {
        let thief = thief.clone();
        Box::pin(async move {
            let later = Utc::now() + chrono::Duration::hours(1);
            granted(
                thief
                    .try_acquire_lease_at(&key("p", "shop"), later, TTL)
                    .await
                    .unwrap(),
            );
        })
    });
    let engine = hooked_engine(&store, &sys, hook);
    let report = engine.run(&RunOptions::default()).await.unwrap();
    // THEN page 2 is refused and rolled back: only page 1 is in the store
    let err = report.errors.get("shop.contact").expect("a lease error");
    assert!(err.contains("lost its lease (fencing token 1)"), "{err}");
    assert_eq!(crm_count(&store).await, 3);
    assert_eq!(report.streams["shop.contact"].pages, 1);
    let stored = store
        .cursor("shop", ObjectKind::Contact)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.seq, 1);
    // The new holder's token is the one the store knows.
    let row = store.lease(&key("p", "shop")).await.unwrap().unwrap();
    assert_eq!(row.token, 2);
}

async fn a_page_whose_cursor_moves_backwards_is_rolled_back(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let sys = ten_contacts();
    // GIVEN another writer that committed the stream far ahead (page 100)
    // while this run reads page 2
    let other = store.clone();
    let hook: Hook = Arc::new(move || {
        let other = other.clone();
        Box::pin(async move {
            let mut tx = other.begin().await.unwrap();
            let c = Cursor(serde_json::json!({ "other": true }));
            assert!(
                cursors::save(&mut tx, "shop", ObjectKind::Contact, Some(&c), 100)
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
        })
    });
    let engine = hooked_engine(&store, &sys, hook);
    let report = engine.run(&RunOptions::default()).await.unwrap();
    // THEN page 2 does not commit (its records are not in the store) and
    // the run says why
    let err = report.errors.get("shop.contact").expect("a cursor error");
    assert!(
        err.contains("page 2 would move the stored cursor backwards"),
        "{err}"
    );
    assert_eq!(crm_count(&store).await, 3);
    let stored = store
        .cursor("shop", ObjectKind::Contact)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.seq, 100);
}

async fn a_second_runner_is_refused_naming_the_holder(backend: &str) {
    let w = World::new(backend, &["a"], MergePolicy::default()).await;
    w.sys("a").put("1", person("Ann Lee", "ann@example.com"));
    // GIVEN another process holding the stream
    let store = w.store();
    let held = granted(
        store
            .try_acquire_lease_at(&key("sync-test", "a"), Utc::now(), TTL)
            .await
            .unwrap(),
    );
    // WHEN a run starts and the stream stays held past its wait
    let opts = RunOptions {
        lease: LeaseOptions {
            ttl: TTL,
            wait: Duration::from_millis(300),
        },
        ..RunOptions::default()
    };
    let report = w.engine_in(&[]).run(&opts).await.unwrap();
    // THEN the stream is skipped with the holder named, nothing is applied
    // and nothing is pushed to it
    let err = report.errors.get("a.contact").expect("a lease error");
    assert!(
        err.contains(&format!("pid {}", std::process::id()))
            && err.contains(&format!("since {}", held.acquired_at))
            && err.contains("is held by host"),
        "{err}"
    );
    assert!(w.crm("ann@example.com").await.is_none());
    // AND once the holder releases it, the next run reads the stream
    assert!(store.release_lease(&held).await.unwrap());
    let report = w.engine_in(&[]).run(&opts).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(w.crm("ann@example.com").await.is_some());
}

async fn two_engines_at_once_apply_and_push_everything_once(backend: &str) {
    let w = World::new(backend, &["a", "b"], MergePolicy::default()).await;
    for i in 0..20 {
        w.sys("a").put(
            &format!("a{i}"),
            person(&format!("A {i}"), &format!("a{i}@example.com")),
        );
        w.sys("b").put(
            &format!("b{i}"),
            person(&format!("B {i}"), &format!("b{i}@example.com")),
        );
    }
    // WHEN two engines run the same pipeline on one store at once
    let opts = RunOptions {
        lease: LeaseOptions {
            ttl: TTL,
            wait: Duration::from_secs(60),
        },
        ..RunOptions::default()
    };
    let (e1, e2) = (w.engine_in(&[]), w.engine_in(&[1, 0]));
    let (r1, r2) = tokio::join!(e1.run(&opts), e2.run(&opts));
    let (r1, r2): (RunReport, RunReport) = (r1.unwrap(), r2.unwrap());
    assert!(r1.errors.is_empty(), "{:?}", r1.errors);
    assert!(r2.errors.is_empty(), "{:?}", r2.errors);
    // THEN every record was created once in the CRM and once in the other
    // system, and the two reports add up to exactly that
    let (t1, t2) = (r1.total(), r2.total());
    assert_eq!(t1.created + t2.created, 40, "{r1:?}\n{r2:?}");
    assert_eq!(t1.pushed + t2.pushed, 40, "{r1:?}\n{r2:?}");
    assert_eq!(crm_count(&w.store()).await, 40);
    for sys in ["a", "b"] {
        let emails: BTreeSet<String> = w
            .sys(sys)
            .live(ObjectKind::Contact)
            .values()
            .filter_map(|r| r.as_contact().and_then(|c| c.emails.first().cloned()))
            .collect();
        assert_eq!(w.sys(sys).live(ObjectKind::Contact).len(), 40, "{sys}");
        assert_eq!(emails.len(), 40, "{sys} holds a contact twice");
    }
    // Both engines' streams ended with their leases released.
    let leases = w.store().leases().await.unwrap();
    assert_eq!(leases.len(), 2);
    assert!(leases.iter().all(|l| !l.is_live(Utc::now())), "{leases:?}");
    assert!(leases.iter().all(|l| l.token == 2), "{leases:?}");
}

fn entry(crm_id: &str, op: ChangeOp, n: u32) -> OutboxEntry {
    OutboxEntry {
        connection: "shop".into(),
        object: ObjectKind::Contact,
        crm_id: crm_id.into(),
        op,
        idempotency_key: format!("{crm_id}-{n}"),
    }
}

async fn outbox_rows_are_claimed_by_one_drain(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    {
        let mut c = store.pool().acquire().await.unwrap();
        outbox::enqueue(
            &mut c,
            &[
                entry("r1", ChangeOp::Create, 1),
                entry("r2", ChangeOp::Create, 1),
                entry("r1", ChangeOp::Update, 2),
                entry("r3", ChangeOp::Create, 1),
                entry("r3", ChangeOp::Delete, 2),
            ],
        )
        .await
        .unwrap();
    }
    let now = Utc::now();
    let ttl = Duration::from_secs(600);
    let claim = |holder: &'static str, at: chrono::DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .claim_pushes(
                    "shop",
                    ObjectKind::Contact,
                    10,
                    5,
                    &ClaimBy {
                        holder,
                        now: at,
                        ttl,
                    },
                )
                .await
                .unwrap()
        }
    };
    // GIVEN a drain that claimed the pending records (one row per record,
    // the later delete of r3 turning its claim into a delete)
    let first = claim("h1", now).await;
    let got: Vec<(&str, ChangeOp)> = first.iter().map(|p| (p.crm_id.as_str(), p.op)).collect();
    assert_eq!(
        got,
        [
            ("r1", ChangeOp::Create),
            ("r2", ChangeOp::Create),
            ("r3", ChangeOp::Delete)
        ]
    );
    // THEN another drain gets nothing while the claim lasts, the holder
    // gets its rows again, and an expired claim may be taken over
    assert!(claim("h2", now).await.is_empty());
    assert_eq!(claim("h1", now).await.len(), 3);
    let later = now + chrono::Duration::minutes(11);
    assert_eq!(claim("h2", later).await.len(), 3);
    assert!(claim("h1", later).await.is_empty());
    // A completed record is not claimed again; a released claim is free.
    {
        let mut c = store.pool().acquire().await.unwrap();
        outbox::complete(&mut c, "shop", ObjectKind::Contact, &["r1".to_string()])
            .await
            .unwrap();
    }
    store.release_claims("h2").await.unwrap();
    let again: Vec<String> = claim("h1", later)
        .await
        .into_iter()
        .map(|p| p.crm_id)
        .collect();
    assert_eq!(again, ["r2", "r3"]);
}

async fn concurrent_drains_never_claim_one_record_twice(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    {
        let mut c = store.pool().acquire().await.unwrap();
        let entries: Vec<OutboxEntry> = (0..60)
            .flat_map(|i| {
                [
                    entry(&format!("r{i}"), ChangeOp::Create, 1),
                    entry(&format!("r{i}"), ChangeOp::Update, 2),
                ]
            })
            .collect();
        outbox::enqueue(&mut c, &entries).await.unwrap();
    }
    // WHEN four drains claim and complete batches at the same time
    let mut tasks = tokio::task::JoinSet::new();
    for d in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            let holder = format!("drain-{d}");
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_pushes(
                        "shop",
                        ObjectKind::Contact,
                        5,
                        5,
                        &ClaimBy {
                            holder: &holder,
                            now: Utc::now(),
                            ttl: Duration::from_secs(600),
                        },
                    )
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                let ids: Vec<String> = batch.iter().map(|p| p.crm_id.clone()).collect();
                let mut c = store.pool().acquire().await.unwrap();
                outbox::complete(&mut c, "shop", ObjectKind::Contact, &ids)
                    .await
                    .unwrap();
                mine.extend(ids);
            }
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    // THEN every record was claimed by exactly one of them
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 60, "a record was claimed twice: {all:?}");
    assert_eq!(distinct.len(), 60);
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name("sqlite").await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name("postgres").await;
            })*
        }
    };
}

both!(
    lease_is_taken_over_after_its_ttl,
    a_dead_local_holders_lease_is_taken_over_at_once,
    fencing_token_rejects_a_stale_holders_commit,
    a_taken_over_run_cannot_commit_its_next_page,
    a_page_whose_cursor_moves_backwards_is_rolled_back,
    a_second_runner_is_refused_naming_the_holder,
    two_engines_at_once_apply_and_push_everything_once,
    outbox_rows_are_claimed_by_one_drain,
    concurrent_drains_never_claim_one_record_twice,
);
