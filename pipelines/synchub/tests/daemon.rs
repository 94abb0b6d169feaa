//! `synchub daemon` against the Shopify sandbox: runs the folder's pipelines
//! at start; a verified webhook triggers an incremental run that brings the
//! shop's edit in; a replayed delivery is recognised and does nothing; a
//! forged one is refused before anything is read; a delete topic is applied
//! at once; /health and /metrics say what happened.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use synchub_shopify::sandbox::{
    self, SandboxOptions, FIRST_CUSTOMER_ID, SANDBOX_TOKEN, SANDBOX_WEBHOOK_SECRET,
};
use synchub_testkit::process::DaemonProcess;
use synchub_testkit::TestDb;

fn start_daemon(db: &str, dir: &Path) -> DaemonProcess {
    synchub_testkit::process::start_daemon(env!("CARGO_BIN_EXE_synchub"), db, dir)
}

/// GET with a few retries: on a loaded machine a fresh connection to the
/// daemon can be reset while it is busy starting up.
async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let mut last = String::new();
    for _ in 0..20 {
        match http.get(url).send().await {
            Ok(resp) => match resp.text().await {
                Ok(text) => return text,
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET {url} kept failing: {last}");
}

async fn health(http: &reqwest::Client, base: &str) -> Value {
    serde_json::from_str(&get_text(http, &format!("{base}/health")).await).unwrap()
}

async fn metric(http: &reqwest::Client, base: &str, line_prefix: &str) -> u64 {
    let text = get_text(http, &format!("{base}/metrics")).await;
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    conn: &str,
    d: &sandbox::WebhookDelivery,
    body: &[u8],
) -> reqwest::StatusCode {
    let mut req = http.post(format!("{base}/webhooks/{conn}"));
    for (k, v) in &d.headers {
        req = req.header(k, v);
    }
    req.body(body.to_vec()).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_runs_on_start_and_on_verified_webhooks() {
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
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
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    let base = daemon.base.clone();

    // At start: one run reads the shop.
    wait_until("the first run", || async {
        health(&http, &base).await["pipelines"]["shop-tw"]["runs"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await;
    let h = health(&http, &base).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["pipelines"]["shop-tw"]["last_error"], Value::Null, "{h}");
    let created = metric(
        &http,
        &base,
        "synchub_records_total{pipeline=\"shop-tw\",stream=\"shop_tw.contact\",outcome=\"created\"}",
    )
    .await;
    assert!(
        created >= 15,
        "only {created} contacts created from 20 customers"
    );

    // A shop edit arrives as a signed webhook and triggers a run.
    shop.take_webhooks();
    assert!(shop.edit_customer(FIRST_CUSTOMER_ID + 3, |c| {
        c.last_name = Some("Daemon-Edited".into());
    }));
    let deliveries = shop.take_webhooks();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];

    // Forged (body changed after signing): refused, counted, nothing runs.
    let mut forged = d.body.clone();
    forged.extend_from_slice(b" ");
    assert_eq!(post(&http, &base, "shop_tw", d, &forged).await, 401);
    // Genuine: accepted; the replay of the same delivery id is a no-op.
    assert_eq!(post(&http, &base, "shop_tw", d, &d.body).await, 202);
    assert_eq!(post(&http, &base, "shop_tw", d, &d.body).await, 200);
    // Unknown connection.
    assert_eq!(post(&http, &base, "nobody", d, &d.body).await, 404);

    wait_until("the webhook-triggered run", || async {
        metric(
            &http,
            &base,
            "synchub_records_total{pipeline=\"shop-tw\",stream=\"shop_tw.contact\",outcome=\"updated\"}",
        )
        .await
            >= 1
    })
    .await;
    let prefix = "synchub_webhooks_total{connection=\"shop_tw\",result=";
    assert_eq!(
        metric(&http, &base, &format!("{prefix}\"accepted\"}}")).await,
        1
    );
    assert_eq!(
        metric(&http, &base, &format!("{prefix}\"duplicate\"}}")).await,
        1
    );
    assert_eq!(
        metric(&http, &base, &format!("{prefix}\"rejected\"}}")).await,
        1
    );

    // The edit is in the CRM.
    let store = db.store().await;
    let contacts = store
        .records(synchub_core::ObjectKind::Contact, false)
        .await
        .unwrap();
    assert!(
        contacts.iter().any(|r| serde_json::to_string(&r.record)
            .unwrap()
            .contains("Daemon-Edited")),
        "the shop edit did not reach the CRM"
    );

    // A delete topic is applied at once (archive policy: tombstoned).
    assert!(shop.shop().delete_customer(FIRST_CUSTOMER_ID + 5));
    let deletes = shop.take_webhooks();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        post(&http, &base, "shop_tw", &deletes[0], &deletes[0].body).await,
        202
    );
    assert_eq!(
        metric(
            &http,
            &base,
            "synchub_records_total{pipeline=\"shop-tw\",stream=\"shop_tw.contact\",outcome=\"deleted\"}",
        )
        .await,
        1
    );
}

#[test]
fn daemon_without_pipelines_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["daemon", "--listen", "127.0.0.1:0", "--config-dir"])
        .arg(dir.path())
        .env("SYNCHUB_DATABASE_URL", &TestDb::sqlite().url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no pipeline files"), "{stderr}");
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
}

#[test]
fn daemon_with_only_a_broken_pipeline_names_it_and_creates_no_database() {
    // GIVEN a folder whose only pipeline has a misspelled connector kind,
    // and a SQLite URL in an empty folder
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("contacts.csv");
    synchub_testkit::data::write_contacts_csv(&csv, 10, 7).unwrap();
    let conf = tempfile::tempdir().unwrap();
    let good = synchub_testkit::data::csv_pipeline(&csv, 100);
    let broken = good
        .replace("kind = \"csv\"", "kind = \"cvs\"")
        .replace("csv_source", "other_source");
    assert_ne!(broken, good);
    std::fs::write(conf.path().join("b_broken.toml"), broken).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", store_dir.path().join("synchub.db").display());

    // WHEN the daemon starts on it
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["daemon", "--listen", "127.0.0.1:0", "--config-dir"])
        .arg(conf.path())
        .env("SYNCHUB_DATABASE_URL", &url)
        .output()
        .unwrap();

    // THEN it exits non-zero with one line naming the file and the key
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("b_broken.toml"), "{stderr}");
    assert!(lines[0].contains("connections[0].kind"), "{stderr}");
    assert!(lines[0].contains("did you mean `csv`"), "{stderr}");
    // AND no database file (nor journal) was created
    let left: Vec<_> = std::fs::read_dir(store_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the store was created: {left:?}");
}

/// A broken pipeline file beside good ones is skipped and reported; the
/// good ones run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_skips_a_broken_pipeline_and_runs_the_rest() {
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("contacts.csv");
    synchub_testkit::data::write_contacts_csv(&csv, 10, 7).unwrap();
    let conf = tempfile::tempdir().unwrap();
    let good = synchub_testkit::data::csv_pipeline(&csv, 100);
    std::fs::write(conf.path().join("a_good.toml"), &good).unwrap();
    let broken = good
        .replace("kind = \"csv\"", "kind = \"cvs\"")
        .replace("csv_source", "other_source")
        .replace("name = \"", "name = \"broken-");
    std::fs::write(conf.path().join("b_broken.toml"), broken).unwrap();
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, conf.path());
    let http = reqwest::Client::new();
    let base = daemon.base.clone();
    wait_until("the good pipeline's first run", || async {
        let h = health(&http, &base).await;
        h["pipelines"]
            .as_object()
            .is_some_and(|p| p.values().any(|st| st["runs"].as_u64().unwrap_or(0) >= 1))
    })
    .await;
    let h = health(&http, &base).await;
    assert_eq!(h["status"], "degraded", "{h}");
    let invalid = h["invalid_files"].as_object().expect("invalid_files");
    assert_eq!(invalid.len(), 1, "{h}");
    let (file, why) = invalid.iter().next().unwrap();
    assert!(file.ends_with("b_broken.toml"), "{h}");
    assert!(
        why.as_str()
            .unwrap_or_default()
            .contains("did you mean `csv`"),
        "{h}"
    );
    assert_eq!(h["pipelines"].as_object().map(|p| p.len()), Some(1), "{h}");
    assert!(h["failing"].is_null(), "{h}");
}

/// A pipeline whose runs fail (its token was revoked) turns `/health` to
/// `degraded` naming it and why, while the healthy one goes on running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_degraded_naming_the_failing_pipeline() {
    let shop = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let cfg = shop.config();
    let dir = tempfile::tempdir().unwrap();
    let good = synchub_testkit::data::shopify_pull_pipeline(
        &cfg.shop,
        &shop.base_url,
        SANDBOX_TOKEN,
        SANDBOX_WEBHOOK_SECRET,
    );
    let bad = good
        .replace("name = \"shop-tw\"", "name = \"shop-revoked\"")
        .replace("name = \"shop_tw\"", "name = \"shop_revoked\"")
        .replace(SANDBOX_TOKEN, "shpat_revoked");
    std::fs::write(dir.path().join("good.toml"), good).unwrap();
    std::fs::write(dir.path().join("revoked.toml"), bad).unwrap();
    let db = TestDb::sqlite();
    let daemon = start_daemon(&db.url, dir.path());
    let http = reqwest::Client::new();
    let base = daemon.base.clone();
    wait_until("both first runs", || async {
        let h = health(&http, &base).await;
        h["pipelines"]["shop-tw"]["runs"].as_u64().unwrap_or(0) >= 1
            && h["pipelines"]["shop-revoked"]["runs"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let h = health(&http, &base).await;
    assert_eq!(h["status"], "degraded", "{h}");
    let why = h["failing"]["shop-revoked"].as_str().unwrap_or_default();
    assert!(why.to_lowercase().contains("auth"), "{h}");
    assert!(h["failing"].get("shop-tw").is_none(), "{h}");
    assert_eq!(h["pipelines"]["shop-tw"]["last_error"], Value::Null, "{h}");
}
