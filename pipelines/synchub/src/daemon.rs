//! `synchub daemon`: every pipeline of a folder, unattended.
//!
//! * Every pipeline file of the folder is validated (and its connectors
//!   built) before the store is opened: a bad file leaves no database.
//! * Each pipeline runs once at start, then on its `[schedule]` and whenever
//!   a verified webhook of one of its connections arrives. Runs of one
//!   pipeline never overlap; a webhook that arrives during a run triggers
//!   one more run after it (bursts collapse into one run, nothing is lost).
//! * `POST /webhooks/{connection}`: verified first (HMAC, constant time) —
//!   a delivery without a signature header is refused (401) before its body
//!   is read, and the signature of every candidate secret is computed chunk
//!   by chunk as the body arrives, so verifying costs no second pass — then
//!   de-duplicated by delivery id and by content (the shops sign only
//!   the body, so a captured body re-sent under a new delivery id verifies:
//!   it is recognised by its hash); a delete topic is applied at once
//!   (deleted records never show up in an incremental query again); one
//!   that fails is forgotten by both guards, so the provider's redelivery is
//!   carried out instead of dropped as a repeat. A body
//!   declaring more than [`MAX_BODY`] is refused before it is read, at most
//!   [`BODY_READS`] bodies are read at a time (memory stays bounded under a
//!   flood of forged bodies), and a body must arrive within [`BODY_TIMEOUT`].
//! * `GET /health`: 200 with the last run of each pipeline while the store
//!   answers, 503 when it does not.
//! * `GET /metrics`: Prometheus text.
//!
//! SIGINT/SIGTERM stop taking webhooks and stop every run between pages:
//! the page being applied commits, no further page is read. Connections get
//! a header-read (and idle) timeout, their number is capped, and on shutdown
//! requests in flight get a few seconds before they are dropped (see
//! [`serve`]), so half-sent requests cannot keep the daemon alive.

mod serve;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use synchub_engine::{Connection, Engine, RunOptions};
use synchub_http::webhook::{MemoryReplayGuard, ReplayGuard};
use synchub_store::Store;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::commands::{engine_with, open_store};
use crate::pipeline;
use crate::registry::{self, Delivery, Verifier, WebhookHandler};

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

/// The webhooks of one connection.
struct Hook {
    /// Index of the pipeline's slot.
    slot: usize,
    /// Verifies and classifies.
    handler: WebhookHandler,
    /// The delivery ids the handler has taken: the daemon owns it so that a
    /// delivery it could not carry out is forgotten and its redelivery taken.
    ids: Arc<MemoryReplayGuard>,
}

impl Hook {
    fn new(slot: usize, handler: WebhookHandler) -> Hook {
        let ids = Arc::new(MemoryReplayGuard::new(CONTENT_TTL, 100_000));
        let guard: Arc<dyn ReplayGuard> = ids.clone();
        let handler = match handler {
            WebhookHandler::Shopify(c) => WebhookHandler::Shopify(c.with_replay_guard(guard)),
            WebhookHandler::Woo(c) => WebhookHandler::Woo(c.with_replay_guard(guard)),
        };
        Hook { slot, handler, ids }
    }
}

struct Daemon {
    store: Store,
    slots: Vec<Arc<Slot>>,
    /// connection name → its webhooks
    hooks: HashMap<String, Hook>,
    webhooks: Mutex<BTreeMap<(String, &'static str), u64>>,
    started: Instant,
    /// Webhook bodies being read (each holds up to [`MAX_BODY`] bytes).
    bodies: Semaphore,
    /// `connection:sha256(body)` of the deliveries already taken.
    contents: MemoryReplayGuard,
}

/// The largest webhook body taken.
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// Webhook bodies read at once; more are answered 503 at once.
pub const BODY_READS: usize = 8;
/// Time for a webhook body to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a body hash is remembered (Shopify retries for 4 hours).
const CONTENT_TTL: Duration = Duration::from_secs(5 * 3600);

pub async fn run(db: &str, config_dir: &Path, listen: &str) -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow!("--listen `{listen}` is not HOST:PORT (e.g. 127.0.0.1:8750)"))?;
    // Every pipeline file is loaded, validated and its connectors built
    // before the store is opened (or created): a bad file leaves no
    // database behind.
    let files = pipeline_files(config_dir)?;
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        match validate(file) {
            Ok(l) => loaded.push(l),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let mut hooks = HashMap::new();
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    for (index, (file, _, _, handlers)) in loaded.iter_mut().enumerate() {
        for (name, handler) in std::mem::take(handlers) {
            if let Some(first) = owners.insert(name.clone(), file.clone()) {
                bail!(
                    "connection `{name}` is named in both {} and {}; webhook addresses and identity links are keyed by connection name, so names must be unique across the folder",
                    first.display(),
                    file.display()
                );
            }
            if let Some(handler) = handler {
                hooks.insert(name, Hook::new(index, handler));
            }
        }
    }
    let store = open_store(db).await?;
    let mut slots = Vec::new();
    for (file, pipe, connections, _) in loaded {
        let engine = engine_with(store.clone(), &pipe, connections);
        let schedule = pipe.config.schedule.as_ref();
        slots.push(Arc::new(Slot {
            name: pipe.config.name.clone(),
            file,
            engine,
            every: schedule.map(|s| Duration::from_secs(s.every_seconds)),
            full_every: schedule
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
        bodies: Semaphore::new(BODY_READS),
        contents: MemoryReplayGuard::new(CONTENT_TTL, 100_000),
    });

    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for slot in &daemon.slots {
        workers.push(tokio::spawn(worker(slot.clone(), stop.clone())));
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
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        serve::Limits::default(),
        stop.clone(),
    ));
    wait_for_signal().await;
    tracing::info!("shutting down: finishing running pages");
    stop.cancel();
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

/// A pipeline file checked without IO: its pipeline, its connections and
/// the webhook handler of each connection by name.
type Validated = (
    PathBuf,
    pipeline::LoadedPipeline,
    Vec<Connection>,
    Vec<(String, Option<WebhookHandler>)>,
);

fn validate(file: &Path) -> anyhow::Result<Validated> {
    let loaded = pipeline::load(file)?;
    let connections = loaded.connections()?;
    let mut handlers = Vec::new();
    for (i, c) in loaded.config.connections.iter().enumerate() {
        let handler = registry::webhook_handler(i, c)
            .map_err(|e| anyhow!("pipeline file {}: {e}", file.display()))?;
        handlers.push((c.name.clone(), handler));
    }
    Ok((file.to_path_buf(), loaded, connections, handlers))
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
async fn worker(slot: Arc<Slot>, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        run_once(&slot, &stop).await;
        let sleep = async {
            match slot.every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = slot.wake.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn run_once(slot: &Slot, stop: &CancellationToken) {
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
        cancel: stop.clone(),
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
    body: Body,
) -> Response {
    let Some(hook) = d.hooks.get(&connection) else {
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
    let refuse = |code: StatusCode, why: &str| {
        count("refused");
        tracing::warn!(%connection, why, "webhook body refused");
        (code, format!("{why}\n")).into_response()
    };
    if declared_length(&headers).is_some_and(|n| n > MAX_BODY as u64) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "webhook body over 2 MiB");
    }
    let reject = |e: String| {
        count("rejected");
        tracing::warn!(%connection, error = %e, "webhook rejected");
        (StatusCode::UNAUTHORIZED, format!("webhook rejected: {e}\n")).into_response()
    };
    // The headers first: no signature, no body read.
    let mut verifier = match hook.handler.begin(&headers) {
        Ok(verifier) => verifier,
        Err(e) => return reject(e),
    };
    // The signature is computed as the body arrives: no second pass.
    let body = match read_body(&d, &headers, body, &mut verifier).await {
        Ok(body) => body,
        Err((code, why)) => return refuse(code, why),
    };
    let verified = match verifier.finish(&body) {
        Ok(verified) => verified,
        Err(e) => return reject(e),
    };
    // Verified before anything is parsed.
    let delivery = match hook.handler.classify(&headers, &body, &verified).await {
        Ok(delivery) => delivery,
        Err(e) => return reject(e),
    };
    let slot = &d.slots[hook.slot];
    match delivery {
        Delivery::Nothing(why) => {
            count(why);
            (StatusCode::OK, format!("{why}\n")).into_response()
        }
        Delivery::Sync { object, deleted } => {
            // The delivery id is not signed: the same body under a new id
            // is the same event.
            let content = format!("{connection}:{}", verified.content_id());
            if !d.contents.first_seen(&content).await {
                count("duplicate");
                return (StatusCode::OK, "duplicate\n").into_response();
            }
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
                    // Not carried out: the provider's redelivery (same id,
                    // same body) must be taken, not dropped as a repeat.
                    d.contents.forget(&content).await;
                    hook.ids.forget(verified.delivery_id()).await;
                    count("failed");
                    tracing::error!(%connection, %object, error = %e, "applying a webhook delete failed");
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

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a webhook body within the limits, feeding each chunk to the
/// verifier as it arrives: at most [`BODY_READS`] bodies are read at once,
/// a body must arrive within [`BODY_TIMEOUT`], and it holds at most
/// [`MAX_BODY`] bytes (or the verifier's smaller limit).
async fn read_body(
    d: &Daemon,
    headers: &HeaderMap,
    body: Body,
    verifier: &mut Verifier,
) -> Result<Bytes, (StatusCode, &'static str)> {
    let declared = declared_length(headers);
    let Ok(_reading) = d.bodies.try_acquire() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "too many webhook bodies arriving at once; retry later",
        ));
    };
    let limit = verifier.limit().map_or(MAX_BODY, |l| l.min(MAX_BODY));
    // One buffer of the declared size: no growth, no copy at the end.
    let capacity = declared.map_or(64 * 1024, |n| n.min(limit as u64) as usize);
    let read = async move {
        use futures::StreamExt as _;
        let mut buf = Vec::with_capacity(capacity);
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| (StatusCode::BAD_REQUEST, "webhook body cut short"))?;
            if buf.len() + chunk.len() > limit {
                return Err((StatusCode::PAYLOAD_TOO_LARGE, "webhook body over 2 MiB"));
            }
            verifier.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err((StatusCode::REQUEST_TIMEOUT, "webhook body too slow")))
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
