//! GIVEN a shop of 1,000 customers and 1,600 orders (the sandbox, which
//! charges Shopify's documented query costs and reports 100 points/s)
//! WHEN `synchub run` backfills it with `bulk_backfill = false`
//! THEN the terminal says once per stream how long the paged backfill takes
//! by those costs; with the default (bulk) it says nothing of the kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use synchub_shopify::sandbox::{self, SandboxOptions, SANDBOX_TOKEN};
use synchub_testkit::TestDb;

fn pipeline(shop: &str, base_url: &str, bulk: Option<bool>) -> String {
    let bulk = bulk.map_or(String::new(), |b| format!("bulk_backfill = {b}\n"));
    format!(
        r#"version = 1
name = "shop-tw"
region = "TW"

[[connections]]
name = "shop_tw"
kind = "shopify"
direction = "pull"
objects = ["contact", "order"]

[connections.config]
shop = "{shop}"
base_url = "{base_url}"
access_token = "{SANDBOX_TOKEN}"
{bulk}"#
    )
}

async fn run_once(bulk: Option<bool>) -> (Output, String) {
    let shop = sandbox::spawn(SandboxOptions {
        customers: 1_000,
        orders: 1_600,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.toml");
    std::fs::write(&file, pipeline(&shop.config().shop, &shop.base_url, bulk)).unwrap();
    let db = TestDb::sqlite();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_synchub"))
            .args(["run", "--once"])
            .arg(&file)
            .env("SYNCHUB_DATABASE_URL", &db.url)
            .env_remove("SYNCHUB_LOG")
            .output()
            .expect("run synchub")
    })
    .await
    .unwrap();
    shop.shutdown().await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_backfill_says_how_long_it_takes_once_per_stream() {
    let (out, stderr) = run_once(Some(false)).await;
    assert!(out.status.success(), "{stderr}");
    // orders: 100 pages of 16 (the largest page under the 1,000-point
    // maximum) × 962 points = 96,200 points at 100/s = 962 s;
    // customers: 4 pages of 250 × 752 points = 3,008 points = 30.08 s
    let orders = "shop_tw.order: paged backfill of 1,600 orders ≈ 16 min 2 s at 100 points/s; \
                  set bulk_backfill = true";
    let customers = "shop_tw.contact: paged backfill of 1,000 customers ≈ 30 s at 100 points/s;";
    assert_eq!(stderr.matches(orders).count(), 1, "{stderr}");
    assert_eq!(stderr.matches(customers).count(), 1, "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_backfill_by_default_says_nothing_about_pages() {
    let (out, stderr) = run_once(None).await;
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("paged backfill"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1600") || stdout.contains("1,600"),
        "{stdout}"
    );
}
