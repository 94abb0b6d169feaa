//! What each subcommand does.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use synchub_engine::{Connection, Engine, RunOptions, RunReport, STOPPED};
use synchub_store::Store;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, ReportFormat};
use crate::{demo, pipeline};

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let db = cli.database_url.clone();
    match cli.command {
        Command::Demo => demo::run(&db).await,
        Command::Run {
            pipeline,
            once,
            full_refresh,
            dry_run,
            report,
        } => run(&db, &pipeline, once, full_refresh, dry_run, report).await,
        Command::Check {
            path,
            timeout_seconds,
            format,
            register_webhooks,
            public_url,
        } => {
            let webhooks = public_url.as_deref().map(|url| (url, register_webhooks));
            let timeout = Duration::from_secs(timeout_seconds);
            crate::check::run(&db, &path, timeout, format, webhooks).await
        }
        Command::Daemon {
            config_dir,
            listen,
            public_url,
        } => crate::daemon::run(&db, &config_dir, &listen, public_url.as_deref()).await,
        Command::Console {
            listen,
            database,
            config_dir,
            public_url,
        } => {
            let db = database.unwrap_or(db);
            crate::console::serve(&db, &listen, config_dir.as_deref(), public_url.as_deref()).await
        }
        Command::Users { action } => crate::console::users(&db, action).await,
        Command::Migrate {
            kind,
            path_or_url,
            dry_run,
            resume,
            map,
            encoding,
            page_size,
        } => {
            let opts = crate::migrate::MigrateArgs {
                dry_run,
                resume,
                map,
                encoding,
                page_size,
            };
            crate::migrate::run(&db, &kind, &path_or_url, opts).await
        }
        Command::Dedupe {
            inputs,
            sources,
            maps,
            region,
            output,
        } => crate::migrate::dedupe(inputs, sources, maps, region, output).await,
        Command::Auth {
            instance,
            config_dir,
        } => crate::auth::run(&db, &instance, &config_dir).await,
        Command::Conflicts { action } => {
            crate::conflicts::command(&open_store(&db).await?, action).await
        }
        Command::Merges { action } => crate::merges::run(&db, action).await,
        Command::Review { action } => crate::review::command(&db, action).await,
        Command::Status { format } => crate::status::run(&open_store(&db).await?, format).await,
        Command::Runs { action } => crate::runs::command(&open_store(&db).await?, action).await,
        Command::Contacts { action } => {
            crate::contacts::command(&open_store(&db).await?, action).await
        }
        Command::Export {
            what,
            format,
            output,
        } => crate::export::run(&open_store(&db).await?, what, format, output).await,
        Command::DeadLetters { action } => {
            crate::dead_letters::command(&open_store(&db).await?, action).await
        }
        Command::Outbox { action } => crate::outbox::command(&open_store(&db).await?, action).await,
    }
}

/// The store's token vault; a missing `SYNCHUB_SECRET_KEY` is reported
/// when a connector first needs a token.
pub fn token_vault(store: &Store) -> synchub_http::TokenVault {
    synchub_http::TokenVault::from_env(std::sync::Arc::new(
        synchub_store::tokens::SqlTokenStore::new(store.clone()),
    ))
}

/// Opens the store; on PostgreSQL every rate budget of this process is
/// shared from then on with the other instances on the store.
pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url).await?;
    if let Some(budget) = store.shared_budget() {
        synchub_http::shared_budget::install(std::sync::Arc::new(budget));
    }
    Ok(store)
}

/// Builds the engine of a loaded pipeline.
pub fn build_engine(store: Store, loaded: &pipeline::LoadedPipeline) -> anyhow::Result<Engine> {
    let connections = loaded.connections_with(Some(token_vault(&store)))?;
    Ok(engine_with(store, loaded, connections))
}

/// The engine of a loaded pipeline with connections already built.
pub(crate) fn engine_with(
    store: Store,
    loaded: &pipeline::LoadedPipeline,
    connections: Vec<Connection>,
) -> Engine {
    let cfg = &loaded.config;
    Engine::new(
        store,
        cfg.name.clone(),
        connections,
        cfg.merge.policy(),
        cfg.deletes.clone(),
    )
    // A bad `invoice_when` already failed the connector's own config.
    .with_invoice_rules(
        synchub_engine::invoices::InvoiceRules::from_pipeline(cfg).unwrap_or_default(),
    )
}

fn progress_bar() -> Option<(indicatif::ProgressBar, synchub_engine::Progress)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg} ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    let cb: synchub_engine::Progress = Arc::new(move |stream: &str, read: u64| {
        b.set_position(read);
        b.set_message(format!("{stream}: {read} records"));
    });
    Some((bar, cb))
}

/// Runs an engine once with a progress bar on a terminal.
pub async fn run_engine(
    engine: &Engine,
    full_refresh: bool,
    dry_run: bool,
) -> anyhow::Result<RunReport> {
    run_engine_until(engine, full_refresh, dry_run, CancellationToken::new()).await
}

/// [`run_engine`] that stops between pages once `stop` is cancelled (the
/// page in flight commits; nothing is pushed).
async fn run_engine_until(
    engine: &Engine,
    full_refresh: bool,
    dry_run: bool,
    stop: CancellationToken,
) -> anyhow::Result<RunReport> {
    let bar = progress_bar();
    let opts = RunOptions {
        full_refresh,
        dry_run,
        progress: bar.as_ref().map(|(_, cb)| cb.clone()),
        // A complete read also finds records deleted at the source.
        reconcile_deletes: full_refresh,
        cancel: stop,
        ..RunOptions::default()
    };
    let report = engine.run(&opts).await;
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    Ok(report?)
}

async fn run(
    db: &str,
    path: &Path,
    once: bool,
    full_refresh: bool,
    dry_run: bool,
    format: Option<ReportFormat>,
) -> anyhow::Result<ExitCode> {
    // Everything that can be checked without IO is, before a store is
    // opened (or created): a bad pipeline leaves no database behind.
    let loaded = pipeline::load(path)?;
    loaded.connections()?;
    let store = open_store(db).await?;
    // Built again with the store's token vault, for OAuth connectors.
    let connections = loaded.connections_with(Some(token_vault(&store)))?;
    let engine = engine_with(store, &loaded, connections);
    let every = loaded
        .config
        .schedule
        .as_ref()
        .map(|s| Duration::from_secs(s.every_seconds));
    let mut full_refresh = full_refresh;
    let stop = CancellationToken::new();
    let signal = stop_on_signal(stop.clone());
    loop {
        let report = run_engine_until(&engine, full_refresh, dry_run, stop.clone()).await?;
        match format {
            Some(ReportFormat::Json) => println!("{}", serde_json::to_string(&report)?),
            None => print!("{}", report.to_table()),
        }
        let failed = !report.errors.is_empty();
        // A failed stream (a missing or unreadable file, a refused login)
        // ends as one plain `error:` line per stream, whatever the format.
        for (stream, e) in report.errors.iter().filter(|(k, _)| *k != STOPPED) {
            eprintln!(
                "error: {stream}: {}",
                synchub_http::secret::redact(&e.replace('\n', " "))
            );
        }
        if report.errors.contains_key(STOPPED) {
            let name = signal.get().copied().unwrap_or(StopSignal::Interrupt);
            print_stopped(&engine, &report, name).await;
            return Ok(ExitCode::from(name.exit_code()));
        }
        match every {
            Some(every) if !once && !dry_run => {
                full_refresh = false;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    // Between runs nothing is in flight: a clean stop.
                    _ = stop.cancelled() => return Ok(ExitCode::SUCCESS),
                }
            }
            _ => {
                return Ok(if failed {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    }
}

/// A signal that stops `synchub run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number, as a shell reports a process it stopped.
    fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// Cancels `stop` at the first SIGTERM or SIGINT, so that the run ends
/// between pages with the page in flight committed; a second signal ends
/// the process at once (the page being applied commits whole or not at
/// all). The handlers are installed before this returns. The signal that
/// arrived is in the returned cell.
fn stop_on_signal(stop: CancellationToken) -> Arc<std::sync::OnceLock<StopSignal>> {
    let got = Arc::new(std::sync::OnceLock::new());
    let mut signals = StopSignals::install();
    let cell = got.clone();
    tokio::spawn(async move {
        let Some(first) = signals.next().await else {
            return;
        };
        let _ = cell.set(first);
        eprintln!(
            "{}: stopping after the page in flight commits (send it again to stop at once)",
            first.name()
        );
        stop.cancel();
        if let Some(again) = signals.next().await {
            eprintln!("{}: stopping now", again.name());
            std::process::exit(i32::from(again.exit_code()));
        }
    });
    got
}

/// SIGTERM and SIGINT, listened for from the moment they are installed.
struct StopSignals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn install() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            StopSignals { streams }
        }
        #[cfg(not(unix))]
        {
            StopSignals {}
        }
    }

    /// The next stop signal; `None` when none can be listened for.
    async fn next(&mut self) -> Option<StopSignal> {
        #[cfg(unix)]
        {
            let (term, int) = self.streams.as_mut()?;
            tokio::select! {
                Some(()) = term.recv() => Some(StopSignal::Terminate),
                Some(()) = int.recv() => Some(StopSignal::Interrupt),
                else => None,
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .ok()
                .map(|()| StopSignal::Interrupt)
        }
    }
}

/// One line per stream the stopped run read: the page its committed cursor
/// is at and what this run read, from where the next run resumes.
async fn print_stopped(engine: &Engine, report: &RunReport, signal: StopSignal) {
    let mut lines = 0;
    for conn in engine.connections().iter().filter(|c| c.direction.pulls()) {
        for object in &conn.objects {
            let key = format!("{}.{object}", conn.name);
            let Some(stream) = report.streams.get(&key) else {
                continue;
            };
            let page = match engine.store().cursor(&conn.name, *object).await {
                Ok(Some(c)) => c.seq.to_string(),
                Ok(None) => "0".into(),
                Err(e) => format!("unknown ({e})"),
            };
            eprintln!(
                "stopped by {}: {key} committed through page {page} ({} records in {} pages \
                 this run); the next run resumes from there",
                signal.name(),
                stream.read,
                stream.pages
            );
            lines += 1;
        }
    }
    if lines == 0 {
        eprintln!(
            "stopped by {} before any page was read; nothing was pushed",
            signal.name()
        );
    } else {
        eprintln!(
            "stopped by {}: nothing was pushed in this run",
            signal.name()
        );
    }
}
