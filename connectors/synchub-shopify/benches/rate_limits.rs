//! Rate-limit benchmark against the sandbox charging Shopify's documented
//! query costs (priced from the query text it receives) with the cost
//! bucket on: paged customers (N = 20,000) and paged orders with line items
//! (N = 2,000), each at a standard-plan bucket (1000 points, 50/s) and a
//! larger one (2000, 100/s). The four runs go concurrently on separate
//! shops (they spend their time waiting on the buckets); each prints one
//! `BENCH` line with the THROTTLED answers it drew and the share of the
//! restore rate it used:
//! `utilization = (points charged − (bucket − points left at the end)) / (restore rate × seconds)`,
//! i.e. the points restored during the run that were spent.
//!
//! `SHOPIFY_BENCH_CUSTOMERS` / `SHOPIFY_BENCH_ORDERS` change N.
//! `peak_rss_mb` is the whole process (four shops and four connectors).

use std::time::Instant;

use synchub_core::{Connector, Cursor, ObjectKind};
use synchub_shopify::sandbox::{self, SandboxOptions};
use synchub_shopify::ShopifyConnector;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn env_n(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(object: ObjectKind, n: u64, bucket: (f64, f64)) -> anyhow::Result<String> {
    let (what, customers, orders) = match object {
        ObjectKind::Order => ("orders", 200, n),
        _ => ("customers", n, 0),
    };
    let shop = sandbox::spawn(SandboxOptions {
        customers,
        orders,
        throttle: Some(bucket),
        ..Default::default()
    })
    .await?;
    let mut cfg = shop.config();
    // the request-rate quota out of the way: the cost bucket is what is measured
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(1_000, 1_000));
    cfg.bucket_size = Some(bucket.0 as u32);
    let conn = ShopifyConnector::new(cfg)?;
    let start = Instant::now();
    let mut cursor: Option<Cursor> = None;
    let mut records = 0usize;
    let mut pages = 0usize;
    loop {
        let page = conn.pull(object, cursor.as_ref()).await?;
        pages += 1;
        records += page.records.len() + page.rejected.len();
        cursor = page.next.or(cursor);
        if page.done {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (throttled, charged, left) = {
        let mut s = shop.shop();
        let left = s.bucket.as_mut().map_or(0.0, |b| {
            b.refill();
            b.available
        });
        (s.throttled, s.charged as f64, left)
    };
    let utilization = (charged - (bucket.0 - left)) / (bucket.1 * secs);
    shop.shutdown().await;
    Ok(format!(
        "BENCH name=paged_{what}_{}_{} records={records} seconds={secs:.1} rate={:.1} peak_rss_mb={:.1} throttled={throttled} utilization={utilization:.3} pages={pages} points={charged:.0}",
        bucket.0,
        bucket.1,
        records as f64 / secs,
        peak_rss_mb()
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let customers = env_n("SHOPIFY_BENCH_CUSTOMERS", 20_000);
    let orders = env_n("SHOPIFY_BENCH_ORDERS", 2_000);
    let runs = [
        (ObjectKind::Contact, customers, (1000.0, 50.0)),
        (ObjectKind::Contact, customers, (2000.0, 100.0)),
        (ObjectKind::Order, orders, (1000.0, 50.0)),
        (ObjectKind::Order, orders, (2000.0, 100.0)),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for (object, n, bucket) in runs {
        tasks.spawn(run(object, n, bucket));
    }
    while let Some(done) = tasks.join_next().await {
        println!("{}", done??);
    }
    Ok(())
}
