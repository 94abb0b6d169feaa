//! One incoming contact against the existing contacts a store found for it:
//! the API for a sync pull (`synchub run`), where a fuzzy duplicate arriving
//! through a shop is merged (at or above the auto-merge threshold) or
//! queued for review (in the band) inside the page transaction, without a
//! full pass.
//!
//! The engine finds candidates with [`fuzzy_keys`] (store them per contact
//! and look up the incoming record's keys), then calls
//! [`PairScorer::decide`]. The model is one fitted by an earlier batch run
//! ([`super::Resolution::model`], serializable) or [`FsModel::defaults`].

use serde::Serialize;
use synchub_core::model::Contact;

use super::block::identity_keys;
use super::compare::compare;
use super::model::{probability, FsModel};
use super::prepare::Prepared;
use super::{is_conflict, score_pair, Decision, MatchConfig, MatchEvidence, ScoredPair};

/// Keys under which a contact can meet its fuzzy duplicates: the batch
/// matcher's blocking keys made from the name, the birth date and the
/// address ([`identity_keys`]), as text (`fuzzy:` and 16 hex digits). Email
/// and phone candidates come through the exact keys a store keeps anyway.
/// Stable for one version of this crate; recompute stored keys when it changes.
pub fn fuzzy_keys(contact: &Contact, default_region: Option<&str>) -> Vec<String> {
    identity_keys(&Prepared::new(contact, default_region))
        .into_iter()
        .map(|k| format!("{FUZZY_KEY_PREFIX}{k:016x}"))
        .collect()
}

/// Prefix of the keys [`fuzzy_keys`] returns.
pub const FUZZY_KEY_PREFIX: &str = "fuzzy:";

/// The model a sync pull scores with when no batch run has fitted one: the
/// textbook m and u of [`FsModel::defaults`] and the prior that an incoming
/// record is a given one of `existing` contacts (one in `existing`; at
/// least one in a thousand, so a small store does not merge on a name).
pub fn pull_model(existing: u64) -> FsModel {
    let mut model = FsModel::defaults(&rustc_hash::FxHashMap::default(), 1.0);
    model.prior = -(existing.max(1000) as f64).log2();
    model
}

/// The decision for one candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateDecision {
    /// Index into the candidates passed to [`PairScorer::decide`].
    pub candidate: usize,
    /// Evidence, decision and probability (`left` is the incoming record, 0;
    /// `right` the candidate index).
    pub evidence: MatchEvidence,
}

/// Scores pairs with a fixed model and thresholds.
#[derive(Debug, Clone)]
pub struct PairScorer {
    model: FsModel,
    region: Option<String>,
    auto_merge: f64,
    review: f64,
}

impl PairScorer {
    /// A scorer with a fitted model and the thresholds and region of `cfg`.
    pub fn new(model: FsModel, cfg: &MatchConfig) -> Self {
        PairScorer {
            model,
            region: cfg.default_region.clone(),
            auto_merge: cfg.auto_merge,
            review: cfg.review,
        }
    }

    /// Decide an incoming contact against candidates, strongest first; pairs
    /// kept apart are left out. When two candidates would both merge but
    /// disagree with each other (two different people), neither merges:
    /// both go to review, so a pull never chains two people through one row.
    pub fn decide(&self, incoming: &Contact, candidates: &[Contact]) -> Vec<CandidateDecision> {
        let region = self.region.as_deref();
        let a = Prepared::new(incoming, region);
        let prepared: Vec<Prepared> = candidates
            .iter()
            .map(|c| Prepared::new(c, region))
            .collect();
        let mut out: Vec<CandidateDecision> = prepared
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let c = compare(&a, b);
                let score = score_pair(&self.model, &c, None);
                let decision = self.decision(score);
                (decision != Decision::KeepApart).then(|| {
                    let pair = ScoredPair {
                        a: 0,
                        b: u32::try_from(i).unwrap_or(u32::MAX),
                        comparison: c,
                        score: score as f32,
                    };
                    CandidateDecision {
                        candidate: i,
                        evidence: MatchEvidence::new(&pair, &self.model, decision),
                    }
                })
            })
            .collect();
        out.sort_by(|x, y| y.evidence.score.total_cmp(&x.evidence.score));
        let merging: Vec<usize> = out
            .iter()
            .filter(|d| d.evidence.decision == Decision::AutoMerge)
            .map(|d| d.candidate)
            .collect();
        let split = merging.iter().enumerate().any(|(i, x)| {
            merging[i + 1..]
                .iter()
                .any(|y| is_conflict(&compare(&prepared[*x], &prepared[*y])))
        });
        if split {
            for d in &mut out {
                if d.evidence.decision == Decision::AutoMerge {
                    d.evidence.decision = Decision::Review;
                }
            }
        }
        out
    }

    fn decision(&self, score: f64) -> Decision {
        let p = probability(score);
        if p >= self.auto_merge {
            Decision::AutoMerge
        } else if p >= self.review {
            Decision::Review
        } else {
            Decision::KeepApart
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    fn contact(name: &str, email: &str, phone: &str) -> Contact {
        Contact {
            full_name: Some(name.into()),
            emails: vec![email.into()],
            phones: vec![phone.into()],
            ..Contact::default()
        }
    }

    fn scorer() -> PairScorer {
        let cfg = MatchConfig {
            default_region: Some("HK".into()),
            ..MatchConfig::default()
        };
        // Textbook weights with a prior of one duplicate per 10,000 pairs.
        let mut model = FsModel::defaults(&FxHashMap::default(), 1.0);
        model.prior = (1e-4f64).log2();
        PairScorer::new(model, &cfg)
    }

    #[test]
    fn a_shop_row_meets_its_contact_by_fuzzy_evidence() {
        // GIVEN an existing contact and a shop row with the name romanized, the email's
        // domain in capitals and the phone written another way
        let existing = vec![
            contact("陳大文", "taiman.chan@example.com", "9123 4567"),
            contact("Mary Wong", "mary@example.com", "6123 9876"),
        ];
        let incoming = contact("Chan Tai Man", "taiman.chan@EXAMPLE.com", "+852 9123-4567");
        // WHEN decided
        let d = scorer().decide(&incoming, &existing);
        // THEN it merges with the first and leaves the second alone
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].candidate, 0);
        assert_eq!(d[0].evidence.decision, Decision::AutoMerge);
    }

    #[test]
    fn a_name_only_match_goes_to_review_or_apart_never_merges() {
        let existing = vec![contact("Tai Man Chan", "tm@netvigator.com", "9123 4567")];
        let incoming = Contact {
            full_name: Some("Tai Man Chan".into()),
            ..Contact::default()
        };
        let d = scorer().decide(&incoming, &existing);
        assert!(d.iter().all(|x| x.evidence.decision != Decision::AutoMerge));
    }

    #[test]
    fn two_different_people_both_matching_go_to_review() {
        // GIVEN two existing contacts that disagree with each other (email and phone),
        // and an incoming row that shares the email of one and the phone of the other
        let existing = vec![
            contact("Wing Kei Lam", "wk.lam@gmail.com", "9123 4567"),
            contact("Wing Kei Lam", "lamwk@yahoo.com.hk", "6123 9876"),
        ];
        let incoming = contact("Wing Kei Lam", "wk.lam@gmail.com", "6123 9876");
        let d = scorer().decide(&incoming, &existing);
        // THEN neither merges automatically
        assert!(
            d.iter().all(|x| x.evidence.decision != Decision::AutoMerge),
            "{d:?}"
        );
        assert!(!d.is_empty());
    }

    #[test]
    fn fuzzy_keys_meet_romanized_names() {
        let a = fuzzy_keys(&contact("陳大文", "", ""), None);
        let b = fuzzy_keys(&contact("Chan Tai Man", "", ""), None);
        assert!(a.iter().any(|k| b.contains(k)));
    }
}
