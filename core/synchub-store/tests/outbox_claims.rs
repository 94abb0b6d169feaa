//! Outbox claims left by a drain whose process has ended (a `synchub run`
//! SIGKILLed mid-push) are taken over by the next drain at once, on SQLite
//! and PostgreSQL; claims of a live process, of another host, and deferral
//! markers are left to run out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use synchub_core::{ChangeOp, ObjectKind};
use synchub_store::leases::{host_name, new_holder};
use synchub_store::outbox::{self, ClaimBy, OutboxEntry};
use synchub_testkit::TestDb;

const TTL: Duration = Duration::from_secs(600);

/// The pid of a process that has ended (spawned and reaped here).
fn ended_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Claims one record (the oldest free one) for `holder`.
async fn claim(store: &synchub_store::Store, holder: &str) -> Vec<String> {
    store
        .claim_pushes(
            "shop",
            ObjectKind::Contact,
            1,
            5,
            &ClaimBy {
                holder,
                now: chrono::Utc::now(),
                ttl: TTL,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.crm_id)
        .collect()
}

async fn dead_drains_claims_are_taken_over(backend: &str) {
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let entries: Vec<OutboxEntry> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| OutboxEntry {
            connection: "shop".into(),
            object: ObjectKind::Contact,
            crm_id: (*id).into(),
            op: ChangeOp::Create,
            idempotency_key: format!("key-{id}"),
        })
        .collect();
    {
        let mut conn = store.pool().acquire().await.unwrap();
        outbox::enqueue(&mut conn, &entries).await.unwrap();
    }
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    // GIVEN "a" claimed by a drain of this host whose process has ended,
    let dead = format!("{}:{}:{uuid}", host_name(), ended_pid());
    // "b" by a live process of this host (the test runner's parent),
    let live = format!(
        "{}:{}:{uuid}",
        host_name(),
        std::os::unix::process::parent_id()
    );
    // "c" by a process of another host, and "d" held back by a deferral
    let other_host = format!("elsewhere.example:{}:{uuid}", ended_pid());
    for (holder, id) in [(&dead, "a"), (&live, "b"), (&other_host, "c")] {
        assert_eq!(claim(&store, holder).await, vec![id], "{backend}: {holder}");
    }
    assert_eq!(
        claim(&store, "deferred:retry-after").await,
        vec!["d"],
        "{backend}"
    );
    // WHEN a new drain looks for work, nothing is free
    let next = new_holder();
    assert!(claim(&store, &next).await.is_empty(), "{backend}");
    // THEN releasing ended processes' claims frees exactly the dead drain's
    let ended = store
        .release_dead_claims("shop", ObjectKind::Contact)
        .await
        .unwrap();
    assert_eq!(ended, 1, "{backend}");
    let taken = store
        .claim_pushes(
            "shop",
            ObjectKind::Contact,
            10,
            5,
            &ClaimBy {
                holder: &next,
                now: chrono::Utc::now(),
                ttl: TTL,
            },
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "{backend}");
    assert_eq!(taken[0].crm_id, "a", "{backend}");
    // AND its idempotency key is the one the dead drain sent
    assert_eq!(taken[0].idempotency_key, "key-a", "{backend}");
    // AND a second look ends nothing more
    assert_eq!(
        store
            .release_dead_claims("shop", ObjectKind::Contact)
            .await
            .unwrap(),
        0,
        "{backend}"
    );
}

#[tokio::test]
async fn dead_drains_claims_are_taken_over_sqlite() {
    dead_drains_claims_are_taken_over("sqlite").await;
}

#[tokio::test]
async fn dead_drains_claims_are_taken_over_postgres() {
    dead_drains_claims_are_taken_over("postgres").await;
}
