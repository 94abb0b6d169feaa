//! One rate budget per credential across instances (issue 18 item 2), on
//! PostgreSQL: the token bucket in `rate_budget` seen from two pools, the
//! learning of a server bucket by one probe at a time, and two real
//! processes pulling one Shopify sandbox that charges Shopify's documented
//! costs against its real bucket — with the shared budget no THROTTLED
//! answer, without it (the control) THROTTLED answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use synchub_core::{Connector, Cursor, ObjectKind};
use synchub_http::shared_budget::{BucketShape, Observed, SharedBudget, Take};
use synchub_shopify::sandbox::{self, SandboxOptions, SANDBOX_TOKEN};
use synchub_shopify::{ShopifyConfig, ShopifyConnector};
use synchub_store::Store;
use synchub_testkit::TestDb;

const CHILD_SHOP: &str = "SHARED_BUDGET_CHILD_SHOP";
const CHILD_DB: &str = "SHARED_BUDGET_CHILD_DB";
const CHILD_BUCKET: &str = "SHARED_BUDGET_CHILD_BUCKET";

async fn two_instances(db: &TestDb) -> (Store, Store) {
    (db.store().await, db.store().await)
}

#[tokio::test]
async fn two_pools_take_from_one_bucket() {
    let db = TestDb::postgres().await;
    let (a, b) = two_instances(&db).await;
    let (a, b) = (a.shared_budget().unwrap(), b.shared_budget().unwrap());
    // GIVEN a full bucket of 10 restoring one point every 100 s
    let slow = Some(BucketShape {
        capacity: 10.0,
        refill_per_sec: 0.01,
    });
    // WHEN one instance takes 6 and the other 4
    // THEN the next point is refused with the wait the refill implies
    for _ in 0..6 {
        assert_eq!(
            a.take("slow#requests", 1.0, slow).await.unwrap(),
            Take::Granted
        );
    }
    for _ in 0..4 {
        assert_eq!(
            b.take("slow#requests", 1.0, slow).await.unwrap(),
            Take::Granted
        );
    }
    let Take::Wait(wait) = a.take("slow#requests", 1.0, slow).await.unwrap() else {
        panic!("an eleventh point was granted from a bucket of ten");
    };
    assert!(
        wait > Duration::from_secs(90) && wait <= Duration::from_secs(101),
        "{wait:?}"
    );
    let shape = Some(BucketShape {
        capacity: 10.0,
        refill_per_sec: 10.0,
    });

    // WHEN eight tasks on two pools take as fast as they can for two
    // seconds THEN together they get what the bucket allows, not more, and
    // hardly less
    let granted = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let budget = if i % 2 == 0 { a.clone() } else { b.clone() };
        let granted = granted.clone();
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < Duration::from_secs(2) {
                match budget.take("t#requests", 1.0, shape).await.unwrap() {
                    Take::Granted => {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                    Take::Wait(w) => tokio::time::sleep(w).await,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let allowed = 10.0 + 10.0 * secs;
    let got = granted.load(Ordering::Relaxed) as f64;
    assert!(
        got <= allowed.ceil(),
        "granted {got} of an allowance of {allowed:.1}"
    );
    assert!(
        got >= 0.9 * allowed - 1.0,
        "granted {got} of an allowance of {allowed:.1}"
    );
}

#[tokio::test]
async fn an_unknown_server_bucket_is_learned_by_one_probe() {
    let db = TestDb::postgres().await;
    let (a, b) = two_instances(&db).await;
    let (a, b) = (a.shared_budget().unwrap(), b.shared_budget().unwrap());
    // GIVEN nothing known about the shop's bucket: the first asker probes,
    // the second waits for what the probe learns
    assert_eq!(a.take("s#cost", 100.0, None).await.unwrap(), Take::Granted);
    assert!(matches!(
        b.take("s#cost", 100.0, None).await.unwrap(),
        Take::Wait(_)
    ));
    // WHEN the probe's answer reports 1000/50 with 400 left (it cost 80)
    let observed = Observed {
        shape: BucketShape {
            capacity: 1000.0,
            refill_per_sec: 50.0,
        },
        available: 400.0,
    };
    a.settle("s#cost", 20.0, Some(observed)).await.unwrap();
    // THEN the other instance spends the 400 and then waits for the refill
    assert_eq!(b.take("s#cost", 300.0, None).await.unwrap(), Take::Granted);
    let Take::Wait(wait) = b.take("s#cost", 200.0, None).await.unwrap() else {
        panic!("points granted that the shop does not have");
    };
    assert!(
        wait > Duration::from_millis(1800) && wait <= Duration::from_millis(2100),
        "{wait:?}"
    );
    // AND a server report below the shared level lowers it
    let low = Observed {
        available: 0.0,
        ..observed
    };
    a.settle("s#cost", 0.0, Some(low)).await.unwrap();
    let Take::Wait(wait) = a.take("s#cost", 100.0, None).await.unwrap() else {
        panic!("the server's lower level was ignored");
    };
    assert!(wait > Duration::from_millis(1900), "{wait:?}");
    // AND SQLite has no shared budget (one process)
    let lite = TestDb::sqlite();
    assert!(lite.store().await.shared_budget().is_none());
}

/// Runs two child processes pulling every customer of one sandbox shop;
/// returns (THROTTLED answers, utilization of the restore rate, each
/// child's output when it failed or did not read every customer).
async fn two_processes(
    customers: u64,
    bucket: (f64, f64),
    db: Option<&str>,
) -> (u64, f64, Vec<String>) {
    let shop = sandbox::spawn(SandboxOptions {
        customers,
        orders: 0,
        throttle: Some(bucket),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let start = Instant::now();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_pulls_every_customer",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_SHOP, &shop.base_url)
                .env(CHILD_DB, db.unwrap_or("none"))
                .env(CHILD_BUCKET, bucket.0.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let failed: Vec<String> = outputs
        .iter()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .zip(outputs.iter().map(|o| o.status.success()))
        .filter(|(text, ok)| !ok || !text.contains(&format!("PULLED {customers}")))
        .map(|(text, _)| text)
        .collect();
    let (throttled, charged, left) = {
        let mut s = shop.shop();
        let left = s.bucket.as_mut().map_or(0.0, |b| {
            b.refill();
            b.available
        });
        (s.throttled, s.charged as f64, left)
    };
    shop.shutdown().await;
    let utilization = (charged - (bucket.0 - left)) / (bucket.1 * secs);
    (throttled, utilization, failed)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_on_one_shop_never_draw_throttled() {
    let db = TestDb::postgres().await;
    // the store migrated once, before the children race to it
    drop(db.store().await);
    // GIVEN a shop with a 300-point bucket restoring 300/s and 500
    // customers, read whole by two processes at once
    // WHEN they share the store's budget THEN the shop never throttles
    let (throttled, utilization, failed) = two_processes(500, (300.0, 300.0), Some(&db.url)).await;
    println!("shared: throttled={throttled} utilization={utilization:.3}");
    assert!(failed.is_empty(), "a child failed: {failed:?}");
    assert_eq!(throttled, 0, "THROTTLED answers with a shared budget");
    // Utilization depends on how busy the machine is (a debug build among
    // other tests): the figure is `deploy/bench.sh shared_budget`'s to
    // measure. Here only a budget that starves its users outright fails.
    assert!(utilization >= 0.25, "utilization {utilization:.3}");
    // AND WHEN each keeps only its own mirror of the bucket (the control)
    // THEN the shop throttles them (some give up after their retries):
    // the test can tell the difference
    let (throttled, _, failed) = two_processes(500, (300.0, 300.0), None).await;
    println!(
        "local only: throttled={throttled} failed children={}",
        failed.len()
    );
    assert!(
        throttled > 0,
        "two processes without a shared budget were never throttled"
    );
}

/// One of the two processes of the test above (started by it with the
/// shop, store and bucket in the environment).
#[tokio::test]
#[ignore = "a child process of two_processes_on_one_shop_never_draw_throttled"]
async fn child_pulls_every_customer() {
    let shop = std::env::var(CHILD_SHOP).expect("started by the parent test");
    let db = std::env::var(CHILD_DB).expect("started by the parent test");
    let bucket: u32 = std::env::var(CHILD_BUCKET)
        .expect("started by the parent test")
        .parse::<f64>()
        .unwrap() as u32;
    if db != "none" {
        let store = Store::connect(&db).await.unwrap();
        synchub_http::shared_budget::install(Arc::new(store.shared_budget().unwrap()));
    }
    let mut cfg = ShopifyConfig::new("synchub-sandbox", SANDBOX_TOKEN);
    cfg.base_url = Some(shop);
    cfg.bucket_size = Some(bucket);
    // paged queries, the cost-bucket path, not a bulk export
    cfg.bulk_backfill = false;
    // the request-rate quota out of the way: the cost bucket is under test
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(1_000, 1_000));
    let conn = ShopifyConnector::new(cfg).unwrap();
    let mut cursor: Option<Cursor> = None;
    let mut read = 0usize;
    loop {
        let page = conn
            .pull(ObjectKind::Contact, cursor.as_ref())
            .await
            .unwrap();
        read += page.records.len() + page.rejected.len();
        cursor = page.next.or(cursor);
        if page.done {
            break;
        }
    }
    println!("PULLED {read}");
}
