//! Issue 11 item 4 and issue 18's leases, with real processes: `synchub run`
//! and `synchub daemon` started at the same time on ONE PostgreSQL store
//! against the Shopify and WooCommerce sandboxes. Each stream is read by one
//! of them at a time (the other waits, or is refused naming the holder), so
//! no page is applied twice (the pages of every run add up to each stream's
//! cursor), no customer is created twice in either shop, and the runs'
//! reports add up to what the store holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use synchub_core::ObjectKind;
use synchub_shopify::sandbox as shopify_sandbox;
use synchub_testkit::TestDb;
use synchub_woocommerce::sandbox as woo_sandbox;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

fn pipeline(shopify: &shopify_sandbox::SandboxHandle, woo: &woo_sandbox::SandboxHandle) -> String {
    let shop = shopify.config().shop;
    format!(
        r#"version = 1
name = "shops"
region = "TW"

[[connections]]
name = "shopify"
kind = "shopify"
direction = "two-way"
objects = ["contact", "order"]

[connections.config]
shop = "{shop}"
base_url = "{}"
access_token = "{}"
webhook_secrets = ["{}"]

[[connections]]
name = "woo"
kind = "woocommerce"
direction = "two-way"
objects = ["contact", "order"]

[connections.config]
base_url = "{}"
consumer_key = "{}"
consumer_secret = "{}"
webhook_secret = "{}"
"#,
        shopify.base_url,
        shopify_sandbox::SANDBOX_TOKEN,
        shopify_sandbox::SANDBOX_WEBHOOK_SECRET,
        woo.base_url,
        woo_sandbox::SANDBOX_KEY,
        woo_sandbox::SANDBOX_SECRET,
        woo_sandbox::SANDBOX_WEBHOOK_SECRET,
    )
}

fn run_once(db: &str, file: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["run", "--once", "--report", "json"])
        .arg(file)
        .env("SYNCHUB_DATABASE_URL", db)
        .output()
        .expect("run synchub")
}

async fn daemon_runs(http: &reqwest::Client, base: &str) -> u64 {
    let Ok(resp) = http.get(format!("{base}/health")).send().await else {
        return 0;
    };
    let Ok(v) = resp.json::<Value>().await else {
        return 0;
    };
    v["pipelines"]["shops"]["runs"].as_u64().unwrap_or(0)
}

/// Customers in each shop and CRM contacts after one `synchub run` alone
/// on fresh sandboxes and a fresh store.
async fn single_run_reference() -> (u64, usize, usize) {
    let shopify = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions::default())
        .await
        .unwrap();
    let woo = woo_sandbox::spawn(woo_sandbox::SandboxOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shops.toml");
    std::fs::write(&file, pipeline(&shopify, &woo)).unwrap();
    let db = TestDb::sqlite();
    let (url, f) = (db.url.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || run_once(&url, &f))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = db.store().await;
    let contacts = store.records(ObjectKind::Contact, false).await.unwrap();
    let counts = (
        shopify.shop().customers.len(),
        woo.store().customers.len(),
        contacts.len(),
    );
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_daemon_at_once_on_postgres_apply_every_page_once() {
    let shopify = shopify_sandbox::spawn(shopify_sandbox::SandboxOptions::default())
        .await
        .unwrap();
    let woo = woo_sandbox::spawn(woo_sandbox::SandboxOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shops.toml");
    std::fs::write(&file, pipeline(&shopify, &woo)).unwrap();
    let db = TestDb::postgres().await;
    // The schema exists before both start (each would otherwise migrate).
    let store = db.store().await;

    // WHEN a daemon (no schedule: it runs once at start) and a run start
    // on the same pipeline and store at the same time
    let daemon = synchub_testkit::process::start_daemon(BIN, &db.url, dir.path());
    let (url, f) = (db.url.clone(), file.clone());
    let run = tokio::task::spawn_blocking(move || run_once(&url, &f));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while daemon_runs(&http, &daemon.base).await < 1 {
        assert!(Instant::now() < deadline, "the daemon's run did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = run.await.unwrap();
    let daemon_pid = daemon.child.id();
    drop(daemon);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // THEN the run either had every stream or was refused the streams the
    // daemon held, naming the daemon (its pid) — never both at once
    if !out.status.success() {
        assert!(
            stderr.contains("is held by host") && stderr.contains(&format!("pid {daemon_pid}")),
            "the run failed for another reason: {stderr}"
        );
    }

    // A last single run finishes whatever a refused stream left waiting.
    let last = run_once(&db.url, &file);
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );

    // No customer was created twice in either shop: the counts equal those
    // one uninterrupted process reaches on fresh sandboxes.
    let (shopify_n, woo_n, contacts_n) = single_run_reference().await;
    assert_eq!(shopify.shop().customers.len(), shopify_n);
    assert_eq!(woo.store().customers.len(), woo_n);
    let contacts = store.records(ObjectKind::Contact, false).await.unwrap();
    assert_eq!(contacts.len(), contacts_n);
    assert!(shopify_n > 20 && woo_n > 20, "the reference pushed nothing");

    // The reports of every run (the run log) add up: pages per stream to
    // the stream's committed cursor (a page applied twice would count
    // twice against one step of the cursor), records created to the store.
    let runs = store.recent_runs(100).await.unwrap();
    // Three runs; consecutive runs that changed nothing share one row,
    // which keeps the last one's report (pages of the others are not in
    // the log, so then the pages may only fall short of the cursor).
    assert!(runs.len() == 3 || runs.len() == 2, "{runs:#?}");
    let collapsed = runs
        .iter()
        .any(|(_, _, _, json)| json.contains("\"noop_runs\""));
    assert!(runs.len() == 3 || collapsed, "{runs:#?}");
    let mut pages: BTreeMap<String, i64> = BTreeMap::new();
    let mut created: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, _, json) in &runs {
        let report: Value = serde_json::from_str(json).unwrap();
        for (stream, s) in report["streams"].as_object().unwrap() {
            *pages.entry(stream.clone()).or_default() += s["pages"].as_i64().unwrap();
            let object = stream.rsplit('.').next().unwrap().to_string();
            *created.entry(object).or_default() += s["created"].as_u64().unwrap();
        }
    }
    for (conn, object) in [
        ("shopify", ObjectKind::Contact),
        ("shopify", ObjectKind::Order),
        ("woo", ObjectKind::Contact),
        ("woo", ObjectKind::Order),
    ] {
        let seq = store.cursor(conn, object).await.unwrap().unwrap().seq;
        let applied = pages[&format!("{conn}.{object}")];
        let what =
            format!("{conn}.{object}: {applied} pages applied over all runs, cursor at {seq}");
        if collapsed {
            assert!(applied <= seq, "{what}");
        } else {
            assert_eq!(applied, seq, "{what}");
        }
    }
    for object in [ObjectKind::Contact, ObjectKind::Order] {
        let stored = store.records(object, true).await.unwrap().len() as u64;
        assert_eq!(
            created[object.as_str()],
            stored,
            "{object}: created vs stored"
        );
    }
    // Every lease was released.
    let leases = store.leases().await.unwrap();
    assert_eq!(leases.len(), 4, "{leases:#?}");
    assert!(leases.iter().all(|l| !l.is_live(chrono::Utc::now())));
}
