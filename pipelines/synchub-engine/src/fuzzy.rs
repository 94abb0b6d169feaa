//! The probabilistic tier after a migration.
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

use rayon::prelude::*;
use serde_json::json;
use synchub_core::merge::survivorship::SurvivorshipRules;
use synchub_core::{ObjectKind, Record};
use synchub_identity::matcher::prepare::Prepared;
use synchub_identity::matcher::{resolve_prepared, Decision, MatchConfig};
use synchub_store::match_pass::{self, PassPlan, PassState, PassStep};
use synchub_store::reviews::{self, NewReview};
use synchub_store::{Store, StoreError};

use crate::{Engine, EngineError};

/// A failure of the pass that is neither the store's nor a merge's.
fn pass_error(name: &str, message: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("matching pass `{name}`: {message}"))
}

/// What the probabilistic pass did.
#[derive(Debug, Default)]
pub struct FuzzySummary {
    /// Live contacts compared.
    pub contacts: usize,
    /// Candidate pairs the blocking produced.
    pub candidate_pairs: usize,
    /// Merges applied.
    pub merged: usize,
    /// Pairs queued for review.
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
) -> Result<FuzzySummary, EngineError> {
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
                .ok_or_else(|| pass_error(name, "vanished after it was stored"))?
        }
    };
    apply_plan(engine, store, &state).await?;
    let done = store
        .match_pass(name)
        .await?
        .ok_or_else(|| pass_error(name, "vanished while it was applied"))?;
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
async fn import_mark(engine: &Engine, store: &Store) -> Result<String, EngineError> {
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
async fn apply_plan(engine: &Engine, store: &Store, state: &PassState) -> Result<(), EngineError> {
    let rules = SurvivorshipRules::default();
    let name = state.name.as_str();
    let mut applied = state.applied;
    while applied < state.steps {
        let batch = store
            .match_pass_steps(name, applied, MERGE_BATCH as i64)
            .await?;
        if batch.is_empty() {
            return Err(pass_error(
                name,
                format!("{} merges planned, only {applied} stored", state.steps),
            ));
        }
        let mut tx = store.begin().await?;
        for step in &batch {
            let evidence: serde_json::Value =
                serde_json::from_str(&step.evidence).map_err(|e| {
                    pass_error(
                        name,
                        format!("step {}: stored evidence is not JSON: {e}", step.loser),
                    )
                })?;
            engine
                .merge_contacts_in(&mut tx, &step.survivor, &step.loser, evidence, &rules)
                .await?;
        }
        let to = applied + batch.len() as i64;
        if !match_pass::advance(&mut tx, name, applied, to).await? {
            return Err(pass_error(
                name,
                "moved by another process; run the migration again with --resume",
            ));
        }
        tx.commit().await.map_err(|e| StoreError::Query {
            context: "committing a matching pass batch",
            source: e,
        })?;
        applied = to;
    }
    if state.queued.is_none() {
        let reviews = store.match_pass_reviews(name).await?;
        let mut tx = store.begin().await?;
        let queued = reviews::queue(&mut tx, &reviews).await?;
        match_pass::finish(&mut tx, name, i64::try_from(queued).unwrap_or(i64::MAX)).await?;
        tx.commit().await.map_err(|e| StoreError::Query {
            context: "committing a matching pass batch",
            source: e,
        })?;
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
) -> Result<PassPlan, EngineError> {
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
        .await
        .map_err(|e| pass_error(name, format!("preparing contacts failed: {e}")))?;
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
    let resolution = tokio::task::spawn_blocking(move || resolve_prepared(&prepared, &cfg))
        .await
        .map_err(|e| pass_error(name, format!("the matcher failed: {e}")))?;
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

/// Per-pull matching (`synchub run`): a contact arriving through a pull that
/// no identity link and no exact key places is compared with the existing
/// contacts it shares a fuzzy key with (name, birth date, address parts;
/// [`synchub_identity::matcher::single::fuzzy_keys`]) or an exact key whose
/// name did not agree. At or above the auto-merge probability it is merged
/// into the best candidate; in the review band it is created and the pair is
/// queued for review; both inside the page's transaction.
pub mod pull {
    use serde::Serialize;
    use sqlx::Row;
    use synchub_core::model::Contact;
    use synchub_identity::matcher::model::FsModel;
    use synchub_identity::matcher::single::{fuzzy_keys, pull_model, PairScorer};
    use synchub_identity::matcher::{Decision, MatchConfig, MatchEvidence};
    use synchub_store::reviews::NewReview;
    use synchub_store::{StoreError, Tx};

    /// The matcher a page's pulls are scored with, and what the run reports of it.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct PullMatcher {
        /// Live contacts in the store when the page was applied (sets the prior).
        pub existing_contacts: u64,
        /// The model: m and u per field and level, and the prior (log2 odds
        /// that an incoming record is a given existing contact).
        pub model: FsModel,
        /// Match probability at or above which an incoming contact merges.
        pub auto_merge_threshold: f64,
        /// Match probability at or above which the pair is queued for review.
        pub review_threshold: f64,
    }

    impl PullMatcher {
        /// The matcher for a store holding `existing` live contacts.
        pub fn new(existing: u64, region: Option<&str>) -> Self {
            let cfg = MatchConfig {
                default_region: region.map(str::to_string),
                ..MatchConfig::default()
            };
            PullMatcher {
                existing_contacts: existing,
                model: pull_model(existing),
                auto_merge_threshold: cfg.auto_merge,
                review_threshold: cfg.review,
            }
        }

        fn scorer(&self, region: Option<&str>) -> PairScorer {
            let cfg = MatchConfig {
                default_region: region.map(str::to_string),
                auto_merge: self.auto_merge_threshold,
                review: self.review_threshold,
                ..MatchConfig::default()
            };
            PairScorer::new(self.model.clone(), &cfg)
        }

        /// The decision for `incoming` against `candidates` (CRM id and
        /// contact): the strongest candidate that merges or goes to review.
        pub fn decide(
            &self,
            incoming: &Contact,
            candidates: &[(String, Contact)],
            region: Option<&str>,
        ) -> Option<(String, MatchEvidence)> {
            if candidates.is_empty() {
                return None;
            }
            let contacts: Vec<Contact> = candidates.iter().map(|(_, c)| c.clone()).collect();
            let decisions = self.scorer(region).decide(incoming, &contacts);
            let best = decisions.into_iter().next()?;
            Some((candidates[best.candidate].0.clone(), best.evidence))
        }
    }

    /// The keys a contact is stored under: the exact keys and the fuzzy ones.
    pub fn stored_keys(c: &Contact, region: Option<&str>) -> Vec<String> {
        let mut keys = synchub_identity::match_keys(c, region);
        keys.extend(fuzzy_keys(c, region));
        keys
    }

    /// The fuzzy keys of an incoming contact.
    pub fn keys(c: &Contact, region: Option<&str>) -> Vec<String> {
        fuzzy_keys(c, region)
    }

    /// Live contacts in the store, read in the page's transaction.
    pub async fn live_contacts(tx: &mut Tx) -> Result<u64, StoreError> {
        // `fetch_all`: the statement runs to its end and is reset, so a run
        // dropped here (a killed process) leaves no read lock behind.
        let rows = sqlx::query(
            "SELECT COUNT(*) AS n FROM crm_record WHERE kind = 'contact' AND deleted = 0 \
             AND merged_into IS NULL",
        )
        .fetch_all(&mut **tx)
        .await
        .map_err(|source| StoreError::Query {
            context: "counting contacts for the pull matcher",
            source,
        })?;
        let mut n: i64 = 0;
        for row in rows {
            n = row.try_get("n").map_err(|source| StoreError::Query {
                context: "counting contacts for the pull matcher",
                source,
            })?;
        }
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// A review row for a new contact and the existing one it may duplicate.
    pub fn review(new_id: &str, existing: &str, e: &MatchEvidence) -> NewReview {
        NewReview {
            left_id: new_id.to_string(),
            right_id: existing.to_string(),
            score: e.score,
            probability: e.probability,
            evidence: serde_json::to_string(&e.fields).unwrap_or_default(),
        }
    }

    /// True when the evidence says merge.
    pub fn merges(e: &MatchEvidence) -> bool {
        e.decision == Decision::AutoMerge
    }
}
