//! `synchub migrate` (a legacy source run through the engine: identity map,
//! dedup, dead letters, page transactions, exact resume) and `synchub dedupe`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use synchub_core::merge::MergePolicy;
use synchub_engine::{Connection, Direction, Engine};
use synchub_identity::dedupe::{dedupe_csv, DedupeInput, DedupeOptions};
use synchub_legacy::{EncodingChoice, LegacyOptions};

use crate::cli::Encoding;
use crate::commands::{open_store, run_engine};

pub async fn run(
    db: &str,
    kind: &str,
    path_or_url: &str,
    dry_run: bool,
    resume: bool,
    map: Option<PathBuf>,
    encoding: Encoding,
) -> anyhow::Result<ExitCode> {
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
        ..LegacyOptions::default()
    };
    let connector: Arc<dyn synchub_core::Connector> =
        Arc::from(synchub_legacy::build(kind, path_or_url, opts)?);
    connector.check().await?;
    let store = open_store(db).await?;
    let name = format!("migrate_{}", kind.to_ascii_lowercase());
    let objects = connector
        .objects()
        .iter()
        .filter(|s| s.can_read)
        .map(|s| s.kind)
        .collect();
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
    let report = run_engine(&engine, !resume, dry_run).await?;
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
    if dry_run {
        println!("nothing was written (--dry-run)");
    } else if t.dead_lettered > 0 {
        println!("invalid rows (kept as dead letters with their payload):");
        for d in store
            .dead_letters(50)
            .await?
            .into_iter()
            .filter(|d| d.connection == name)
        {
            println!(
                "  {}: {}",
                d.location.or(d.external_id).unwrap_or_default(),
                d.reason
            );
        }
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
