//! Issue 18 item 2: a `Retry-After` one instance is given pauses every
//! instance sharing the credential through the PostgreSQL store, not only
//! the one that was told.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use synchub_http::shared_budget::{BucketShape, SharedBudget, Take};
use synchub_http::{HttpClient, QuotaConfig};
use synchub_testkit::TestDb;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_seen_by_one_instance_pauses_the_others() {
    // GIVEN two instances on one store: this process's client takes from
    // the store's budget, and a second pool stands for the other instance
    let db = TestDb::postgres().await;
    let ours = db.store().await;
    let theirs = db.store().await;
    synchub_http::shared_budget::install(Arc::new(ours.shared_budget().unwrap()));
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "4"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let quota = QuotaConfig {
        requests: 10,
        per_secs: 1,
        burst: 10,
        daily_cap: None,
        max_concurrency: None,
    };
    let client = HttpClient::builder(server.uri())
        .credential("shop-paused")
        .quota(quota.clone())
        .build()
        .unwrap();

    // WHEN our request is answered 429 with `Retry-After: 4`
    let asked = Instant::now();
    let ours_req = tokio::spawn(async move { client.get("/customers").send().await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no request reached the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // THEN the other instance, asking for the same credential's allowance
    // within those seconds, is told to wait out the rest of them
    let key: String = sqlx::query("SELECT key FROM rate_budget WHERE key LIKE '%#requests'")
        .fetch_one(theirs.pool())
        .await
        .unwrap()
        .get(0);
    let budget = theirs.shared_budget().unwrap();
    let shape = BucketShape {
        capacity: 10.0,
        refill_per_sec: 10.0,
    };
    let wait = loop {
        match budget.take(&key, 1.0, Some(shape)).await.unwrap() {
            Take::Wait(w) => break w,
            Take::Granted => {
                assert!(
                    asked.elapsed() < Duration::from_secs(2),
                    "the other instance was never paused"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    assert!(
        wait > Duration::from_secs(2) && wait <= Duration::from_secs(5),
        "paused for {wait:?}, not the rest of the 4 s"
    );
    // AND our request went through after the pause
    let resp = ours_req.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
