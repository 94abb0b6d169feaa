//! What each subcommand does.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use synchub_core::ObjectKind;
use synchub_engine::{Connection, Engine, RunOptions, RunReport};
use synchub_store::Store;

use crate::cli::{Cli, Command, ConflictAction, ReportFormat};
use crate::{demo, pipeline, registry};

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
        Command::Daemon { config_dir, listen } => {
            crate::daemon::run(&db, &config_dir, &listen).await
        }
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
        Command::Conflicts { action } => conflicts(&db, action).await,
        Command::Merges { action } => crate::merges::run(&db, action).await,
        Command::Review { action } => crate::review::command(&db, action).await,
        Command::Status => status(&db).await,
    }
}

pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    Ok(Store::connect(url).await?)
}

/// Builds the engine of a loaded pipeline.
pub fn build_engine(store: Store, loaded: &pipeline::LoadedPipeline) -> anyhow::Result<Engine> {
    let cfg = &loaded.config;
    let mut connections = Vec::new();
    for (i, c) in cfg.connections.iter().enumerate() {
        let connector = registry::build(i, c, &loaded.base_dir)?;
        let specs = connector.objects();
        let objects: Vec<ObjectKind> = if c.objects.is_empty() {
            specs.iter().map(|s| s.kind).collect()
        } else {
            for o in &c.objects {
                if !specs.iter().any(|s| s.kind == *o) {
                    bail!(
                        "key `connections[{i}].objects`: connector `{}` does not support {o} (it has: {})",
                        c.kind,
                        specs.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>().join(", ")
                    );
                }
            }
            c.objects.clone()
        };
        connections.push(Connection {
            name: c.name.clone(),
            connector,
            direction: c.direction,
            objects,
            region: c.region.clone().or_else(|| cfg.region.clone()),
        });
    }
    Ok(Engine::new(
        store,
        cfg.name.clone(),
        connections,
        cfg.merge.policy(),
        cfg.deletes.clone(),
    ))
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
    let bar = progress_bar();
    let opts = RunOptions {
        full_refresh,
        dry_run,
        progress: bar.as_ref().map(|(_, cb)| cb.clone()),
        // A complete read also finds records deleted at the source.
        reconcile_deletes: full_refresh,
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
    let loaded = pipeline::load(path)?;
    let store = open_store(db).await?;
    let engine = build_engine(store, &loaded)?;
    let every = loaded
        .config
        .schedule
        .as_ref()
        .map(|s| Duration::from_secs(s.every_seconds));
    let mut full_refresh = full_refresh;
    loop {
        let report = run_engine(&engine, full_refresh, dry_run).await?;
        match format {
            Some(ReportFormat::Json) => println!("{}", serde_json::to_string(&report)?),
            None => print!("{}", report.to_table()),
        }
        let failed = !report.errors.is_empty();
        match every {
            Some(every) if !once && !dry_run => {
                full_refresh = false;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
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

async fn status(db: &str) -> anyhow::Result<ExitCode> {
    let store = open_store(db).await?;
    println!("database: {}", store.display_url());
    println!("\nCRM records:");
    for (kind, n) in store.record_counts().await? {
        println!("  {kind:<10} {n}");
    }
    println!("\nidentity links:");
    for (conn, object, n) in store.link_counts().await? {
        println!("  {conn}.{object:<10} {n}");
    }
    println!("\nstream cursors:");
    for (conn, object, cursor, seq, at) in store.cursors().await? {
        println!(
            "  {conn}.{object} page {seq} at {at}: {}",
            cursor.unwrap_or_else(|| "-".into())
        );
    }
    println!("\noutbox:");
    for (conn, pending, failing) in store.outbox_summary().await? {
        println!("  {conn}: {pending} pending, {failing} failing");
    }
    let dead = store.dead_letter_count().await?;
    println!("\ndead letters: {dead}");
    for d in store.dead_letters(5).await? {
        println!(
            "  {}.{} {}: {}",
            d.connection,
            d.object,
            d.location.or(d.external_id).unwrap_or_default(),
            d.reason
        );
    }
    let open = store.conflicts(false).await?;
    println!("\nopen conflicts: {} (synchub conflicts list)", open.len());
    if let Some((name, started, _, report)) = store.recent_runs(1).await?.into_iter().next() {
        println!("\nlast run: {name} at {started}\n  {report}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn conflicts(db: &str, action: ConflictAction) -> anyhow::Result<ExitCode> {
    let store = open_store(db).await?;
    match action {
        ConflictAction::List { all } => {
            let list = store.conflicts(all).await?;
            if list.is_empty() {
                println!("no {}conflicts", if all { "" } else { "open " });
            }
            for c in list {
                let d = &c.detail;
                println!(
                    "{:>5}  {:<8} {} {}.{}  local={} remote={}",
                    c.id, c.status, d.crm_id, d.object, d.field, d.local, d.remote
                );
            }
        }
        ConflictAction::Show { id } => {
            let c = store
                .conflict(id)
                .await?
                .ok_or_else(|| anyhow!("no conflict with id {id}"))?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        ConflictAction::Resolve { id, take } => {
            let c = store
                .conflict(id)
                .await?
                .ok_or_else(|| anyhow!("no conflict with id {id}"))?;
            if c.status != "open" {
                bail!("conflict {id} is already {}", c.status);
            }
            let chosen: serde_json::Value = match take.as_str() {
                "local" => serde_json::from_str(&c.detail.local)?,
                "remote" => serde_json::from_str(&c.detail.remote)?,
                other => serde_json::from_str(other)
                    .unwrap_or_else(|_| serde_json::Value::String(other.into())),
            };
            let version = synchub_engine::local::resolve_conflict(&store, &c, chosen.clone())
                .await
                .with_context(|| format!("cannot resolve conflict {id}"))?;
            println!(
                "conflict {id} resolved: {}.{} = {chosen} (record version {version}); linked systems get it on the next run",
                c.detail.crm_id, c.detail.field
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
