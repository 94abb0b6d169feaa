//! The probabilistic tier after a migration, and the review queue.
//!
//! The engine merges exact duplicates as it imports (same normalized email;
//! same E.164 phone with a compatible name). After the import, every live
//! CRM contact goes through the Fellegi–Sunter matcher of `synchub-identity`
//! (blocking, EM-fitted weights, guarded clustering): clusters above the
//! auto-merge threshold are merged through the engine (golden record by
//! survivorship rules, merge history, undoable), pairs between the two
//! thresholds are queued with their score and per-field evidence for
//! `synchub review`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use rayon::prelude::*;
use serde_json::json;
use synchub_core::merge::survivorship::SurvivorshipRules;
use synchub_core::{ObjectKind, Record};
use synchub_engine::Engine;
use synchub_identity::matcher::prepare::Prepared;
use synchub_identity::matcher::{resolve_prepared, Decision, MatchConfig};
use synchub_store::match_pass::{self, PassPlan, PassState, PassStep};
use synchub_store::reviews::{self, NewReview};
use synchub_store::Store;

use crate::cli::ReviewAction;
use crate::commands::open_store;

/// What the probabilistic pass did.
#[derive(Debug, Default)]
pub struct FuzzySummary {
    pub contacts: usize,
    pub candidate_pairs: usize,
    pub merged: usize,
    pub queued: u64,
}

/// Planned merges applied (and committed with the pass's cursor) per
/// transaction.
const MERGE_BATCH: usize = 50;

/// The probabilistic pass of migration `name`, crash-safe: the matcher's
/// decisions (merges in order, review pairs) are stored before any is
/// applied, then applied in committed batches with the pass's own cursor.
/// A pass left unfinished by a killed process is finished from its cursor
/// exactly as planned (deciding again on a half-merged store would merge
/// differently). With `resume`, a pass already finished on this very import
/// (same stream cursors) is not run again.
pub async fn fuzzy_pass(
    engine: &Engine,
    store: &Store,
    region: Option<String>,
    name: &str,
    resume: bool,
) -> anyhow::Result<FuzzySummary> {
    let mark = import_mark(engine, store).await?;
    let state = match store.match_pass(name).await? {
        Some(s) if !s.finished => {
            tracing::info!(
                pass = name,
                applied = s.applied,
                steps = s.steps,
                "finishing an interrupted matching pass"
            );
            s
        }
        Some(s) if resume && s.mark == mark => return Ok(summary_of(&s)),
        _ => {
            let plan = decide(store, region, name, mark).await?;
            store.start_match_pass(&plan).await?;
            store
                .match_pass(name)
                .await?
                .ok_or_else(|| anyhow!("matching pass `{name}` vanished after it was stored"))?
        }
    };
    apply_plan(engine, store, &state).await?;
    let done = store
        .match_pass(name)
        .await?
        .ok_or_else(|| anyhow!("matching pass `{name}` vanished while it was applied"))?;
    Ok(summary_of(&done))
}

fn summary_of(s: &PassState) -> FuzzySummary {
    FuzzySummary {
        contacts: usize::try_from(s.contacts).unwrap_or_default(),
        candidate_pairs: usize::try_from(s.candidate_pairs).unwrap_or_default(),
        merged: usize::try_from(s.steps).unwrap_or_default(),
        queued: s
            .queued
            .and_then(|q| u64::try_from(q).ok())
            .unwrap_or_default(),
    }
}

/// The import state a pass decides on: every stream cursor of the engine.
async fn import_mark(engine: &Engine, store: &Store) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for conn in engine.connections() {
        for object in &conn.objects {
            let cursor = store
                .cursor(&conn.name, *object)
                .await?
                .and_then(|c| c.cursor)
                .map(|c| c.0.to_string())
                .unwrap_or_default();
            parts.push(json!([conn.name, object.as_str(), cursor]));
        }
    }
    Ok(serde_json::Value::Array(parts).to_string())
}

/// Applies the planned merges from the pass's cursor on, a batch per
/// transaction, then queues the review pairs and marks the pass finished.
async fn apply_plan(engine: &Engine, store: &Store, state: &PassState) -> anyhow::Result<()> {
    let rules = SurvivorshipRules::default();
    let name = state.name.as_str();
    let mut applied = state.applied;
    while applied < state.steps {
        let batch = store
            .match_pass_steps(name, applied, MERGE_BATCH as i64)
            .await?;
        if batch.is_empty() {
            bail!(
                "matching pass `{name}`: {} merges planned, only {applied} stored",
                state.steps
            );
        }
        let mut tx = store.begin().await?;
        for step in &batch {
            let evidence: serde_json::Value = serde_json::from_str(&step.evidence)?;
            engine
                .merge_contacts_in(&mut tx, &step.survivor, &step.loser, evidence, &rules)
                .await?;
        }
        let to = applied + batch.len() as i64;
        if !match_pass::advance(&mut tx, name, applied, to).await? {
            bail!("matching pass `{name}` was moved by another process; run the migration again with --resume");
        }
        tx.commit().await?;
        applied = to;
    }
    if state.queued.is_none() {
        let reviews = store.match_pass_reviews(name).await?;
        let mut tx = store.begin().await?;
        let queued = reviews::queue(&mut tx, &reviews).await?;
        match_pass::finish(&mut tx, name, i64::try_from(queued).unwrap_or(i64::MAX)).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Runs the matcher over every live contact: the merges of clusters above
/// the auto-merge threshold, in order, and the review band.
async fn decide(
    store: &Store,
    region: Option<String>,
    name: &str,
    mark: String,
) -> anyhow::Result<PassPlan> {
    // Page through the live contacts, keeping only what matching needs:
    // the id, how complete the record is, and its prepared comparison form.
    let mut ids: Vec<String> = Vec::new();
    let mut filled: Vec<usize> = Vec::new();
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .live_records_after(ObjectKind::Contact, after.as_deref(), 10_000)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        let region = region.clone();
        let batch = tokio::task::spawn_blocking(move || {
            page.into_par_iter()
                .filter_map(|r| {
                    let filled = r
                        .record
                        .to_fields()
                        .values()
                        .filter(|v| !v.is_null())
                        .count();
                    match r.record {
                        Record::Contact(c) => {
                            Some((r.id, filled, Prepared::new(&c, region.as_deref())))
                        }
                        _ => None,
                    }
                })
                .collect::<Vec<_>>()
        })
        .await?;
        for (id, n, p) in batch {
            ids.push(id);
            filled.push(n);
            prepared.push(p);
        }
    }
    let mut plan = PassPlan {
        name: name.to_string(),
        mark,
        contacts: ids.len() as i64,
        candidate_pairs: 0,
        steps: Vec::new(),
        reviews: Vec::new(),
    };
    if ids.len() < 2 {
        return Ok(plan);
    }
    let cfg = MatchConfig {
        default_region: region,
        ..MatchConfig::default()
    };
    let resolution = tokio::task::spawn_blocking(move || resolve_prepared(&prepared, &cfg)).await?;
    plan.candidate_pairs = resolution.candidate_pairs as i64;

    // Clusters: the most complete record survives (ties: the smaller id).
    let mut clusters: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, label) in resolution.labels.iter().enumerate() {
        clusters.entry(*label).or_default().push(i);
    }
    for members in clusters.values().filter(|m| m.len() > 1) {
        let Some(&survivor) = members
            .iter()
            .max_by(|a, b| filled[**a].cmp(&filled[**b]).then(ids[**b].cmp(&ids[**a])))
        else {
            continue;
        };
        for &loser in members.iter().filter(|m| **m != survivor) {
            let evidence: Vec<_> = resolution
                .pairs
                .iter()
                .filter(|p| {
                    let (a, b) = (p.a as usize, p.b as usize);
                    (a == loser || b == loser) && members.contains(&a) && members.contains(&b)
                })
                .map(|p| resolution.evidence(p))
                .collect();
            let evidence = json!({ "tier": "probabilistic", "pairs": evidence });
            plan.steps.push(PassStep {
                survivor: ids[survivor].clone(),
                loser: ids[loser].clone(),
                evidence: evidence.to_string(),
            });
        }
    }

    // The review band, except pairs the clustering already joined.
    plan.reviews = resolution
        .pairs
        .iter()
        .filter(|p| resolution.decision(p.score) == Decision::Review)
        .filter(|p| resolution.labels[p.a as usize] != resolution.labels[p.b as usize])
        .map(|p| {
            let e = resolution.evidence(p);
            NewReview {
                left_id: ids[p.a as usize].clone(),
                right_id: ids[p.b as usize].clone(),
                score: e.score,
                probability: e.probability,
                evidence: serde_json::to_string(&e.fields).unwrap_or_default(),
            }
        })
        .collect();
    Ok(plan)
}

/// `synchub review list|show|merge|keep-apart`.
pub async fn command(db: &str, action: ReviewAction) -> anyhow::Result<ExitCode> {
    let store = open_store(db).await?;
    match action {
        ReviewAction::List { all } => {
            let items = store.reviews(all).await?;
            if items.is_empty() {
                println!("no {}pairs to review", if all { "" } else { "open " });
            }
            for r in items {
                println!(
                    "#{:<6} p={:.3} score={:>6.2} {} ↔ {} [{}]  {}  |  {}",
                    r.id,
                    r.probability,
                    r.score,
                    r.left_id,
                    r.right_id,
                    r.status,
                    label(&store, &r.left_id).await,
                    label(&store, &r.right_id).await
                );
            }
        }
        ReviewAction::Show { id } => {
            let r = store
                .review(id)
                .await?
                .ok_or_else(|| anyhow!("no review #{id}; `synchub review list` shows the queue"))?;
            println!(
                "review #{} ({}): match probability {:.3}, weight {:.2}",
                r.id, r.status, r.probability, r.score
            );
            for side in [&r.left_id, &r.right_id] {
                let rec = store.record(side).await?;
                println!(
                    "  {side}: {}",
                    rec.map(|r| serde_json::to_string(&r.record).unwrap_or_default())
                        .unwrap_or_else(|| "(gone)".into())
                );
            }
            println!("  evidence (field: level, weight):");
            let fields: serde_json::Value = serde_json::from_str(&r.evidence)?;
            for f in fields.as_array().into_iter().flatten() {
                println!(
                    "    {}: {} ({:+.2})",
                    f["field"].as_str().unwrap_or("?"),
                    f["level"].as_str().unwrap_or("?"),
                    f["weight"].as_f64().unwrap_or(0.0)
                );
            }
        }
        ReviewAction::Merge { id } => {
            let r = open_review(&store, id).await?;
            let engine = Engine::new(
                store.clone(),
                String::from("review"),
                Vec::new(),
                Default::default(),
                Default::default(),
            );
            let evidence = json!({ "tier": "review", "review": id, "probability": r.probability });
            engine
                .merge_contacts(
                    &r.left_id,
                    &r.right_id,
                    evidence,
                    &SurvivorshipRules::default(),
                )
                .await?;
            store.decide_review(id, "merged").await?;
            println!(
                "merged {} into {} (undo with the merge history); the golden record is queued for every linked system on the next run",
                r.right_id, r.left_id
            );
        }
        ReviewAction::KeepApart { id } => {
            open_review(&store, id).await?;
            store.decide_review(id, "kept_apart").await?;
            println!("review #{id}: kept apart; the pair will not be queued again");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn open_review(store: &Store, id: i64) -> anyhow::Result<synchub_store::reviews::Review> {
    let r = store
        .review(id)
        .await?
        .ok_or_else(|| anyhow!("no review #{id}; `synchub review list` shows the queue"))?;
    if r.status != "open" {
        bail!("review #{id} is already decided ({})", r.status);
    }
    Ok(r)
}

async fn label(store: &Store, id: &str) -> String {
    match store.record(id).await {
        Ok(Some(r)) => match r.record {
            Record::Contact(c) => {
                let name = c
                    .full_name
                    .clone()
                    .or_else(|| {
                        let n = format!(
                            "{} {}",
                            c.given_name.clone().unwrap_or_default(),
                            c.family_name.clone().unwrap_or_default()
                        );
                        (!n.trim().is_empty()).then(|| n.trim().to_string())
                    })
                    .unwrap_or_default();
                let email = c.emails.first().cloned().unwrap_or_default();
                format!("{name} {email}").trim().to_string()
            }
            _ => String::new(),
        },
        _ => "(gone)".into(),
    }
}
