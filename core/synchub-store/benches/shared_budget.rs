//! Two processes, one Shopify shop, one PostgreSQL store (issue 18 item 2):
//! a sandbox charging Shopify's documented query costs against the
//! standard-plan bucket (1000 points, 50 restored per second) is read whole
//! (paged customers) by two processes at once, each a separate OS process
//! with its own HTTP runtime, sharing only the store's `rate_budget`.
//!
//! Prints one `BENCH` line: `throttled` counts the shop's THROTTLED answers
//! (Shopify's GraphQL 429), and
//! `utilization = (points charged − (bucket − points left at the end)) / (restore rate × seconds)`,
//! the share of the points restored during the run that were spent. A
//! second line runs the same without the shared budget (each process
//! keeps only its own mirror of the bucket), for comparison.
//!
//! `SHARED_BUDGET_CUSTOMERS` (default 2,000: about 110 s) changes N;
//! `SHARED_BUDGET_DB` the PostgreSQL server (default the test server).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use sqlx::Connection;
use synchub_core::{Connector, Cursor, ObjectKind};
use synchub_shopify::sandbox::{self, SandboxOptions, SANDBOX_TOKEN};
use synchub_shopify::{ShopifyConfig, ShopifyConnector};
use synchub_store::Store;

const ROLE: &str = "SHARED_BUDGET_CHILD";
const BUCKET: (f64, f64) = (1000.0, 50.0);

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The child: pulls every customer; prints how many.
async fn child(shop: String, db: String) -> anyhow::Result<()> {
    if db != "none" {
        let store = Store::connect(&db).await?;
        let budget = store
            .shared_budget()
            .ok_or_else(|| anyhow::anyhow!("the bench needs PostgreSQL"))?;
        synchub_http::shared_budget::install(Arc::new(budget));
    }
    let mut cfg = ShopifyConfig::new("synchub-sandbox", SANDBOX_TOKEN);
    cfg.base_url = Some(shop);
    cfg.bucket_size = Some(BUCKET.0 as u32);
    // paged queries, the cost-bucket path, not a bulk export
    cfg.bulk_backfill = false;
    // the request-rate quota out of the way: the cost bucket is measured
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(1_000, 1_000));
    let conn = ShopifyConnector::new(cfg)?;
    let mut cursor: Option<Cursor> = None;
    let mut read = 0usize;
    loop {
        let page = conn.pull(ObjectKind::Contact, cursor.as_ref()).await?;
        read += page.records.len() + page.rejected.len();
        cursor = page.next.or(cursor);
        if page.done {
            break;
        }
    }
    println!("PULLED {read}");
    Ok(())
}

async fn fresh_database() -> anyhow::Result<String> {
    let admin = std::env::var("SHARED_BUDGET_DB")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("synchub_bench_{}", std::process::id());
    let mut conn = sqlx::postgres::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let base = admin
        .rsplit_once('/')
        .map_or(admin.clone(), |(b, _)| b.to_string());
    let url = format!("{base}/{name}");
    Store::connect(&url).await?.close().await;
    Ok(url)
}

async fn run(customers: u64, db: &str, name: &str) -> anyhow::Result<String> {
    let shop = sandbox::spawn(SandboxOptions {
        customers,
        orders: 0,
        throttle: Some(BUCKET),
        ..SandboxOptions::default()
    })
    .await?;
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let children = (0..2)
        .map(|_| {
            Command::new(&exe)
                .env(ROLE, format!("{} {db}", shop.base_url))
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output())
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let secs = start.elapsed().as_secs_f64();
    let mut records = 0u64;
    for out in &outputs {
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(out.status.success(), "a child failed: {text}");
        records += text
            .lines()
            .find_map(|l| l.strip_prefix("PULLED "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    let (throttled, charged, left, requests) = {
        let mut s = shop.shop();
        let left = s.bucket.as_mut().map_or(0.0, |b| {
            b.refill();
            b.available
        });
        (s.throttled, s.charged as f64, left, s.requests)
    };
    shop.shutdown().await;
    let utilization = (charged - (BUCKET.0 - left)) / (BUCKET.1 * secs);
    Ok(format!(
        "BENCH name={name} records={records} seconds={secs:.1} rate={:.1} peak_rss_mb={:.1} throttled={throttled} utilization={utilization:.3} processes=2 requests={requests} points={charged:.0} bucket={}/{}",
        records as f64 / secs,
        peak_rss_mb(),
        BUCKET.0,
        BUCKET.1
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(role) = std::env::var(ROLE) {
        let (shop, db) = role
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("bad {ROLE}"))?;
        return child(shop.to_string(), db.to_string()).await;
    }
    // `cargo bench` passes `--bench`; nothing else is taken.
    let customers = std::env::var("SHARED_BUDGET_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let db = fresh_database().await?;
    println!(
        "{}",
        run(customers, &db, "shared_budget_two_processes").await?
    );
    println!(
        "{}",
        run(customers, "none", "local_budget_two_processes").await?
    );
    Ok(())
}
