//! GIVEN a WooCommerce store (the sandbox) of 200 customers read 10 to a
//! page, each page served slowly (the test kit's proxy holds every answer)
//! WHEN `synchub run --once` gets SIGTERM once page 3 is committed
//! THEN it ends after at most the page in flight, with exit code 143 and a
//! line naming the stream and the page it stopped at; the committed pages
//! are whole; the next run resumes there and reads the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use synchub_core::ObjectKind;
use synchub_testkit::process::cursor_seq;
use synchub_testkit::proxy::FaultProxy;
use synchub_testkit::TestDb;
use synchub_woocommerce::sandbox::{self as woo, SandboxOptions, SANDBOX_KEY, SANDBOX_SECRET};

const CUSTOMERS: u64 = 200;
const PER_PAGE: u64 = 10;
const STREAM: (&str, ObjectKind) = ("woo_tw", ObjectKind::Contact);

fn pipeline(base_url: &str) -> String {
    format!(
        r#"version = 1
name = "woo-tw"
region = "TW"

[[connections]]
name = "woo_tw"
kind = "woocommerce"
direction = "pull"
objects = ["contact"]

[connections.config]
base_url = "{base_url}"
consumer_key = "{SANDBOX_KEY}"
consumer_secret = "{SANDBOX_SECRET}"
per_page = {PER_PAGE}
"#
    )
}

fn run(db: &str, pipeline: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["run", "--once", "--report", "json"])
        .arg(pipeline)
        .env("SYNCHUB_DATABASE_URL", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn synchub run")
}

/// The child's output once it exits; panics if it is still running after
/// `patience` (a run that ignores SIGTERM).
async fn output_within(child: std::process::Child, patience: Duration) -> Output {
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    tokio::time::timeout(patience, waited)
        .await
        .expect("synchub run was still running")
        .unwrap()
        .unwrap()
}

fn read_in(out: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}"));
    report["streams"]["woo_tw.contact"]["read"]
        .as_u64()
        .unwrap_or_else(|| panic!("no read count in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_synchub_run_after_the_page_in_flight() {
    // GIVEN 200 customers behind a proxy that serves each page slowly
    let shop = woo::spawn(SandboxOptions {
        customers: CUSTOMERS,
        orders: 0,
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let proxy = FaultProxy::spawn(&shop.base_url).await.unwrap();
    proxy.slow_down(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("woo.toml");
    std::fs::write(&file, pipeline(&proxy.base_url)).unwrap();
    let db = TestDb::sqlite();
    let store = db.store().await;
    let child = run(&db.url, &file);

    // WHEN SIGTERM arrives once page 3 is committed
    let deadline = Instant::now() + Duration::from_secs(60);
    while cursor_seq(&store, STREAM.0, STREAM.1).await < 3 {
        assert!(Instant::now() < deadline, "the run did not reach page 3");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
    let before = cursor_seq(&store, STREAM.0, STREAM.1).await;
    let out = output_within(child, Duration::from_secs(60)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);

    // THEN it stopped after at most the page in flight, saying where
    let last = cursor_seq(&store, STREAM.0, STREAM.1).await;
    eprintln!("SIGTERM with {before} pages committed: stopped at page {last}\n{stderr}");
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let pages = CUSTOMERS / PER_PAGE;
    assert!(
        (3..=before + 1).contains(&last) && (last as u64) < pages,
        "SIGTERM with {before} pages committed; the run went on to page {last} of {pages}"
    );
    let said = format!("stopped by SIGTERM: woo_tw.contact committed through page {last} ");
    assert!(stderr.contains(&said), "no `{said}` in:\n{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    // The committed pages are whole: 10 customers each, nothing beyond.
    let linked: HashSet<String> = store
        .live_external_ids(STREAM.0, STREAM.1)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(linked.len() as u64, last as u64 * PER_PAGE);
    assert_eq!(read_in(&out), last as u64 * PER_PAGE);

    // AND the next run resumes from the committed page and reads the rest
    proxy.slow_down(Duration::ZERO);
    let out = output_within(run(&db.url, &file), Duration::from_secs(60)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        read_in(&out),
        CUSTOMERS - last as u64 * PER_PAGE,
        "{stderr}"
    );
    let linked: HashSet<String> = store
        .live_external_ids(STREAM.0, STREAM.1)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(linked.len() as u64, CUSTOMERS);
    shop.shutdown().await;
}
