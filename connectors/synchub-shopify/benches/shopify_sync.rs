//! Pull benchmark: a sandbox shop of N customers and N orders (throttling
//! off), read to the end through the connector, page by page and then by a
//! bulk export. Prints one `BENCH` line per mode.
//!
//! `SHOPIFY_BENCH_N` sets N (default 100,000). The sandbox runs in the same
//! process, so `peak_rss_mb` includes it (its rows are generated lazily).

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

async fn pull_stream(conn: &ShopifyConnector, object: ObjectKind) -> anyhow::Result<usize> {
    let mut cursor: Option<Cursor> = None;
    let mut n = 0;
    loop {
        let page = conn.pull(object, cursor.as_ref()).await?;
        n += page.records.len() + page.rejected.len();
        cursor = page.next.or(cursor);
        if page.done {
            return Ok(n);
        }
    }
}

async fn run(name: &str, n: u64, bulk: bool) -> anyhow::Result<()> {
    let shop = sandbox::spawn(SandboxOptions {
        customers: n,
        orders: n,
        ..Default::default()
    })
    .await?;
    let mut cfg = shop.config();
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(1_000_000, 1_000_000));
    cfg.bulk_backfill = bulk;
    let conn = ShopifyConnector::new(cfg)?;
    let start = Instant::now();
    let customers = pull_stream(&conn, ObjectKind::Contact).await?;
    let orders = pull_stream(&conn, ObjectKind::Order).await?;
    let secs = start.elapsed().as_secs_f64();
    let records = customers + orders;
    let requests = shop.shop().requests;
    println!(
        "BENCH name={name} records={records} seconds={secs:.2} rate={:.0} peak_rss_mb={:.1} customers={customers} orders={orders} graphql_requests={requests} http_429=0",
        records as f64 / secs,
        peak_rss_mb()
    );
    shop.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = std::env::var("SHOPIFY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    run("shopify_pull", n, false).await?;
    run("shopify_bulk_pull", n, true).await?;
    Ok(())
}
