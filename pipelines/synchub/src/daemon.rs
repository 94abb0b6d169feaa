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
//! * `GET /health` (liveness): 200 with the last run of each pipeline and
//!   whether the store answers; `GET /ready` (readiness): 503 while the
//!   store does not answer and while draining (see [`ops`]).
//! * Several daemons may share one PostgreSQL store: each stream is leased
//!   with a fencing token (TTL from [`LEASE_TTL_ENV`]), each schedule tick
//!   is claimed in the store and run by one instance, and webhook wake-ups
//!   and deletes go through the store's queue.
//! * `GET /metrics`: Prometheus text, with the lease holders, queue depth,
//!   lag per stream and rate-budget waits read from the store.
//! * Webhook ids and body hashes are remembered in the store (a delivery
//!   redelivered after a restart, or to another instance, is recognised);
//!   wake-ups and deletes go through the store's delivery queue, which
//!   every instance serves (see [`queue`]).
//!
//! SIGINT/SIGTERM stop taking webhooks (503, so the provider delivers them
//! again) and stop every run between pages: the page being applied
//! commits, no further page is read; `/ready` answers 503 meanwhile. Connections get
//! a header-read (and idle) timeout, their number is capped, and on shutdown
//! requests in flight get a few seconds before they are dropped (see
//! [`serve`]), so half-sent requests cannot keep the daemon alive.

mod ops;
mod queue;
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
use synchub_engine::{Connection, Engine, LeaseOptions, RunOptions, Scheduler, Tick};
use synchub_http::webhook::ReplayGuard;
use synchub_store::deliveries::StoreReplayGuard;
use synchub_store::Store;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::commands::{engine_with, open_store};
use crate::pipeline;
use crate::registry::{self, Delivery, Verifier, WebhookHandler};

/// One pipeline under the daemon.
struct Slot {
    name: String,
    file: PathBuf,
    engine: Arc<Engine>,
    /// When it runs (schedule, webhook wakes, complete reads).
    schedule: Scheduler,
    /// The interval of its complete reads, if any.
    full_every: Option<Duration>,
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
    /// The delivery ids the handler has taken, kept in the store (they
    /// survive a restart and every instance sees them): the daemon owns it
    /// so that a delivery it could not carry out is forgotten and its
    /// redelivery taken.
    ids: Arc<StoreReplayGuard>,
}

impl Hook {
    fn new(slot: usize, handler: WebhookHandler, store: &Store, connection: &str) -> Hook {
        let ids = Arc::new(StoreReplayGuard::new(
            store.clone(),
            &format!("{connection}#id"),
            CONTENT_TTL,
        ));
        let guard: Arc<dyn ReplayGuard> = ids.clone();
        let handler = match handler {
            WebhookHandler::Source { source, .. } => WebhookHandler::Source { source, guard },
        };
        Hook { slot, handler, ids }
    }
}

/// The pipelines of one load of the folder (replaced whole by a reload).
struct Pipelines {
    slots: Vec<Arc<Slot>>,
    /// connection name → its webhooks
    hooks: HashMap<String, Hook>,
    /// Pipeline files skipped at start, with why.
    invalid: BTreeMap<String, String>,
}

/// SIGHUP reloads so far.
#[derive(Debug, Default, Clone, Serialize)]
struct Reloads {
    ok: u64,
    refused: u64,
    /// Why the last reload was refused (cleared by a good one).
    last_error: Option<String>,
}

struct Daemon {
    store: Store,
    current: std::sync::RwLock<Arc<Pipelines>>,
    webhooks: Mutex<BTreeMap<(String, &'static str), u64>>,
    started: Instant,
    /// Webhook bodies being read (each holds up to [`MAX_BODY`] bytes).
    bodies: Semaphore,
    /// `connection:sha256(body)` of the deliveries already taken (in the store).
    contents: StoreReplayGuard,
    /// This instance, as named in claims of queued deliveries.
    holder: String,
    /// Failed attempts at queued webhook deletes (each is retried).
    retried_deletes: std::sync::atomic::AtomicU64,
    reloads: Mutex<Reloads>,
    /// How long a stream lease lasts unless renewed ([`lease_ttl`]).
    lease_ttl: Duration,
    /// Set on SIGINT/SIGTERM: the runs are finishing their pages, `/ready`
    /// answers 503 and webhooks are turned away to another instance.
    draining: std::sync::atomic::AtomicBool,
}

impl Daemon {
    /// The pipelines running now.
    fn pipelines(&self) -> Arc<Pipelines> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The largest webhook body taken.
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// Webhook bodies read at once; more are answered 503 at once.
pub const BODY_READS: usize = 8;
/// Time for a webhook body to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a body hash is remembered (Shopify retries for 4 hours).
const CONTENT_TTL: Duration = Duration::from_secs(5 * 3600);

/// The environment variable setting the stream lease TTL in seconds: a
/// daemon that dies or stalls loses its streams to another instance after
/// it (each live run renews its leases every third of it).
pub const LEASE_TTL_ENV: &str = "SYNCHUB_LEASE_TTL";

/// The lease TTL: [`LEASE_TTL_ENV`] (seconds, fractions allowed, at least
/// 0.3) or the engine's default.
fn lease_ttl() -> anyhow::Result<Duration> {
    let Ok(text) = std::env::var(LEASE_TTL_ENV) else {
        return Ok(LeaseOptions::default().ttl);
    };
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.3..=86_400.0).contains(&secs) => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => bail!("{LEASE_TTL_ENV}=`{text}` is not a number of seconds between 0.3 and 86400"),
    }
}

/// The pipeline files of the folder, each validated (and its connectors
/// built) without IO.
struct Folder {
    loaded: Vec<Validated>,
    /// One line per broken file, naming it.
    problems: Vec<String>,
    /// file → why.
    invalid: BTreeMap<String, String>,
}

/// Validates every pipeline file of `dir`; an error when there is none or
/// two files name one connection.
fn load_folder(dir: &Path) -> anyhow::Result<Folder> {
    let files = pipeline_files(dir)?;
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    let mut invalid = BTreeMap::new();
    for file in &files {
        match validate(file) {
            Ok(l) => loaded.push(l),
            Err(e) => {
                invalid.insert(file.display().to_string(), e.to_string());
                problems.push(e.to_string());
            }
        }
    }
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    for (file, _, _, handlers) in &loaded {
        for (name, _) in handlers {
            if let Some(first) = owners.insert(name.clone(), file.clone()) {
                bail!(
                    "connection `{name}` is named in both {} and {}; webhook addresses and identity links are keyed by connection name, so names must be unique across the folder",
                    first.display(),
                    file.display()
                );
            }
        }
    }
    Ok(Folder {
        loaded,
        problems,
        invalid,
    })
}

/// Builds the engines and webhook hooks of a validated folder on `store`.
fn build(store: &Store, folder: Folder) -> anyhow::Result<Pipelines> {
    let mut hooks = HashMap::new();
    let mut slots = Vec::new();
    for (index, (file, pipe, _checked, handlers)) in folder.loaded.into_iter().enumerate() {
        for (name, handler) in handlers {
            if let Some(handler) = handler {
                let hook = Hook::new(index, handler, store, &name);
                hooks.insert(name, hook);
            }
        }
        // Built again with the store's token vault, for OAuth connectors.
        let connections = pipe.connections_with(Some(crate::commands::token_vault(store)))?;
        let engine = Arc::new(engine_with(store.clone(), &pipe, connections));
        let schedule = pipe.config.schedule.as_ref();
        let full_every = schedule
            .and_then(|s| s.full_refresh_every_seconds)
            .map(Duration::from_secs);
        slots.push(Arc::new(Slot {
            name: pipe.config.name.clone(),
            file,
            engine,
            schedule: Scheduler::new(
                schedule.map(|s| Duration::from_secs(s.every_seconds)),
                full_every,
            ),
            full_every,
            status: Mutex::new(PipelineStatus::default()),
        }));
    }
    Ok(Pipelines {
        slots,
        hooks,
        invalid: folder.invalid,
    })
}

fn spawn_workers(
    d: &Arc<Daemon>,
    generation: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    d.pipelines()
        .slots
        .iter()
        .map(|slot| tokio::spawn(worker(d.clone(), slot.clone(), generation.clone())))
        .collect()
}

fn describe(d: &Daemon, config_dir: &Path) {
    let p = d.pipelines();
    say(format!(
        "synchub daemon: {} pipeline(s) from {}",
        p.slots.len(),
        config_dir.display()
    ));
    for slot in &p.slots {
        let when = slot
            .schedule
            .every()
            .map(|d| format!("every {} s", d.as_secs()))
            .unwrap_or_else(|| "at start and on webhooks".into());
        say(format!("  {} ({}): {when}", slot.name, slot.file.display()));
    }
}

/// SIGHUP: every file of the folder is validated again; only when all of
/// them are good are the running pipelines stopped between pages and the
/// new ones started. A bad file is named and the running configuration
/// kept.
fn reload(d: &Daemon, config_dir: &Path) -> Result<Pipelines, String> {
    let folder = load_folder(config_dir).map_err(|e| e.to_string())?;
    if !folder.problems.is_empty() {
        return Err(folder.problems.join("; "));
    }
    build(&d.store, folder).map_err(|e| e.to_string())
}

pub async fn run(
    db: &str,
    config_dir: &Path,
    listen: &str,
    public_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow!("--listen `{listen}` is not HOST:PORT (e.g. 127.0.0.1:8750)"))?;
    // Every pipeline file is loaded, validated and its connectors built
    // before the store is opened (or created): a bad file leaves no
    // database behind.
    let lease_ttl = lease_ttl()?;
    let folder = load_folder(config_dir)?;
    // Nothing to run: say why and leave no database behind.
    if folder.loaded.is_empty() && !folder.problems.is_empty() {
        bail!("{}", folder.problems.join("; "));
    }
    // A broken file does not stop the others: it is skipped, said once
    // here, and reported by /health until it is fixed (and SIGHUP sent).
    for problem in &folder.problems {
        eprintln!("skipping a pipeline file: {problem}");
        tracing::error!(error = %problem, "pipeline file skipped");
    }
    let store = open_store(db).await?;
    let pipelines = build(&store, folder)?;
    let store_for_contents = store.clone();
    let daemon = Arc::new(Daemon {
        store,
        current: std::sync::RwLock::new(Arc::new(pipelines)),
        webhooks: Mutex::new(BTreeMap::new()),
        started: Instant::now(),
        bodies: Semaphore::new(BODY_READS),
        contents: StoreReplayGuard::new(store_for_contents, "#content", CONTENT_TTL),
        holder: synchub_store::leases::new_holder(),
        retried_deletes: 0.into(),
        reloads: Mutex::new(Reloads::default()),
        lease_ttl,
        draining: false.into(),
    });

    let stop = CancellationToken::new();
    let mut generation = stop.child_token();
    let mut workers = spawn_workers(&daemon, &generation);
    let poller = tokio::spawn(queue::poll(daemon.clone(), stop.clone()));
    // The ops console beside the daemon's own endpoints (docs/console.md);
    // it acts through the engines built at start (a SIGHUP reload does not
    // reach it).
    let console = crate::console::console(
        daemon.store.clone(),
        daemon
            .pipelines()
            .slots
            .iter()
            .map(|s| synchub_console::PipelineHandle {
                name: s.name.clone(),
                engine: s.engine.clone(),
                every: s.schedule.every(),
            })
            .collect(),
        public_url,
    )?;
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(metrics))
        .route("/webhooks/:connection", post(webhook))
        .with_state(daemon.clone())
        .merge(synchub_console::router(console));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    say(format!(
        "synchub daemon: listening on http://{bound} (POST /webhooks/CONNECTION, GET /health, GET /ready, GET /metrics; the console at /); SIGHUP reloads {}",
        config_dir.display()
    ));
    describe(&daemon, config_dir);
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        serve::Limits::default(),
        stop.clone(),
    ));
    while wait_for_signal().await == Signal::Reload {
        match reload(&daemon, config_dir) {
            Ok(next) => {
                tracing::info!("reloading: finishing running pages");
                generation.cancel();
                for w in workers.drain(..) {
                    let _ = w.await;
                }
                *daemon.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
                generation = stop.child_token();
                workers = spawn_workers(&daemon, &generation);
                if let Ok(mut r) = daemon.reloads.lock() {
                    r.ok += 1;
                    r.last_error = None;
                }
                say("synchub daemon: configuration reloaded".into());
                describe(&daemon, config_dir);
            }
            Err(e) => {
                if let Ok(mut r) = daemon.reloads.lock() {
                    r.refused += 1;
                    r.last_error = Some(e.clone());
                }
                eprintln!("reload refused, the running configuration is kept: {e}");
                tracing::error!(error = %e, "reload refused; the running configuration is kept");
            }
        }
    }
    // Draining: the server keeps answering (`/ready` says 503, webhooks
    // are turned away) while the runs finish their pages.
    tracing::info!("shutting down: finishing running pages");
    daemon
        .draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    generation.cancel();
    for w in workers {
        let _ = w.await;
    }
    stop.cancel();
    let _ = server.await;
    let _ = poller.await;
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

#[derive(Debug, PartialEq, Eq)]
enum Signal {
    Stop,
    Reload,
}

/// Waits for SIGINT/SIGTERM (a SIGHUP is ignored here).
pub(crate) async fn wait_for_stop() {
    while wait_for_signal().await != Signal::Stop {}
}

/// Waits for SIGINT/SIGTERM (stop) or SIGHUP (reload).
async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Stop,
                    _ = term.recv() => Signal::Stop,
                    _ = hup.recv() => Signal::Reload,
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                Signal::Stop
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

/// Runs a pipeline at start, on its schedule and when woken.
async fn worker(d: Arc<Daemon>, slot: Arc<Slot>, stop: CancellationToken) {
    slot.schedule
        .drive(&stop, |tick| run_once(&d, &slot, &stop, tick))
        .await;
}

/// The schedule period `now_ms` falls in, for an interval of `every`.
fn period(now_ms: i64, every: Duration) -> i64 {
    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    now_ms.div_euclid(every)
}

/// Whether this instance runs `tick`, and how: a schedule period is run by
/// the first instance on the store to claim it (a complete read claims its
/// own, longer period; when another instance has it, an incremental read
/// may still be due). Pipelines without a schedule run at start and when
/// woken, and a store that does not answer leaves the decision to the
/// stream leases.
async fn claim_tick(d: &Daemon, slot: &Slot, tick: Tick) -> Option<Tick> {
    let Some(every) = slot.schedule.every() else {
        return Some(tick);
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let claim = |key: String, period: i64| async move {
        d.store
            .claim_tick(&key, period, &d.holder)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(pipeline = %slot.name, error = %e, "could not claim a schedule tick; running it");
                true
            })
    };
    if tick.full_refresh {
        if let Some(full) = slot.full_every {
            if claim(format!("{}#full", slot.name), period(now_ms, full)).await {
                return Some(tick);
            }
        }
    }
    claim(slot.name.clone(), period(now_ms, every))
        .await
        .then_some(Tick {
            full_refresh: false,
        })
}

async fn run_once(d: &Daemon, slot: &Slot, stop: &CancellationToken, tick: Tick) {
    // This run serves the pipeline's pending wake-up, wherever it was queued;
    // otherwise it is a schedule tick, run by one instance only.
    let woken = d.store.take_wake(&slot.name).await.unwrap_or_else(|e| {
        tracing::warn!(pipeline = %slot.name, error = %e, "could not take the queued wake-up");
        false
    });
    let tick = if woken {
        tick
    } else {
        match claim_tick(d, slot, tick).await {
            Some(tick) => tick,
            None => {
                tracing::debug!(pipeline = %slot.name, "schedule tick taken by another instance");
                return;
            }
        }
    };
    let started_at = synchub_store::now_text();
    let opts = RunOptions {
        full_refresh: tick.full_refresh,
        dry_run: false,
        progress: None,
        // A complete read also finds records deleted at the source.
        reconcile_deletes: tick.full_refresh,
        cancel: stop.clone(),
        // A stream another process holds (a `synchub run`, another daemon)
        // is skipped at once with its holder named; the next tick retries.
        lease: LeaseOptions {
            ttl: d.lease_ttl,
            wait: Duration::ZERO,
        },
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
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if d.draining.load(std::sync::atomic::Ordering::SeqCst) {
        // Not taken: the provider delivers it again (to another instance).
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "this instance is shutting down; deliver again\n",
        )
            .into_response();
    }
    let pipelines = d.pipelines();
    let Some(hook) = pipelines.hooks.get(&connection) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no connection `{connection}` takes webhooks here\n"),
        )
            .into_response();
    };
    // A subscription handshake (Graph's validationToken) is answered first.
    if let Some(h) = hook.handler.handshake(query.as_deref(), &headers) {
        let status = StatusCode::from_u16(h.status).unwrap_or(StatusCode::OK);
        return (
            status,
            [(axum::http::header::CONTENT_TYPE, h.content_type)],
            h.body,
        )
            .into_response();
    }
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
    let slot = &pipelines.slots[hook.slot];
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
                // Queued in the store first: once answered, the delete is
                // ours to apply, retried (by any instance) until it is.
                let queued = match serde_json::to_string(&record) {
                    Ok(payload) => {
                        d.store
                            .enqueue_delete(&slot.name, &connection, object.as_str(), &payload)
                            .await
                    }
                    Err(e) => Err(synchub_store::StoreError::Corrupt {
                        context: "queueing a webhook delete",
                        message: e.to_string(),
                    }),
                };
                let id = match queued {
                    Ok(id) => id,
                    Err(e) => {
                        // Not even queued: the provider's redelivery (same
                        // id, same body) must be taken, not dropped as a repeat.
                        d.contents.forget(&content).await;
                        hook.ids.forget(verified.delivery_id()).await;
                        count("failed");
                        tracing::error!(%connection, %object, error = %e, "queueing a webhook delete failed");
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("could not queue the delete: {e}\n"),
                        )
                            .into_response();
                    }
                };
                let delete = synchub_store::deliveries::QueuedDelete {
                    id,
                    connection: connection.clone(),
                    object: object.as_str().to_string(),
                    payload: String::new(),
                    attempts: 1,
                };
                if let Err(e) = queue::apply_delete(&d, slot, &delete, vec![*record]).await {
                    count("failed");
                    return (
                        StatusCode::ACCEPTED,
                        format!("delete queued; applying it failed ({e}) and it will be retried\n"),
                    )
                        .into_response();
                }
            }
            count("accepted");
            // Bursts collapse: one pending wake-up (in the store, for any
            // instance), one more run.
            if let Err(e) = d
                .store
                .enqueue_wake(&slot.name, &connection, object.as_str())
                .await
            {
                tracing::warn!(pipeline = %slot.name, error = %e, "could not queue the wake-up in the store");
            }
            slot.schedule.wake();
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
    /// `ok`; `degraded` while a pipeline's last run failed (the daemon is
    /// alive and the others run: still 200, so a liveness probe does not
    /// restart it); `store unavailable` (still 200: see `/ready`).
    status: &'static str,
    uptime_seconds: u64,
    /// Pipelines whose last run failed, with why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    failing: BTreeMap<String, String>,
    /// Pipeline files skipped at start (file → why).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    invalid_files: BTreeMap<String, String>,
    /// SIGHUP reloads: done, refused, and why the last was refused.
    reloads: Reloads,
    pipelines: BTreeMap<String, PipelineStatus>,
}

async fn health(State(d): State<Arc<Daemon>>) -> Response {
    let store_ok = d.store.record_counts().await.is_ok();
    let current = d.pipelines();
    let pipelines = current
        .slots
        .iter()
        .filter_map(|s| s.status.lock().ok().map(|st| (s.name.clone(), st.clone())))
        .collect::<BTreeMap<String, PipelineStatus>>();
    let failing: BTreeMap<String, String> = pipelines
        .iter()
        .filter_map(|(name, st)| st.last_error.clone().map(|e| (name.clone(), e)))
        .collect();
    let status = match (store_ok, failing.is_empty() && current.invalid.is_empty()) {
        (false, _) => "store unavailable",
        (true, false) => "degraded",
        (true, true) => "ok",
    };
    let body = Health {
        status,
        uptime_seconds: d.started.elapsed().as_secs(),
        failing,
        invalid_files: current.invalid.clone(),
        reloads: d.reloads.lock().map(|r| r.clone()).unwrap_or_default(),
        pipelines,
    };
    // Liveness: the process answers. Whether it can take work is `/ready`.
    (StatusCode::OK, Json(body)).into_response()
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
    for slot in &d.pipelines().slots {
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
    ops::shared_metrics(&d, &mut out).await;
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
