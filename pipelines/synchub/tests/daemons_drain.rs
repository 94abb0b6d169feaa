//! Issue 18: a daemon told to stop drains. While its run finishes the page
//! it is reading, `/ready` answers 503 (a load balancer stops sending it
//! work) and webhooks are turned away with 503 (the provider delivers them
//! again, to another instance); then the page commits and it exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use synchub_core::ObjectKind;
use synchub_testkit::TestDb;
use synchub_woocommerce::sandbox as woo;
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_synchub");

/// A proxy that holds every request until its gate opens.
#[derive(Clone)]
struct Gate {
    upstream: String,
    http: reqwest::Client,
    open: watch::Receiver<bool>,
    waiting: Arc<AtomicUsize>,
}

async fn forward(
    State(g): State<Gate>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    g.waiting.fetch_add(1, Ordering::SeqCst);
    let mut open = g.open.clone();
    let _ = open.wait_for(|o| *o).await;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = g.http.request(method, format!("{}{path}", g.upstream));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let Ok(resp) = req.body(body).send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let mut out = HeaderMap::new();
    for (name, value) in resp.headers() {
        if name != "transfer-encoding" && name != "content-length" && name != "connection" {
            out.insert(name, value.clone());
        }
    }
    (status, out, resp.bytes().await.unwrap_or_default()).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_daemon_is_not_ready_and_turns_webhooks_away_until_its_page_commits() {
    // GIVEN a daemon whose run waits on a source request held at a gate
    let sandbox = woo::spawn(woo::SandboxOptions::default()).await.unwrap();
    let (open, gate_rx) = watch::channel(false);
    let waiting = Arc::new(AtomicUsize::new(0));
    let gate = Gate {
        upstream: sandbox.base_url.clone(),
        http: reqwest::Client::new(),
        open: gate_rx,
        waiting: waiting.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state(gate);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("drain.toml"),
        format!(
            r#"version = 1
name = "drain"
region = "TW"

[[connections]]
name = "woo"
kind = "woocommerce"
direction = "pull"
objects = ["contact"]

[connections.config]
base_url = "{proxy}"
consumer_key = "{}"
consumer_secret = "{}"
webhook_secret = "{}"
per_page = 5
"#,
            woo::SANDBOX_KEY,
            woo::SANDBOX_SECRET,
            woo::SANDBOX_WEBHOOK_SECRET
        ),
    )
    .unwrap();
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let mut daemon = synchub_testkit::process::start_daemon(BIN, &db.url, dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiting.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the run never asked the source");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{}/ready", daemon.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "ready while running");

    // WHEN it is told to stop while the request is held
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);

    // THEN /ready answers 503, saying it drains …
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let resp = http
            .get(format!("{}/ready", daemon.base))
            .send()
            .await
            .unwrap();
        if resp.status() == 503 {
            break resp.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/ready never said 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(body.contains("draining"), "{body}");
    // … and a webhook is turned away for redelivery (before any check of
    // its signature, which it lacks: a running daemon answers 401)
    let hook = http
        .post(format!("{}/webhooks/woo", daemon.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 503);
    assert!(
        matches!(daemon.child.try_wait(), Ok(None)),
        "it left mid-page"
    );

    // AND once the source answers, the page commits and it exits 0
    open.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success());
    let cursor = store.cursor("woo", ObjectKind::Contact).await.unwrap();
    assert_eq!(
        cursor.map(|c| c.seq),
        Some(1),
        "the page being read commits"
    );
}
