//! A budget that runs dry makes the client wait, not draw a 429.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use synchub_http::{HttpClient, QuotaConfig, QuotaRegistry};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::sandbox::{graphql_bucket, rest_bucket, Counters, SandboxPolicy};

#[tokio::test]
async fn rest_bucket_running_dry_waits_instead_of_429_across_two_pipelines() {
    // GIVEN a shop whose bucket holds 10 requests and leaks 10/s
    let server = MockServer::start().await;
    let counters = Arc::new(Counters::default());
    Mock::given(method("GET"))
        .and(path("/customers.json"))
        .respond_with(rest_bucket(10.0, 10.0, 5, counters.clone()))
        .mount(&server)
        .await;
    // AND two pipelines (clients) on the same credential
    let registry = QuotaRegistry::new();
    let make = || {
        HttpClient::builder(server.uri())
            .credential("shop:shared")
            .policy(Arc::new(SandboxPolicy))
            .quota(QuotaConfig::per_second(10, 10))
            .retry(crate::fast_retry(1))
            .build_in(&registry)
            .unwrap()
    };
    let (a, b) = (make(), make());
    assert!(Arc::ptr_eq(a.quota(), b.quota()));
    // WHEN both pull 15 pages concurrently (30 requests, 3x the bucket)
    let start = Instant::now();
    let run = |c: HttpClient| async move {
        for _ in 0..15 {
            let r = c.get("/customers.json").send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.attempts(), 1);
        }
    };
    tokio::join!(run(a), run(b));
    // THEN nothing was refused and the client paced itself to the leak rate
    assert_eq!(counters.throttled.load(Ordering::SeqCst), 0);
    assert_eq!(counters.served.load(Ordering::SeqCst), 30);
    assert!(
        start.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn graphql_cost_bucket_waits_for_points_instead_of_throttled() {
    // GIVEN a cost bucket of 200 points restoring 500/s
    let server = MockServer::start().await;
    let counters = Arc::new(Counters::default());
    Mock::given(method("POST"))
        .respond_with(graphql_bucket(200.0, 500.0, counters.clone()))
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let client = HttpClient::builder(server.uri())
        .credential("shop:gql")
        .policy(Arc::new(SandboxPolicy))
        .quota(QuotaConfig::per_second(1000, 1000).with_max_concurrency(4))
        .retry(crate::fast_retry(1))
        .build_in(&registry)
        .unwrap();
    // WHEN 4 workers send 20 queries of varying cost (32..152 points)
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5u32 {
                let first = [30, 150, 60, 100][((w + i) % 4) as usize];
                let body = serde_json::json!({"query": "query($first:Int){customers(first:$first){nodes{id}}}", "variables": {"first": first}});
                let r = c.post("/graphql.json").json(&body).idempotent().graphql_cost(first + 2).send().await.unwrap();
                assert_eq!(r.attempts(), 1, "a query was throttled");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // THEN no query was throttled
    assert_eq!(counters.throttled.load(Ordering::SeqCst), 0);
    assert_eq!(counters.served.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn throttled_answer_is_waited_out_by_its_throttle_status() {
    // GIVEN a server whose first answer is THROTTLED with a throttleStatus
    // implying (300 - 250) / 100 = 0.5 s, and whose later answers succeed
    let server = MockServer::start().await;
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let seen = arrivals.clone();
    Mock::given(method("POST"))
        .respond_with(move |_: &wiremock::Request| {
            let mut a = seen.lock().unwrap();
            a.push(Instant::now());
            let status = serde_json::json!({"maximumAvailable": 1000.0, "currentlyAvailable": 250, "restoreRate": 100.0});
            let body = if a.len() == 1 {
                serde_json::json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": {"requestedQueryCost": 300, "actualQueryCost": null, "throttleStatus": status}}})
            } else {
                serde_json::json!({"data": {"shop": {"name": "x"}},
                    "extensions": {"cost": {"requestedQueryCost": 300, "actualQueryCost": 3, "throttleStatus": status}}})
            };
            wiremock::ResponseTemplate::new(200).set_body_json(body)
        })
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let client = HttpClient::builder(server.uri())
        .credential("shop:throttled")
        .policy(Arc::new(SandboxPolicy))
        .quota(QuotaConfig::per_second(1000, 1000))
        .build_in(&registry)
        .unwrap();
    // WHEN a query whose cost the client under-estimates (10 points) is sent
    let body = serde_json::json!({"query": "{ shop { name } }"});
    let r = client
        .post("/graphql.json")
        .json(&body)
        .idempotent()
        .graphql_cost(10)
        .send()
        .await
        .unwrap();
    // THEN it was retried once, no sooner than the answer's own figure
    assert_eq!(r.attempts(), 2);
    let a = arrivals.lock().unwrap();
    let gap = a[1] - a[0];
    assert!(gap >= Duration::from_millis(500), "retried after {gap:?}");
    assert!(gap < Duration::from_millis(900), "waited too long: {gap:?}");
}

#[tokio::test]
async fn without_a_policy_reading_them_budget_headers_and_cost_blocks_are_ignored() {
    // GIVEN a server whose first answer is a THROTTLED body and whose
    // budget header says the bucket is full
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("X-Shopify-Shop-Api-Call-Limit", "40/40")
                .set_body_json(serde_json::json!({
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": {"requestedQueryCost": 300, "actualQueryCost": null,
                        "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 1.0}}}})),
        )
        .mount(&server)
        .await;
    // AND a client with no policy (the runtime knows no provider's conventions)
    let client = HttpClient::builder(server.uri())
        .credential("generic:no-policy")
        .quota(QuotaConfig::per_second(1000, 1000))
        .build_in(&QuotaRegistry::new())
        .unwrap();
    // WHEN two requests are sent
    let start = Instant::now();
    for _ in 0..2 {
        let r = client
            .post("/graphql.json")
            .idempotent()
            .send()
            .await
            .unwrap();
        // THEN each answer is handed over as it is, once, without waiting
        assert_eq!((r.status().as_u16(), r.attempts()), (200, 1));
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn request_costing_more_than_the_whole_bucket_is_never_sent() {
    // GIVEN a server whose answers report a 500-point bucket
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "data": {"shop": {"name": "x"}},
            "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": 1,
                "throttleStatus": {"maximumAvailable": 500.0, "currentlyAvailable": 499, "restoreRate": 25.0}}}})))
        .mount(&server)
        .await;
    let client = HttpClient::builder(server.uri())
        .credential("shop:small-bucket")
        .policy(Arc::new(SandboxPolicy))
        .build_in(&QuotaRegistry::new())
        .unwrap();
    let body = serde_json::json!({"query": "{ shop { name } }"});
    let send = |cost: u32| {
        client
            .post("/graphql.json")
            .json(&body)
            .idempotent()
            .graphql_cost(cost)
            .send()
    };
    send(10).await.unwrap();
    // WHEN a request costing 600 points follows
    let err = send(600).await.unwrap_err();
    // THEN it is refused as configuration, naming the host and the bucket, and never sent
    assert!(matches!(err, synchub_http::HttpError::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("500") && text.contains("127.0.0.1"), "{text}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
