//! `synchub daemon`: every pipeline of a folder, unattended.
//!
//! * Each pipeline runs once at start, then on its `[schedule]` and whenever
//!   a verified webhook of one of its connections arrives. Runs of one
//!   pipeline never overlap; a webhook that arrives during a run triggers
//!   one more run after it (bursts collapse into one run, nothing is lost).
//! * `POST /webhooks/{connection}`: verified first (HMAC, constant time),
//!   then de-duplicated by delivery id; a delete topic is applied at once
//!   (deleted records never show up in an incremental query again).
//! * `GET /health`: 200 with the last run of each pipeline while the store
//!   answers, 503 when it does not.
//! * `GET /metrics`: Prometheus text.
//!
//! SIGINT/SIGTERM stop taking webhooks and let the running pages commit.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use synchub_engine::{Engine, RunOptions};
use synchub_store::Store;
use tokio::sync::{watch, Notify};

use crate::commands::{build_engine, open_store};
use crate::pipeline;
use crate::registry::{self, Delivery, WebhookHandler};

/// One pipeline under the daemon.
struct Slot {
    name: String,
    file: PathBuf,
    engine: Engine,
    every: Option<Duration>,
    /// How often a complete read reconciles deletes, and when it last did.
    full_every: Option<Duration>,
    last_full: Mutex<Instant>,
    wake: Notify,
    status: Mutex<PipelineStatus>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct PipelineStatus {
    runs: u64,
    failed_runs: u64,
    last_started_at: Option<String>,
    last_finished_at: Option<String>,
    last_seconds: Option<f64>,
    last_error: Option<String>,
    #[serde(skip)]
    records: BTreeMap<(String, &'static str), u64>,
}

struct Daemon {
    store: Store,
    slots: Vec<Arc<Slot>>,
    /// connection name → (slot index, verifier)
    hooks: HashMap<String, (usize, WebhookHandler)>,
    webhooks: Mutex<BTreeMap<(String, &'static str), u64>>,
    started: Instant,
}

pub async fn run(db: &str, config_dir: &Path, listen: &str) -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow!("--listen `{listen}` is not HOST:PORT (e.g. 127.0.0.1:8750)"))?;
    let files = pipeline_files(config_dir)?;
    let store = open_store(db).await?;
    let mut slots = Vec::new();
    let mut hooks = HashMap::new();
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let loaded = pipeline::load(&file)?;
        let engine = build_engine(store.clone(), &loaded)?;
        let index = slots.len();
        for (i, c) in loaded.config.connections.iter().enumerate() {
            if let Some(first) = owners.insert(c.name.clone(), file.clone()) {
                bail!(
                    "connection `{}` is named in both {} and {}; webhook addresses and identity links are keyed by connection name, so names must be unique across the folder",
                    c.name,
                    first.display(),
                    file.display()
                );
            }
            let hook = registry::webhook_handler(i, c)
                .map_err(|e| anyhow!("pipeline file {}: {e}", file.display()))?;
            if let Some(hook) = hook {
                hooks.insert(c.name.clone(), (index, hook));
            }
        }
        slots.push(Arc::new(Slot {
            name: loaded.config.name.clone(),
            file: file.clone(),
            engine,
            every: loaded
                .config
                .schedule
                .as_ref()
                .map(|s| Duration::from_secs(s.every_seconds)),
            full_every: loaded
                .config
                .schedule
                .as_ref()
                .and_then(|s| s.full_refresh_every_seconds)
                .map(Duration::from_secs),
            last_full: Mutex::new(Instant::now()),
            wake: Notify::new(),
            status: Mutex::new(PipelineStatus::default()),
        }));
    }
    let daemon = Arc::new(Daemon {
        store,
        slots,
        hooks,
        webhooks: Mutex::new(BTreeMap::new()),
        started: Instant::now(),
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = Vec::new();
    for slot in &daemon.slots {
        workers.push(tokio::spawn(worker(slot.clone(), stop_rx.clone())));
    }
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/webhooks/:connection", post(webhook))
        .with_state(daemon.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    say(format!(
        "synchub daemon: {} pipeline(s) from {}; listening on http://{bound} (POST /webhooks/CONNECTION, GET /health, GET /metrics)",
        daemon.slots.len(),
        config_dir.display()
    ));
    for slot in &daemon.slots {
        let when = slot
            .every
            .map(|d| format!("every {} s", d.as_secs()))
            .unwrap_or_else(|| "at start and on webhooks".into());
        say(format!("  {} ({}): {when}", slot.name, slot.file.display()));
    }
    let mut shutdown = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(async move { server.await });
    wait_for_signal().await;
    tracing::info!("shutting down: finishing running pages");
    let _ = stop_tx.send(true);
    let _ = server.await;
    for w in workers {
        let _ = w.await;
    }
    daemon.store.close().await;
    say("synchub daemon: stopped".into());
    Ok(ExitCode::SUCCESS)
}

/// A line on stdout; a daemon whose stdout was closed keeps running.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn pipeline_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let files = pipeline::toml_files(dir)?;
    if files.is_empty() {
        bail!(
            "no pipeline files (*.toml) in {}; pass --config-dir DIR",
            dir.display()
        );
    }
    Ok(files)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a pipeline at start, on its schedule and when woken.
async fn worker(slot: Arc<Slot>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        run_once(&slot).await;
        let sleep = async {
            match slot.every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = slot.wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn run_once(slot: &Slot) {
    let started_at = synchub_store::now_text();
    // A complete read (with delete reconciliation) when it is due.
    let full = match (slot.full_every, slot.last_full.lock()) {
        (Some(every), Ok(mut last)) if last.elapsed() >= every => {
            *last = Instant::now();
            true
        }
        _ => false,
    };
    let opts = RunOptions {
        full_refresh: full,
        dry_run: false,
        progress: None,
        reconcile_deletes: full,
    };
    let result = slot.engine.run(&opts).await;
    let Ok(mut st) = slot.status.lock() else {
        return;
    };
    st.runs += 1;
    st.last_started_at = Some(started_at);
    st.last_finished_at = Some(synchub_store::now_text());
    match result {
        Ok(report) => {
            st.last_seconds = Some(report.seconds);
            for (stream, s) in &report.streams {
                for (outcome, n) in [
                    ("read", s.read),
                    ("created", s.created),
                    ("updated", s.updated),
                    ("merged", s.merged),
                    ("conflicted", s.conflicted),
                    ("dead_lettered", s.dead_lettered),
                    ("deleted", s.deleted),
                    ("pushed", s.pushed),
                    ("push_failed", s.push_failed),
                ] {
                    *st.records.entry((stream.clone(), outcome)).or_default() += n;
                }
            }
            if report.errors.is_empty() {
                st.last_error = None;
                tracing::info!(pipeline = %slot.name, seconds = report.seconds, "run finished");
            } else {
                st.failed_runs += 1;
                let text: Vec<String> = report
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                st.last_error = Some(text.join("; "));
                tracing::warn!(pipeline = %slot.name, errors = %text.join("; "), "run finished with errors");
            }
        }
        Err(e) => {
            st.failed_runs += 1;
            st.last_error = Some(e.to_string());
            tracing::error!(pipeline = %slot.name, error = %e, "run failed");
        }
    }
}

async fn webhook(
    State(d): State<Arc<Daemon>>,
    UrlPath(connection): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((index, hook)) = d.hooks.get(&connection) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no connection `{connection}` takes webhooks here\n"),
        )
            .into_response();
    };
    let count = |result: &'static str| {
        if let Ok(mut w) = d.webhooks.lock() {
            *w.entry((connection.clone(), result)).or_default() += 1;
        }
    };
    // Verified before anything is read from the body.
    let delivery = match hook.handle(&headers, &body).await {
        Ok(delivery) => delivery,
        Err(e) => {
            count("rejected");
            tracing::warn!(%connection, error = %e, "webhook rejected");
            return (StatusCode::UNAUTHORIZED, format!("webhook rejected: {e}\n")).into_response();
        }
    };
    let slot = &d.slots[*index];
    match delivery {
        Delivery::Nothing(why) => {
            count(why);
            (StatusCode::OK, format!("{why}\n")).into_response()
        }
        Delivery::Sync { object, deleted } => {
            if let Some(record) = deleted {
                let applied = slot
                    .engine
                    .apply_remote(&connection, object, vec![*record])
                    .await;
                if let (Ok(counts), Ok(mut st)) = (&applied, slot.status.lock()) {
                    let stream = format!("{connection}.{object}");
                    *st.records.entry((stream.clone(), "deleted")).or_default() += counts.deleted;
                    *st.records.entry((stream, "dead_lettered")).or_default() +=
                        counts.dead_lettered;
                }
                if let Err(e) = applied {
                    count("failed");
                    tracing::error!(%connection, %object, error = %e, "applying a webhook delete failed");
                    // The delivery id is already marked seen, so a retry
                    // would be dropped as a duplicate: the record stays until
                    // the next full reconciliation (`--full-refresh`).
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("could not apply the delete: {e}\n"),
                    )
                        .into_response();
                }
            }
            count("accepted");
            // Bursts collapse: one pending wake-up, one more run.
            slot.wake.notify_one();
            (StatusCode::ACCEPTED, format!("{object} sync queued\n")).into_response()
        }
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    uptime_seconds: u64,
    pipelines: BTreeMap<String, PipelineStatus>,
}

async fn health(State(d): State<Arc<Daemon>>) -> Response {
    let store_ok = d.store.record_counts().await.is_ok();
    let pipelines = d
        .slots
        .iter()
        .filter_map(|s| s.status.lock().ok().map(|st| (s.name.clone(), st.clone())))
        .collect();
    let body = Health {
        status: if store_ok { "ok" } else { "store unavailable" },
        uptime_seconds: d.started.elapsed().as_secs(),
        pipelines,
    };
    let code = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    let mut out = String::new();
    out.push_str(
        "# HELP synchub_runs_total Pipeline runs by result.\n# TYPE synchub_runs_total counter\n",
    );
    let mut records = String::new();
    let mut last = String::new();
    for slot in &d.slots {
        let Ok(st) = slot.status.lock() else { continue };
        let p = label(&slot.name);
        out.push_str(&format!(
            "synchub_runs_total{{pipeline=\"{p}\",result=\"ok\"}} {}\nsynchub_runs_total{{pipeline=\"{p}\",result=\"error\"}} {}\n",
            st.runs - st.failed_runs,
            st.failed_runs
        ));
        for ((stream, outcome), n) in &st.records {
            records.push_str(&format!(
                "synchub_records_total{{pipeline=\"{p}\",stream=\"{}\",outcome=\"{outcome}\"}} {n}\n",
                label(stream)
            ));
        }
        if let Some(s) = st.last_seconds {
            last.push_str(&format!(
                "synchub_last_run_duration_seconds{{pipeline=\"{p}\"}} {s:.3}\n"
            ));
        }
    }
    out.push_str("# HELP synchub_records_total Records per stream and outcome since start.\n# TYPE synchub_records_total counter\n");
    out.push_str(&records);
    out.push_str("# HELP synchub_last_run_duration_seconds Wall time of the last run.\n# TYPE synchub_last_run_duration_seconds gauge\n");
    out.push_str(&last);
    out.push_str("# HELP synchub_webhooks_total Webhook deliveries by result.\n# TYPE synchub_webhooks_total counter\n");
    if let Ok(w) = d.webhooks.lock() {
        for ((conn, result), n) in w.iter() {
            out.push_str(&format!(
                "synchub_webhooks_total{{connection=\"{}\",result=\"{result}\"}} {n}\n",
                label(conn)
            ));
        }
    }
    out.push_str("# HELP synchub_uptime_seconds Seconds since the daemon started.\n# TYPE synchub_uptime_seconds gauge\n");
    out.push_str(&format!(
        "synchub_uptime_seconds {}\n",
        d.started.elapsed().as_secs()
    ));
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}
