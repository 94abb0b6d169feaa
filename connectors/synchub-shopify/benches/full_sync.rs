//! Full sync benchmark: a sandbox shop of N customers and N orders
//! (throttling off) synced through the whole engine (pull, map, normalize,
//! match keys, identity map, snapshots, cursor; one transaction per page)
//! into a PostgreSQL database created for the run.
//!
//! Each size runs in a child process so its peak RSS is its own; the
//! sandbox runs in that process too (its rows are generated lazily, so it
//! adds little). `SYNCHUB_BENCH_SIZES` (default `10000,100000`) chooses N,
//! `SYNCHUB_BENCH_POSTGRES` the server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `SYNCHUB_BENCH_DB_PARAMS`
//! URL parameters of the bench database, `SHOPIFY_BENCH_BULK=0`
//! reads by GraphQL pages instead of a bulk export. The largest size prints
//! the last line, `BENCH name=shopify_full_sync …`; smaller ones are named
//! `shopify_full_sync_<N>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use sqlx::Connection as _;
use synchub_core::ObjectKind;
use synchub_engine::{Connection, Direction, Engine, RunOptions};
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

fn admin_url() -> String {
    std::env::var("SYNCHUB_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn child(n: u64, name: &str) -> anyhow::Result<()> {
    let admin = admin_url();
    let db = format!("synchub_bench_shopify_{}", std::process::id());
    let mut pg = sqlx::postgres::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute(&mut pg)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut pg)
        .await?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    // e.g. `options=-c%20plan_cache_mode%3Dforce_custom_plan` to try planner settings
    let params = std::env::var("SYNCHUB_BENCH_DB_PARAMS")
        .map(|p| format!("?{p}"))
        .unwrap_or_default();
    let store = synchub_store::Store::connect(&format!("{base}/{db}{params}")).await?;

    let shop = sandbox::spawn(SandboxOptions {
        customers: n,
        orders: n,
        throttle: None,
        ..Default::default()
    })
    .await?;
    let mut cfg = shop.config();
    // the shop's own cost bucket is off; so is the client-side request quota
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(1_000_000, 1_000_000));
    cfg.bulk_backfill = std::env::var("SHOPIFY_BENCH_BULK").map_or(true, |v| v != "0");
    let bulk = cfg.bulk_backfill;
    let engine = Engine::new(
        store.clone(),
        "bench",
        vec![Connection {
            name: "shopify".into(),
            connector: Arc::new(ShopifyConnector::new(cfg)?),
            direction: Direction::TwoWay,
            objects: vec![ObjectKind::Contact, ObjectKind::Order],
            region: Some("TW".into()),
        }],
        Default::default(),
        BTreeMap::new(),
    );
    let started = Instant::now();
    let report = engine
        .run(&RunOptions {
            full_refresh: true,
            ..RunOptions::default()
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let t = report.total();
    anyhow::ensure!(report.errors.is_empty(), "{}", report.to_table());
    anyhow::ensure!(t.read == 2 * n, "read {} of {}", t.read, 2 * n);
    anyhow::ensure!(
        t.created + t.dead_lettered == 2 * n,
        "{}",
        report.to_table()
    );
    eprint!("{}", report.to_table());
    let requests = shop.shop().requests;
    println!(
        "BENCH name={name} records={} seconds={secs:.2} rate={:.0} peak_rss_mb={:.1} customers={n} orders={n} created={} dead_letters={} pages={} graphql_requests={requests} bulk={bulk} backend=postgres",
        t.read,
        t.read as f64 / secs,
        peak_rss_mb(),
        t.created,
        t.dead_lettered,
        t.pages,
    );
    shop.shutdown().await;
    store.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut pg)
        .await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var("SYNCHUB_BENCH_CHILD") {
        let (n, name) = spec
            .split_once(':')
            .unwrap_or((spec.as_str(), "shopify_full_sync"));
        let rt = tokio::runtime::Runtime::new()?;
        return rt.block_on(child(n.parse()?, name));
    }
    let sizes = std::env::var("SYNCHUB_BENCH_SIZES").unwrap_or_else(|_| "10000,100000".into());
    let mut sizes: Vec<u64> = sizes
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    sizes.sort_unstable();
    let exe = std::env::current_exe()?;
    for (i, n) in sizes.iter().enumerate() {
        let name = if i + 1 == sizes.len() {
            "shopify_full_sync".to_string()
        } else {
            format!("shopify_full_sync_{n}")
        };
        let status = std::process::Command::new(&exe)
            .env("SYNCHUB_BENCH_CHILD", format!("{n}:{name}"))
            .status()?;
        anyhow::ensure!(status.success(), "benchmark of {n} customers failed");
    }
    Ok(())
}
