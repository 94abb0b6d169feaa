//! `synchub daemon` under the outside testing of issue 12: SIGTERM stops a
//! run between pages with the running page committed; half-sent requests do
//! not keep the daemon alive; forged bodies cannot pile up in memory; a
//! captured body re-sent under a new webhook id does nothing; the run log
//! stays bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use synchub_core::merge::MergePolicy;
use synchub_core::{Contact, ObjectKind, Record};
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_shopify::sandbox::{
    self, SandboxOptions, FIRST_CUSTOMER_ID, SANDBOX_TOKEN, SANDBOX_WEBHOOK_SECRET,
};
use synchub_testkit::process::{cursor_seq, DaemonProcess};
use synchub_testkit::{MemorySystem, TestDb};

fn start_daemon(db: &str, dir: &Path) -> DaemonProcess {
    synchub_testkit::process::start_daemon(env!("CARGO_BIN_EXE_synchub"), db, dir)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

/// Polls the process until it exits or `patience` runs out.
async fn exit_within(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn health(http: &reqwest::Client, base: &str) -> Value {
    match http.get(format!("{base}/health")).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn metric(http: &reqwest::Client, base: &str, line_prefix: &str) -> u64 {
    let Ok(resp) = http.get(format!("{base}/metrics")).send().await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A folder holding the Shopify sandbox pipeline; the sandbox must outlive it.
fn shop_dir(shop: &sandbox::SandboxHandle) -> tempfile::TempDir {
    let cfg = shop.config();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.toml"),
        synchub_testkit::data::shopify_pull_pipeline(
            &cfg.shop,
            &shop.base_url,
            SANDBOX_TOKEN,
            SANDBOX_WEBHOOK_SECRET,
        ),
    )
    .unwrap();
    dir
}

async fn first_run_done(http: &reqwest::Client, base: &str) {
    wait_until("the first run", || async {
        health(http, base).await["pipelines"]["shop-tw"]["runs"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_page_11_of_100_commits_that_page_and_stops() {
    // GIVEN a daemon reading a 10,000-row CSV in 100 pages of 100
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    synchub_testkit::data::write_contacts_csv(&csv, 10_000, 7).unwrap();
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("csv.toml"),
        synchub_testkit::data::csv_pipeline(&csv, 100),
    )
    .unwrap();
    let db = TestDb::sqlite();
    let mut daemon = start_daemon(&db.url, conf.path());
    let store = db.store().await;
    let stream = ("csv_source", ObjectKind::Contact);

    // WHEN SIGTERM arrives once page 11 is committed
    let deadline = Instant::now() + Duration::from_secs(120);
    while cursor_seq(&store, stream.0, stream.1).await < 11 {
        assert!(Instant::now() < deadline, "the run did not reach page 11");
        assert!(daemon.child.try_wait().unwrap().is_none(), "daemon ended");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let signalled = Instant::now();
    sigterm(&daemon.child);
    // Pages committed before the signal: at most this many.
    let before = cursor_seq(&store, stream.0, stream.1).await;
    let status = exit_within(&mut daemon.child, Duration::from_secs(60))
        .await
        .expect("the daemon did not exit within 60 s of SIGTERM");
    let took = signalled.elapsed();

    // THEN it stopped after at most the page in flight, cleanly
    assert!(status.success(), "exit status {status:?}");
    let last = cursor_seq(&store, stream.0, stream.1).await;
    eprintln!("SIGTERM at page {before}: stopped at page {last} of 100 in {took:?}");
    assert!(
        (11..=before + 1).contains(&last),
        "SIGTERM when {before} pages were committed; the daemon went on to page {last}"
    );
    // The committed pages are whole; the next page is not there.
    let linked: HashSet<String> = store
        .live_external_ids(stream.0, stream.1)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let last_row = last * 100 - 1;
    assert!(
        linked.contains(&format!("C{last_row}")),
        "row {last_row} of page {last} missing"
    );
    assert!(
        !linked.contains(&format!("C{}", last * 100)),
        "a row of page {} is there",
        last + 1
    );
    assert!(
        linked
            .iter()
            .all(|id| id[1..].parse::<i64>().unwrap() <= last_row),
        "rows after page {last} are there"
    );
}

/// Half a request: headers without the final blank line.
fn half_headers(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(
        b"POST /webhooks/shop_tw HTTP/1.1\r\nHost: synchub\r\nContent-Type: application/json\r\n",
    );
    s
}

/// Whole headers, then a body that never finishes.
fn slow_body(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(
        b"POST /webhooks/shop_tw HTTP/1.1\r\nHost: synchub\r\nX-Shopify-Topic: customers/update\r\nX-Shopify-Hmac-Sha256: AAAA\r\nContent-Length: 1000000\r\n\r\n{\"id\":",
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_10s_with_500_half_open_connections() {
    // GIVEN a daemon that has done its first run
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = shop_dir(&shop);
    let db = TestDb::sqlite();
    let mut daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    first_run_done(&http, &daemon.base).await;
    let pid = daemon.child.id();
    let fds = open_fds(pid);

    // WHEN 250 clients hold half-sent headers and 250 a half-sent body
    let mut held = Vec::new();
    for _ in 0..250 {
        held.push(half_headers(&daemon.addr));
    }
    wait_until("the daemon to accept the half-open connections", || {
        let n = open_fds(pid);
        async move { n >= fds + 200 }
    })
    .await;
    for _ in 0..250 {
        held.push(slow_body(&daemon.addr));
    }
    let signalled = Instant::now();
    sigterm(&daemon.child);

    // THEN it still exits within 10 s, cleanly
    let status = exit_within(&mut daemon.child, Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    eprintln!("SIGTERM with 500 half-open connections: exited after {took:?}");
    let status = status.expect("the daemon was still running 10 s after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    drop(held);
}

/// Sends a raw request and reads the status code of the answer.
fn raw_status(addr: &str, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_bodies_are_refused_or_limited_never_piled_up() {
    // GIVEN a daemon taking Shopify webhooks
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = shop_dir(&shop);
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    first_run_done(&http, &daemon.base).await;
    let pid = daemon.child.id();
    let addr = daemon.addr.clone();

    // A body declared over 2 MiB is refused before a byte of it is sent.
    let status = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || raw_status(&addr, b"POST /webhooks/shop_tw HTTP/1.1\r\nHost: synchub\r\nX-Shopify-Hmac-Sha256: AAAA\r\nContent-Length: 3145728\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(
        status,
        Some(413),
        "an oversized declared body was not refused unread"
    );

    // WHEN 200 forged 2 MiB bodies arrive at once
    let rss_before = status_kb(pid, "VmRSS:");
    let body = axum::body::Bytes::from(vec![b'x'; 2 * 1024 * 1024]);
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..200 {
        let http = http.clone();
        let url = format!("{}/webhooks/shop_tw", daemon.base);
        let body = body.clone();
        posts.spawn(async move {
            http.post(url)
                .header("x-shopify-topic", "customers/update")
                .header("x-shopify-webhook-id", format!("forged-{i}"))
                .header(
                    "x-shopify-hmac-sha256",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                )
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        });
    }
    let mut codes: BTreeMap<u16, u32> = BTreeMap::new();
    while let Some(code) = posts.join_next().await {
        *codes.entry(code.unwrap()).or_default() += 1;
    }
    let peak = status_kb(pid, "VmHWM:");
    eprintln!(
        "200 forged 2 MiB bodies: answers {codes:?}; daemon RSS {} MiB before, peak {} MiB",
        rss_before / 1024,
        peak / 1024
    );
    // THEN none is taken; those beyond the concurrent-read limit are
    // refused unread (503) instead of being buffered
    assert!(
        codes.keys().all(|c| matches!(c, 0 | 401 | 503)),
        "{codes:?}"
    );
    // (0: the daemon answered 503 and closed while the upload went on.)
    assert!(
        !codes.contains_key(&202) && codes.get(&503).copied().unwrap_or(0) > 0,
        "{codes:?}"
    );
    assert!(
        peak < rss_before + 48 * 1024,
        "memory rose from {} to {} MiB",
        rss_before / 1024,
        peak / 1024
    );
    assert_eq!(health(&http, &daemon.base).await["status"], "ok");

    // AND with the read slots held by slow uploads, the next body is refused at once
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(slow_body(&addr));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = tokio::task::spawn_blocking({
            let addr = addr.clone();
            move || raw_status(&addr, b"POST /webhooks/shop_tw HTTP/1.1\r\nHost: synchub\r\nX-Shopify-Topic: customers/update\r\nX-Shopify-Hmac-Sha256: AAAA\r\nContent-Length: 2\r\n\r\n{}")
        })
        .await
        .unwrap();
        if status == Some(503) {
            break;
        }
        assert_eq!(status, Some(401), "a forged body was not refused");
        assert!(
            Instant::now() < deadline,
            "8 slow uploads held, yet bodies were still read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_body_resent_with_a_new_webhook_id_triggers_no_run() {
    // GIVEN a daemon that took a genuine delivery
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = shop_dir(&shop);
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    first_run_done(&http, &daemon.base).await;
    shop.take_webhooks();
    assert!(shop.edit_customer(FIRST_CUSTOMER_ID + 2, |c| {
        c.last_name = Some("Captured".into());
    }));
    let d = shop.take_webhooks().remove(0);
    let send = |webhook_id: Option<&str>| {
        let mut req = http.post(format!("{}/webhooks/shop_tw", daemon.base));
        for (k, v) in &d.headers {
            if k.eq_ignore_ascii_case("x-shopify-webhook-id") {
                req = req.header(k, webhook_id.unwrap_or(v));
            } else {
                req = req.header(k, v);
            }
        }
        req.body(d.body.clone()).send()
    };
    assert_eq!(send(None).await.unwrap().status(), 202);

    // WHEN an attacker re-sends the captured body under a new webhook id
    let resent = send(Some("a-brand-new-webhook-id")).await.unwrap();

    // THEN it is recognised by its content: no run is queued
    assert_eq!(resent.status(), 200);
    assert_eq!(resent.text().await.unwrap().trim(), "duplicate");
    let prefix = "synchub_webhooks_total{connection=\"shop_tw\",result=";
    assert_eq!(
        metric(&http, &daemon.base, &format!("{prefix}\"accepted\"}}")).await,
        1
    );
    assert_eq!(
        metric(&http, &daemon.base, &format!("{prefix}\"duplicate\"}}")).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_failed_to_apply_is_kept_and_retried_not_dropped() {
    // GIVEN a daemon whose pipeline pulls contacts only, so an order delete
    // cannot be applied
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = shop_dir(&shop);
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    first_run_done(&http, &daemon.base).await;
    let body = br#"{"id":450789469}"#.to_vec();
    let signature = synchub_shopify::webhook::sign(SANDBOX_WEBHOOK_SECRET.as_bytes(), &body);
    let deliver = || {
        http.post(format!("{}/webhooks/shop_tw", daemon.base))
            .header("x-shopify-topic", "orders/delete")
            .header("x-shopify-webhook-id", "delete-once")
            .header("x-shopify-hmac-sha256", &signature)
            .body(body.clone())
            .send()
    };

    // WHEN the delete fails
    let first = deliver().await.unwrap();

    // THEN it is accepted into the store's queue and retried from there
    // (issue 18: retried, not dropped), so Shopify's redelivery (same id,
    // same body) is a repeat
    assert_eq!(first.status(), 202);
    assert!(first.text().await.unwrap().contains("retried"));
    wait_until("a retry from the queue", || async {
        metric(&http, &daemon.base, "synchub_webhook_delete_failures_total").await >= 2
    })
    .await;
    let again = deliver().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap().trim(), "duplicate");
    let prefix = "synchub_webhooks_total{connection=\"shop_tw\",result=";
    assert_eq!(
        metric(&http, &daemon.base, &format!("{prefix}\"failed\"}}")).await,
        1
    );
}

fn contact(first: &str, email: &str) -> Record {
    Record::Contact(Contact {
        given_name: Some(first.into()),
        emails: vec![email.into()],
        ..Default::default()
    })
}

async fn run_log_stays_bounded(backend: &str) {
    // GIVEN a pipeline over a remote system with two contacts
    let db = TestDb::of(backend).await;
    let store = db.store().await;
    let sys = MemorySystem::new("mem");
    sys.put("a", contact("Ann", "ann@example.com"));
    sys.put("b", contact("Bo", "bo@example.com"));
    let engine = Engine::new(
        store.clone(),
        "bounded",
        vec![Connection {
            name: "mem".into(),
            connector: Arc::new(sys.connector(10)),
            direction: Direction::Pull,
            objects: vec![ObjectKind::Contact],
            region: None,
        }],
        MergePolicy::default(),
        BTreeMap::new(),
    );
    let run = || async { engine.run(&RunOptions::default()).await.unwrap() };

    // WHEN it runs once with work and then 30 times with nothing to do
    run().await;
    for _ in 0..30 {
        run().await;
    }
    // THEN the no-op runs share one row that counts them
    assert_eq!(store.run_log_len("bounded").await.unwrap(), 2);
    let (_, _, _, report) = store.recent_runs(1).await.unwrap().remove(0);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["noop_runs"], 30, "{report}");

    // AND a run with work starts a new row, the next no-op run another
    assert!(sys.edit(ObjectKind::Contact, "a", |r| {
        if let Record::Contact(c) = r {
            c.family_name = Some("Chen".into());
        }
    }));
    run().await;
    run().await;
    run().await;
    assert_eq!(store.run_log_len("bounded").await.unwrap(), 4);

    // AND however many runs with work, only the latest KEEP_RUNS stay
    let keep = synchub_store::runs::KEEP_RUNS;
    for i in 0..keep + 20 {
        store
            .record_run(
                "busy",
                &synchub_store::now_text(),
                &format!("{{\"n\":{i}}}"),
                false,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.run_log_len("busy").await.unwrap(), keep);
    let (_, _, _, newest) = store.recent_runs(1).await.unwrap().remove(0);
    assert_eq!(newest, format!("{{\"n\":{}}}", keep + 19));
    assert_eq!(store.run_log_len("bounded").await.unwrap(), 4);
}

#[tokio::test]
async fn run_log_stays_bounded_sqlite() {
    run_log_stays_bounded("sqlite").await;
}

#[tokio::test]
async fn run_log_stays_bounded_postgres() {
    run_log_stays_bounded("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_without_a_signature_header_is_refused_while_it_is_still_being_sent() {
    // GIVEN a daemon taking Shopify webhooks
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = shop_dir(&shop);
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();

    // WHEN a client sends the headers of a 1 MB delivery with no
    // X-Shopify-Hmac-Sha256, then 6 bytes of its body, and waits
    let addr = daemon.addr.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(
            b"POST /webhooks/shop_tw HTTP/1.1\r\nHost: synchub\r\nX-Shopify-Topic: customers/update\r\nContent-Length: 1000000\r\n\r\n{\"id\":",
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        drop(s);
        answer
    })
    .await
    .unwrap();

    // THEN it is answered 401 with 999,994 bytes of the body never sent
    assert!(answer.starts_with("HTTP/1.1 401"), "answer: {answer:?}");
    let prefix = "synchub_webhooks_total{connection=\"shop_tw\",result=";
    assert_eq!(
        metric(&http, &daemon.base, &format!("{prefix}\"rejected\"}}")).await,
        1
    );
    assert_eq!(
        metric(&http, &daemon.base, &format!("{prefix}\"refused\"}}")).await,
        0
    );
}
