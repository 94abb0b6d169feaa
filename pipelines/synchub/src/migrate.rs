//! `synchub migrate` (a legacy source run through the engine: identity map,
//! dedup, dead letters, page transactions, exact resume) and `synchub dedupe`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use synchub_core::merge::MergePolicy;
use synchub_core::ObjectKind;
use synchub_engine::{Connection, Direction, Engine, RunOptions};
use synchub_identity::dedupe::{dedupe_csv, DedupeInput, DedupeOptions};
use synchub_legacy::{EncodingChoice, LegacyOptions};

use crate::cli::Encoding;
use crate::commands::open_store;

/// The options of `synchub migrate`.
pub struct MigrateArgs {
    pub dry_run: bool,
    pub resume: bool,
    pub map: Option<PathBuf>,
    pub encoding: Encoding,
    pub page_size: u64,
}

pub async fn run(
    db: &str,
    kind: &str,
    path_or_url: &str,
    args: MigrateArgs,
) -> anyhow::Result<ExitCode> {
    let MigrateArgs {
        dry_run,
        resume,
        map,
        encoding,
        page_size,
    } = args;
    let encoding = match encoding {
        Encoding::Auto => EncodingChoice::Auto,
        Encoding::Utf8 => EncodingChoice::Utf8,
        Encoding::Big5 => EncodingChoice::Big5,
        Encoding::Gbk => EncodingChoice::Gbk,
        Encoding::Utf16 => EncodingChoice::Utf16,
    };
    let opts = LegacyOptions {
        encoding,
        map_file: map,
        page_size: usize::try_from(page_size).unwrap_or(1000),
        ..LegacyOptions::default()
    };
    let connector: Arc<dyn synchub_core::Connector> =
        Arc::from(synchub_legacy::build(kind, path_or_url, opts)?);
    connector.check().await?;
    let store = open_store(db).await?;
    let name = format!("migrate_{}", kind.to_ascii_lowercase());
    let objects: Vec<ObjectKind> = connector
        .objects()
        .iter()
        .filter(|s| s.can_read)
        .map(|s| s.kind)
        .collect();
    let progress = MigrationProgress::start(&store, &name, &*connector, &objects, resume).await;
    let connection = Connection {
        name: name.clone(),
        connector,
        direction: Direction::Pull,
        objects,
        region: None,
    };
    let engine = Engine::new(
        store.clone(),
        format!("migrate-{kind}"),
        vec![connection],
        MergePolicy::default(),
        Default::default(),
    );
    // A plain run reads everything (and changes nothing already imported);
    // --resume continues from the last committed page of an interrupted run.
    let run_opts = RunOptions {
        full_refresh: !resume,
        dry_run,
        progress: progress.as_ref().map(|p| p.callback()),
        // A one-shot import: a row missing from a later export is not a delete.
        reconcile_deletes: false,
        ..RunOptions::default()
    };
    let report = engine.run(&run_opts).await;
    if let Some(p) = progress {
        p.finish();
    }
    let report = report?;
    let t = report.total();
    println!(
        "{}migration from {kind} ({})",
        if dry_run { "dry run: " } else { "" },
        synchub_store::redact_url(path_or_url)
    );
    print!("{}", report.to_table());
    println!(
        "read {} rows: {} new records, {} duplicates merged into existing contacts, {} already imported, {} invalid",
        t.read, t.created, t.merged, t.unchanged, t.dead_lettered
    );
    if t.dead_lettered > 0 {
        println!(
            "invalid rows ({}):",
            if dry_run {
                "a real run keeps each as a dead letter with its payload"
            } else {
                "kept as dead letters with their payload; `synchub status` lists them"
            }
        );
        let mut shown = 0;
        for (stream, s) in &report.streams {
            for item in &s.invalid {
                println!("  {stream} {}: {}", item.location, item.reason);
                shown += 1;
            }
        }
        if (shown as u64) < t.dead_lettered {
            println!("  … and {} more", t.dead_lettered - shown as u64);
        }
    }
    if dry_run {
        println!("nothing was written (--dry-run)");
    } else if report.errors.is_empty() {
        let started = std::time::Instant::now();
        let fuzzy = crate::review::fuzzy_pass(&engine, &store, None, &name, resume).await?;
        println!(
            "probabilistic matching over {} contacts ({} candidate pairs, {:.1} s): {} merged as the same person, {} new pairs queued for review (`synchub review list`)",
            fuzzy.contacts,
            fuzzy.candidate_pairs,
            started.elapsed().as_secs_f64(),
            fuzzy.merged,
            fuzzy.queued
        );
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Rows, rate and ETA on a terminal (nothing when stderr is not one).
struct MigrationProgress {
    bar: indicatif::ProgressBar,
    /// Rows read per stream in this run, and rows committed before it.
    done: Arc<Mutex<(HashMap<String, u64>, u64)>>,
}

impl MigrationProgress {
    async fn start(
        store: &synchub_store::Store,
        name: &str,
        connector: &dyn synchub_core::Connector,
        objects: &[ObjectKind],
        resume: bool,
    ) -> Option<MigrationProgress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let mut total = Some(0u64);
        let mut before = 0u64;
        for object in objects {
            total = match (total, connector.estimate(*object).await) {
                (Some(t), Some(n)) => Some(t + n),
                _ => None,
            };
            if resume {
                // Rows committed by the interrupted run (file cursors carry them).
                if let Ok(Some(Some(c))) = store
                    .cursor(name, *object)
                    .await
                    .map(|c| c.map(|c| c.cursor))
                {
                    before += c.0.get("row").and_then(|v| v.as_u64()).unwrap_or(0);
                }
            }
        }
        let (bar, template) = match total {
            Some(len) => (
                indicatif::ProgressBar::new(len),
                "{bar:30} {human_pos}/~{human_len} rows  {per_sec}  ETA {eta}  {msg}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{spinner} {human_pos} rows  {per_sec}  {elapsed}  {msg}",
            ),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(before);
        bar.reset_eta();
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(MigrationProgress {
            bar,
            done: Arc::new(Mutex::new((HashMap::new(), before))),
        })
    }

    fn callback(&self) -> synchub_engine::Progress {
        let bar = self.bar.clone();
        let done = self.done.clone();
        Arc::new(move |stream: &str, read: u64| {
            let Ok(mut d) = done.lock() else { return };
            d.0.insert(stream.to_string(), read);
            let sum: u64 = d.0.values().sum::<u64>() + d.1;
            bar.set_position(sum);
            bar.set_message(stream.to_string());
        })
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

pub async fn dedupe(
    inputs: Vec<PathBuf>,
    sources: Vec<String>,
    maps: Vec<String>,
    region: Option<String>,
    output: PathBuf,
) -> anyhow::Result<ExitCode> {
    if sources.len() > inputs.len() {
        return Err(anyhow!(
            "{} --source labels for {} --input files",
            sources.len(),
            inputs.len()
        ));
    }
    let inputs = inputs
        .into_iter()
        .enumerate()
        .map(|(i, path)| DedupeInput {
            path,
            source: sources.get(i).cloned(),
        })
        .collect();
    let opts = DedupeOptions {
        inputs,
        map: maps,
        region,
        output: output.clone(),
        ..DedupeOptions::default()
    };
    let summary = tokio::task::spawn_blocking(move || dedupe_csv(&opts)).await??;
    println!(
        "{} rows → {} people ({} rows share a cluster); {} candidate pairs scored, {} in the review band",
        summary.rows, summary.clusters, summary.rows_in_merged_clusters, summary.candidate_pairs, summary.review_pairs
    );
    for bad in &summary.bad_rows {
        println!(
            "  bad row: {} row {}: {}",
            bad.file.display(),
            bad.row,
            bad.reason
        );
    }
    println!("clusters written to {}", output.display());
    Ok(ExitCode::SUCCESS)
}
