//! Rate-limit benchmarks against in-process sandboxes that enforce
//! Shopify's REST leaky bucket (40 burst, 2/s) and GraphQL cost bucket
//! (1000 points, 50/s). Each prints one `BENCH …` line.
//!
//! `SYNCHUB_BENCH_SECONDS` shortens the runs (default 120 s each).

#[path = "../tests/runtime/sandbox.rs"]
mod sandbox;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbox::{graphql_bucket, rest_bucket, Counters, SandboxPolicy};
use synchub_http::{HttpClient, QuotaConfig, QuotaRegistry, RetryPolicy};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        ..RetryPolicy::default()
    }
}

async fn run_workers(
    workers: usize,
    secs: f64,
    job: impl Fn(usize, u64) -> tokio::task::JoinHandle<()>,
) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        handles.push(job(w, (secs * 1000.0) as u64));
    }
    for h in handles {
        let _ = h.await;
    }
    start.elapsed().as_secs_f64()
}

async fn rest(secs: f64) {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    let counters = Arc::new(Counters::default());
    Mock::given(method("GET"))
        .respond_with(rest_bucket(40.0, 2.0, 50, counters.clone()))
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let client = HttpClient::builder(server.uri())
        .policy(Arc::new(SandboxPolicy))
        .credential("shopify:bench-rest")
        .quota(QuotaConfig::per_second(2, 40).with_max_concurrency(4))
        .retry(retry())
        .build_in(&registry)
        .expect("client");
    let started = Instant::now();
    let elapsed = run_workers(4, secs, |_, ms| {
        let c = client.clone();
        tokio::spawn(async move {
            while started.elapsed() < Duration::from_millis(ms) {
                let _ = c
                    .get("/admin/api/2024-01/customers.json?limit=50")
                    .send()
                    .await;
            }
        })
    })
    .await;
    let served = counters.served.load(Ordering::SeqCst) as f64;
    let records = counters.records.load(Ordering::SeqCst);
    let allowed = 40.0 + 2.0 * elapsed;
    println!(
        "BENCH name=shopify_rest_bucket records={records} seconds={elapsed:.1} rate={:.1} peak_rss_mb={:.1} http_429={} utilization={:.3}",
        records as f64 / elapsed,
        peak_rss_mb(),
        counters.throttled.load(Ordering::SeqCst),
        (served / allowed).min(1.0)
    );
}

async fn graphql(secs: f64) {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    let counters = Arc::new(Counters::default());
    Mock::given(method("POST"))
        .respond_with(graphql_bucket(1000.0, 50.0, counters.clone()))
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let client = HttpClient::builder(server.uri())
        .policy(Arc::new(SandboxPolicy))
        .credential("shopify:bench-graphql")
        .quota(QuotaConfig::per_second(50, 50).with_max_concurrency(8))
        .retry(retry())
        .build_in(&registry)
        .expect("client");
    let started = Instant::now();
    let elapsed = run_workers(4, secs, |w, ms| {
        let c = client.clone();
        tokio::spawn(async move {
            const FIRSTS: [u32; 6] = [10, 50, 100, 250, 25, 150];
            let mut i = w;
            while started.elapsed() < Duration::from_millis(ms) {
                let first = FIRSTS[i % FIRSTS.len()];
                i += 1;
                let body = serde_json::json!({
                    "query": "query($first:Int!){customers(first:$first){nodes{id}}}",
                    "variables": {"first": first}
                });
                let _ = c
                    .post("/admin/api/2024-01/graphql.json")
                    .json(&body)
                    .idempotent()
                    .graphql_cost(first + 2)
                    .send()
                    .await;
            }
        })
    })
    .await;
    let points = counters.points.load(Ordering::SeqCst) as f64;
    let records = counters.records.load(Ordering::SeqCst);
    let allowed = 1000.0 + 50.0 * elapsed;
    println!(
        "BENCH name=shopify_graphql_cost records={records} seconds={elapsed:.1} rate={:.1} peak_rss_mb={:.1} http_429={} utilization={:.3}",
        records as f64 / elapsed,
        peak_rss_mb(),
        counters.throttled.load(Ordering::SeqCst),
        (points / allowed).min(1.0)
    );
}

fn main() {
    let secs: f64 = std::env::var("SYNCHUB_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        rest(secs).await;
        graphql(secs).await;
    });
}
