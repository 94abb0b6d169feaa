//! `synchub migrate` (a legacy source run through the engine: identity map,
//! dedup, dead letters, page transactions, exact resume) and `synchub dedupe`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
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

mod scratch;

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
    // Phones without a country code take the mapping's default region
    // (a `--map` file's `default_region` included) in the engine too.
    let region = synchub_legacy::mapping_for(kind, &opts)?.default_region;
    let inner: Arc<dyn synchub_core::Connector> =
        Arc::from(synchub_legacy::build(kind, path_or_url, opts)?);
    inner.check().await?;
    let counting = Arc::new(CountDeleted {
        inner,
        deleted: AtomicU64::new(0),
    });
    let connector: Arc<dyn synchub_core::Connector> = counting.clone();
    // A dry run is a real run on a throwaway copy of the store (a copied
    // SQLite file, a PostgreSQL database cloned from it; nothing is created
    // or written at `db`), so every count, merge and invalid row it shows is
    // exactly what the real run does. Only an in-memory store falls back to
    // the engine's page-by-page rollback. The clone is taken before this
    // process holds any session on the store (PostgreSQL needs none).
    let scratch = if dry_run {
        scratch::Scratch::of(db).await?
    } else {
        None
    };
    let store_url = scratch.as_ref().map_or(db, |s| s.url()).to_string();
    let engine_dry_run = dry_run && scratch.is_none();
    // The copy is removed whether the run succeeds or fails.
    let outcome = async {
    let store = open_store(&store_url).await?;
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
        region: region.clone(),
    };
    let engine = Engine::new(
        store.clone(),
        format!("migrate-{kind}"),
        vec![connection],
        MergePolicy::default(),
        Default::default(),
    )
    .without_pull_matching();
    // A plain run reads everything (and changes nothing already imported);
    // --resume continues from the last committed page of an interrupted run.
    let run_opts = RunOptions {
        full_refresh: !resume,
        dry_run: engine_dry_run,
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
    // Soft-deleted source rows never linked are counted "unchanged" by the
    // engine: they are reported as what they are.
    let soft_deleted = counting
        .deleted
        .load(Ordering::Relaxed)
        .saturating_sub(t.deleted)
        .min(t.unchanged);
    println!(
        "read {} rows: {} new records, {} duplicates merged into existing contacts, {} already imported, {} soft-deleted in the source (not imported), {} invalid",
        t.read,
        t.created,
        t.merged,
        t.unchanged - soft_deleted,
        soft_deleted,
        t.dead_lettered
    );
    if t.deleted > 0 {
        println!(
            "{} imported records were deleted in the source since: marked deleted",
            t.deleted
        );
    }
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
    if engine_dry_run {
        println!("nothing was written (--dry-run); on an in-memory store every page is rolled back, so duplicates across pages are counted as new");
    } else if report.errors.is_empty() {
        let leads = merge_converted_leads(&engine, &store, &name).await?;
        println!(
            "converted leads: {} merged with the contact they were converted to, {} already one record, {} name a contact the export does not hold",
            leads.merged, leads.already, leads.missing
        );
        let started = std::time::Instant::now();
        let fuzzy = synchub_engine::fuzzy::fuzzy_pass(&engine, &store, region, &name, resume).await?;
        println!(
            "probabilistic matching over {} contacts ({} candidate pairs, {:.1} s): {} merged as the same person, {} new pairs queued for review (`synchub review list`)",
            fuzzy.contacts,
            fuzzy.candidate_pairs,
            started.elapsed().as_secs_f64(),
            fuzzy.merged,
            fuzzy.queued
        );
        if dry_run {
            println!("nothing was written (--dry-run); the counts above come from a run on a temporary copy of the store");
        }
    }
    store.close().await;
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
    }
    .await;
    if let Some(scratch) = scratch {
        scratch.remove().await;
    }
    outcome
}

/// The legacy source, counting the soft-deleted rows it hands out.
struct CountDeleted {
    inner: Arc<dyn synchub_core::Connector>,
    deleted: AtomicU64,
}

#[async_trait::async_trait]
impl synchub_core::Connector for CountDeleted {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn objects(&self) -> Vec<synchub_core::ObjectSpec> {
        self.inner.objects()
    }

    async fn check(&self) -> Result<(), synchub_core::ConnectorError> {
        self.inner.check().await
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&synchub_core::Cursor>,
    ) -> Result<synchub_core::Page, synchub_core::ConnectorError> {
        let page = self.inner.pull(object, from).await?;
        let deleted = page.records.iter().filter(|r| r.deleted).count() as u64;
        self.deleted.fetch_add(deleted, Ordering::Relaxed);
        Ok(page)
    }

    async fn estimate(&self, object: ObjectKind) -> Option<u64> {
        self.inner.estimate(object).await
    }
}

/// The record `crm_id` was merged into, following merge pointers.
async fn surviving(store: &synchub_store::Store, crm_id: &str) -> anyhow::Result<String> {
    let mut id = crm_id.to_string();
    for _ in 0..16 {
        match store.record(&id).await?.and_then(|r| r.merged_into) {
            Some(next) => id = next,
            None => break,
        }
    }
    Ok(id)
}

/// What the converted-lead pass did.
#[derive(Debug, Default)]
struct LeadMerges {
    merged: u64,
    already: u64,
    missing: u64,
}

/// Merges each converted lead into the contact it names
/// (`custom.converted_contact_id`: SuiteCRM `leads.contact_id`, Salesforce
/// `ConvertedContactId`): the legacy CRM itself says they are one person.
/// Read from the identity links' snapshots, so it also covers rows an
/// interrupted run committed, and a re-run finds them already merged.
async fn merge_converted_leads(
    engine: &Engine,
    store: &synchub_store::Store,
    connection: &str,
) -> anyhow::Result<LeadMerges> {
    use synchub_store::links;
    let mut out = LeadMerges::default();
    let ids = store
        .live_external_ids(connection, ObjectKind::Contact)
        .await?;
    let mut pairs: Vec<(String, String, String)> = Vec::new();
    for chunk in ids.chunks(5_000) {
        let mut tx = store.begin().await?;
        let found = links::by_external_ids(&mut tx, connection, ObjectKind::Contact, chunk).await?;
        drop(tx);
        for link in found.into_values() {
            let Some(target) = link
                .snapshot
                .as_ref()
                .and_then(|s| s.get("custom"))
                .and_then(|c| c.get("converted_contact_id"))
            else {
                continue;
            };
            let targets: Vec<String> = match target {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(list) => list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            for contact in targets.into_iter().filter(|t| !t.trim().is_empty()) {
                if contact != link.external_id {
                    pairs.push((link.external_id.clone(), contact, link.crm_id.clone()));
                }
            }
        }
    }
    pairs.sort();
    let rules = synchub_core::merge::survivorship::SurvivorshipRules::default();
    for (lead, contact, _) in &pairs {
        // Links move with merges: read both where they point now.
        let mut tx = store.begin().await?;
        let now = links::by_external_ids(
            &mut tx,
            connection,
            ObjectKind::Contact,
            &[lead.clone(), contact.clone()],
        )
        .await?;
        drop(tx);
        let (Some(c), Some(l)) = (now.get(contact), now.get(lead)) else {
            out.missing += 1;
            continue;
        };
        // A merge leaves a link of the same connection on the loser, which
        // points at the survivor: follow the pointers.
        let (contact_crm, lead_crm) = (
            surviving(store, &c.crm_id).await?,
            surviving(store, &l.crm_id).await?,
        );
        if contact_crm == lead_crm {
            out.already += 1;
            continue;
        }
        if c.deleted {
            out.missing += 1;
            continue;
        }
        let evidence = serde_json::json!({
            "tier": "converted lead",
            "connection": connection,
            "lead": lead,
            "contact": contact,
        });
        match engine
            .merge_contacts(&contact_crm, &lead_crm, evidence, &rules)
            .await
        {
            Ok(_) => out.merged += 1,
            Err(e) => {
                tracing::warn!(%lead, %contact, error = %e, "converted lead not merged");
                out.missing += 1;
            }
        }
    }
    Ok(out)
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
