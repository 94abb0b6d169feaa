//! Issue 18 items 3 and 4, with real daemon processes: SIGHUP reloads the
//! folder only when every file is valid (a broken one is named and the
//! running configuration kept); a webhook redelivered after a restart is
//! recognised (the replay guard is in the store); a webhook delete that
//! fails is kept in the store's queue and retried; `/metrics` is valid
//! Prometheus text carrying lease holders, queue depth, lag and throttle
//! waits; `/health` (liveness) and `/ready` (readiness) are apart; `synchub
//! status` names the instance holding each stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use synchub_shopify::sandbox::{self, SandboxOptions, SANDBOX_TOKEN, SANDBOX_WEBHOOK_SECRET};
use synchub_testkit::process::DaemonProcess;
use synchub_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

fn start_daemon(db: &str, dir: &Path) -> DaemonProcess {
    synchub_testkit::process::start_daemon(BIN, db, dir)
}

fn signal(daemon: &DaemonProcess, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &daemon.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
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

async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    match http.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One sample of Prometheus text: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text exposition format (version 0.0.4) strictly:
/// `# HELP` / `# TYPE` comments with a known type declared once and before
/// the family's samples, sample lines `name{label="value",…} value` with
/// valid names, escaped label values and a float value, and no series
/// twice. Panics naming the first line that is not valid.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    fn valid_name(n: &str) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut samples = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let bad = |why: &str| -> ! { panic!("line {}: {why}: {line:?}", no + 1) };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        bad("unknown type");
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        bad("family typed twice");
                    }
                }
                _ => bad("malformed comment"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| bad("no value"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| bad("value is not a float")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| bad("unclosed labels"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    if !valid_name(&key) || chars.next() != Some('"') {
                        bad("malformed label");
                    }
                    let mut val = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some('n') => val.push('\n'),
                                Some(c @ ('\\' | '"')) => val.push(c),
                                _ => bad("bad escape in a label value"),
                            },
                            Some('"') => break,
                            Some(c) => val.push(c),
                            None => bad("unterminated label value"),
                        }
                    }
                    match chars.next() {
                        None => {}
                        Some(',') => {}
                        Some(_) => bad("labels not separated by a comma"),
                    }
                    if labels.insert(key, val).is_some() {
                        bad("label twice");
                    }
                }
                (name, labels)
            }
        };
        if !valid_name(name) {
            bad("invalid metric name");
        }
        if !types.contains_key(name) {
            bad("sample before (or without) its # TYPE");
        }
        if !seen.insert((name.to_string(), labels.clone())) {
            bad("series twice");
        }
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn shop_pipeline(shop: &sandbox::SandboxHandle) -> String {
    let cfg = shop.config();
    synchub_testkit::data::shopify_pull_pipeline(
        &cfg.shop,
        &shop.base_url,
        SANDBOX_TOKEN,
        SANDBOX_WEBHOOK_SECRET,
    )
}

async fn runs_of(http: &reqwest::Client, base: &str, pipeline: &str) -> u64 {
    get_json(http, &format!("{base}/health")).await.1["pipelines"][pipeline]["runs"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_file_keeps_the_running_configuration() {
    // GIVEN a daemon running the Shopify pipeline
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.toml"), shop_pipeline(&shop)).unwrap();
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    wait_until("the first run", || async {
        runs_of(&http, &daemon.base, "shop-tw").await >= 1
    })
    .await;

    // WHEN a broken file joins the folder and SIGHUP is sent
    std::fs::write(dir.path().join("broken.toml"), "version = 1\nname = \n").unwrap();
    signal(&daemon, "-HUP");

    // THEN the reload is refused naming the file, and the old pipeline
    // still runs and takes webhooks
    wait_until("the refused reload", || async {
        get_json(&http, &format!("{}/health", daemon.base)).await.1["reloads"]["refused"]
            .as_u64()
            .unwrap_or(0)
            == 1
    })
    .await;
    let (_, h) = get_json(&http, &format!("{}/health", daemon.base)).await;
    let why = h["reloads"]["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("broken.toml"), "{h}");
    assert!(h["pipelines"]["shop-tw"].is_object(), "{h}");
    let before = runs_of(&http, &daemon.base, "shop-tw").await;
    let body = br#"{"id":1}"#.to_vec();
    let signature = synchub_shopify::webhook::sign(SANDBOX_WEBHOOK_SECRET.as_bytes(), &body);
    let resp = http
        .post(format!("{}/webhooks/shop_tw", daemon.base))
        .header("x-shopify-topic", "customers/update")
        .header("x-shopify-webhook-id", "after-refused-reload")
        .header("x-shopify-hmac-sha256", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    wait_until("a run on the old configuration", || async {
        runs_of(&http, &daemon.base, "shop-tw").await > before
    })
    .await;

    // AND WHEN the file is fixed (a second pipeline) and SIGHUP sent again
    // THEN both pipelines run
    let second = shop_pipeline(&shop)
        .replace("name = \"shop-tw\"", "name = \"shop-two\"")
        .replace("name = \"shop_tw\"", "name = \"shop_two\"");
    assert_ne!(second, shop_pipeline(&shop), "the fixture's names changed");
    std::fs::write(dir.path().join("broken.toml"), second).unwrap();
    signal(&daemon, "-HUP");
    wait_until("the new pipeline's first run", || async {
        runs_of(&http, &daemon.base, "shop-two").await >= 1
    })
    .await;
    let (_, h) = get_json(&http, &format!("{}/health", daemon.base)).await;
    assert_eq!(h["reloads"]["ok"], 1, "{h}");
    assert!(h["reloads"]["last_error"].is_null(), "{h}");
}

async fn deliver(
    http: &reqwest::Client,
    base: &str,
    topic: &str,
    id: &str,
    body: &[u8],
) -> (u16, String) {
    let signature = synchub_shopify::webhook::sign(SANDBOX_WEBHOOK_SECRET.as_bytes(), body);
    let resp = http
        .post(format!("{base}/webhooks/shop_tw"))
        .header("x-shopify-topic", topic)
        .header("x-shopify-webhook-id", id)
        .header("x-shopify-hmac-sha256", &signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_redelivered_after_a_restart_is_recognised() {
    for backend in ["sqlite", "postgres"] {
        // GIVEN a daemon that took a webhook
        let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.toml"), shop_pipeline(&shop)).unwrap();
        let db = TestDb::of(backend).await;
        let http = reqwest::Client::new();
        let body = br#"{"id":207119551}"#;
        {
            let daemon = start_daemon(&db.url, dir.path());
            let (status, text) =
                deliver(&http, &daemon.base, "customers/update", "wh-1", body).await;
            assert_eq!(status, 202, "{backend}: {text}");
            signal(&daemon, "-TERM");
        }
        // WHEN the daemon restarts and the shop redelivers the same webhook
        let daemon = start_daemon(&db.url, dir.path());
        let (status, text) = deliver(&http, &daemon.base, "customers/update", "wh-1", body).await;
        // THEN it is recognised as a repeat
        assert_eq!(status, 200, "{backend}: {text}");
        assert_eq!(text.trim(), "duplicate", "{backend}");
        // AND a new event is still taken
        let (status, _) = deliver(
            &http,
            &daemon.base,
            "customers/update",
            "wh-2",
            br#"{"id":207119552}"#,
        )
        .await;
        assert_eq!(status, 202, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delete_stays_queued_and_is_retried_across_a_restart() {
    // GIVEN a daemon whose pipeline pulls contacts only, so an order delete
    // cannot be applied
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.toml"), shop_pipeline(&shop)).unwrap();
    let db = TestDb::postgres().await;
    let http = reqwest::Client::new();
    let daemon = start_daemon(&db.url, dir.path());
    let body = br#"{"id":450789469}"#;

    // WHEN the delete arrives and applying it fails
    let (status, text) = deliver(&http, &daemon.base, "orders/delete", "del-1", body).await;

    // THEN it is accepted and kept in the store's queue, not dropped
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("retried"), "{text}");
    let store = db.store().await;
    let depth = |q: Vec<synchub_store::deliveries::QueueDepth>| {
        q.iter().find(|q| q.kind == "delete").map_or(0, |q| q.rows)
    };
    assert_eq!(depth(store.queue_depth().await.unwrap()), 1);
    // AND it is retried (after 1 s, then 2 s): the failures climb
    wait_until("two retries", || async {
        let text = metrics_text(&http, &daemon.base).await;
        parse_prometheus(&text)
            .iter()
            .any(|(n, _, v)| n == "synchub_webhook_delete_failures_total" && *v >= 3.0)
    })
    .await;
    // AND a restart keeps it queued, and the new process retries it too
    signal(&daemon, "-TERM");
    drop(daemon);
    assert_eq!(depth(store.queue_depth().await.unwrap()), 1);
    let daemon = start_daemon(&db.url, dir.path());
    wait_until("a retry by the new process", || async {
        let text = metrics_text(&http, &daemon.base).await;
        parse_prometheus(&text)
            .iter()
            .any(|(n, _, v)| n == "synchub_webhook_delete_failures_total" && *v >= 1.0)
    })
    .await;
    // AND the redelivery of the same delete is a repeat: it is ours already
    let (status, text) = deliver(&http, &daemon.base, "orders/delete", "del-1", body).await;
    assert_eq!((status, text.trim()), (200, "duplicate"));
    assert_eq!(depth(store.queue_depth().await.unwrap()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_ready_is_apart_from_health() {
    // GIVEN a daemon on PostgreSQL that has synced the shop
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.toml"), shop_pipeline(&shop)).unwrap();
    let db = TestDb::postgres().await;
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    wait_until("the first run", || async {
        runs_of(&http, &daemon.base, "shop-tw").await >= 1
    })
    .await;
    // a held lease, as another instance's would be
    let store = db.store().await;
    let key = synchub_store::leases::StreamKey {
        pipeline: "elsewhere".into(),
        connection: "shop_tw".into(),
        object: synchub_core::ObjectKind::Order,
    };
    let claim = store
        .try_acquire_lease_at(&key, chrono::Utc::now(), Duration::from_secs(300))
        .await
        .unwrap();
    assert!(matches!(claim, synchub_store::leases::Claim::Granted(_)));
    store
        .enqueue_wake("elsewhere", "shop_tw", "order")
        .await
        .unwrap();

    // WHEN /metrics is scraped THEN it parses as Prometheus text and
    // carries the lease holder, queue depth, lag and throttle waits
    let samples = parse_prometheus(&metrics_text(&http, &daemon.base).await);
    let find = |name: &str| -> Vec<&Sample> { samples.iter().filter(|s| s.0 == name).collect() };
    let holders = find("synchub_lease_token");
    let held = holders
        .iter()
        .find(|s| s.1.get("pipeline").map(String::as_str) == Some("elsewhere"))
        .unwrap_or_else(|| panic!("no lease holder in {holders:?}"));
    assert_eq!(held.1["stream"], "shop_tw.order");
    assert_eq!(held.1["pid"], std::process::id().to_string());
    assert_eq!(held.2, 1.0);
    let queue = find("synchub_queue_depth");
    assert!(
        queue
            .iter()
            .any(|s| s.1["pipeline"] == "elsewhere" && s.1["kind"] == "wake" && s.2 == 1.0),
        "{queue:?}"
    );
    let lag = find("synchub_sync_lag_seconds");
    assert!(
        lag.iter()
            .any(|s| s.1["stream"] == "shop_tw.contact" && s.2 >= 0.0 && s.2 < 600.0),
        "{lag:?}"
    );
    assert_eq!(find("synchub_throttle_wait_seconds_total").len(), 1);
    assert_eq!(find("synchub_store_up")[0].2, 1.0);

    // AND /health and /ready both say yes while the store answers
    assert_eq!(
        get_json(&http, &format!("{}/ready", daemon.base)).await.0,
        200
    );
    assert_eq!(
        get_json(&http, &format!("{}/health", daemon.base)).await.0,
        200
    );

    // AND `synchub status` names the instance holding the stream
    let out = Command::new(BIN)
        .args(["status", "--format", "json"])
        .env("SYNCHUB_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lease = doc["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["pipeline"] == "elsewhere")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(lease["pid"], i64::from(std::process::id()));
    assert_eq!(lease["host"], synchub_store::leases::host_name());
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    // GIVEN a small CSV pipeline
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("contacts.csv");
    synchub_testkit::data::write_contacts_csv(&csv, 20, 7).unwrap();
    let file = dir.path().join("csv.toml");
    std::fs::write(&file, synchub_testkit::data::csv_pipeline(&csv, 10)).unwrap();
    let db = TestDb::sqlite();
    // WHEN it runs with --log-format json at debug level
    let out = Command::new(BIN)
        .args(["--log-format", "json", "-vv", "run"])
        .arg(&file)
        .arg("--once")
        .env("SYNCHUB_DATABASE_URL", &db.url)
        .env_remove("SYNCHUB_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // THEN every log line on stderr is one JSON object with a level
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines at -vv");
    for line in lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}
