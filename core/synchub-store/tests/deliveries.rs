//! Webhook state in the store (issue 18 item 3), on SQLite and PostgreSQL:
//! the replay guard remembers a delivery across handles (a restart, another
//! instance) until its retention ends or it is forgotten; a burst of
//! wake-ups collapses into one pending row that one taker wins; a queued
//! delete is claimed by one instance at a time, released with its error
//! when it fails, and claimed again once due.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use synchub_http::webhook::ReplayGuard;
use synchub_store::deliveries::StoreReplayGuard;
use synchub_testkit::TestDb;

const DAY: Duration = Duration::from_secs(86_400);

async fn replay_guard_survives_a_new_handle(backend: &str) {
    let db = TestDb::of(backend).await;
    // GIVEN a delivery taken through one handle (a process that then stops)
    {
        let guard = StoreReplayGuard::new(db.store().await, "shop_tw#id", DAY);
        assert!(guard.first_seen("wh-1").await, "{backend}");
    }
    // WHEN it is redelivered to a new handle THEN it is a repeat
    let store = db.store().await;
    let guard = StoreReplayGuard::new(store.clone(), "shop_tw#id", DAY);
    assert!(!guard.first_seen("wh-1").await, "{backend}");
    // AND the same id on another connection is its own
    let other = StoreReplayGuard::new(store.clone(), "woo#id", DAY);
    assert!(other.first_seen("wh-1").await, "{backend}");
    // AND a forgotten delivery (it could not be carried out) is taken again
    guard.forget("wh-1").await;
    assert!(guard.first_seen("wh-1").await, "{backend}");
    // AND past the retention a sighting counts as new
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store
        .mark_seen("shop_tw#id", "wh-1", Duration::from_millis(1))
        .await
        .unwrap());
    assert!(store.prune_seen(Duration::from_millis(1)).await.unwrap() >= 1);
}

async fn queue_collapses_wakes_and_retries_deletes(backend: &str) {
    let db = TestDb::of(backend).await;
    let (a, b) = (db.store().await, db.store().await);
    // GIVEN a burst of three webhooks for one pipeline
    assert!(a.enqueue_wake("shops", "shop_tw", "contact").await.unwrap());
    assert!(!b.enqueue_wake("shops", "shop_tw", "contact").await.unwrap());
    assert!(!a.enqueue_wake("shops", "shop_tw", "order").await.unwrap());
    // THEN one run is pending, and one instance takes it
    assert!(b.take_wake("shops").await.unwrap());
    assert!(!a.take_wake("shops").await.unwrap());

    // GIVEN a queued delete
    let id = a
        .enqueue_delete("shops", "shop_tw", "order", r#"{"x":1}"#)
        .await
        .unwrap();
    let depth = a.queue_depth().await.unwrap();
    assert_eq!(depth.len(), 1, "{depth:?}");
    assert_eq!((depth[0].kind.as_str(), depth[0].rows), ("delete", 1));
    // WHEN instance A claims it THEN B cannot while A's claim lasts
    let claimed = a
        .claim_deletes("shops", "A", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id, claimed[0].attempts), (id, 1));
    assert_eq!(claimed[0].payload, r#"{"x":1}"#);
    assert!(b
        .claim_deletes("shops", "B", Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    // WHEN it fails with a later retry THEN nobody takes it before then
    a.fail_delete(id, "store busy", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(b
        .claim_deletes("shops", "B", Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    // WHEN it fails with a retry due now THEN B takes it, second attempt
    a.fail_delete(id, "store busy", Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = b
        .claim_deletes("shops", "B", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    // AND once applied it leaves the queue
    b.finish_delete(id).await.unwrap();
    assert!(a.queue_depth().await.unwrap().is_empty());
}

#[tokio::test]
async fn replay_guard_survives_a_new_handle_sqlite() {
    replay_guard_survives_a_new_handle("sqlite").await;
}

#[tokio::test]
async fn replay_guard_survives_a_new_handle_postgres() {
    replay_guard_survives_a_new_handle("postgres").await;
}

#[tokio::test]
async fn queue_collapses_wakes_and_retries_deletes_sqlite() {
    queue_collapses_wakes_and_retries_deletes("sqlite").await;
}

#[tokio::test]
async fn queue_collapses_wakes_and_retries_deletes_postgres() {
    queue_collapses_wakes_and_retries_deletes("postgres").await;
}
