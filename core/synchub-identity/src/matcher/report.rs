//! What a run reports about the matcher: the fitted parameters, the
//! thresholds, the number of candidate pairs, and how many pairs of the
//! review band the model expects to be true duplicates.

use serde::Serialize;

use super::model::{probability, FsModel};
use super::{Decision, Resolution};

/// The matcher's part of a run report (serializable as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchReport {
    /// Fitted m and u per field and level, the match share and the prior.
    pub model: FsModel,
    /// Auto-merge and review thresholds (match probability).
    pub auto_merge_threshold: f64,
    /// Review threshold (match probability).
    pub review_threshold: f64,
    /// Candidate pairs compared.
    pub candidate_pairs: usize,
    /// Pairs at or above the auto-merge threshold.
    pub auto_merge_pairs: usize,
    /// Pairs in the review band.
    pub review_pairs: usize,
    /// Expected share of true duplicates among the review pairs (their mean
    /// match probability under the fitted model).
    pub review_expected_true_share: f64,
}

impl Resolution {
    /// The report of this resolution.
    pub fn report(&self) -> MatchReport {
        let mut auto = 0;
        let mut review = 0;
        let mut review_p = 0.0;
        for p in &self.pairs {
            match self.decision(p.score) {
                Decision::AutoMerge => auto += 1,
                Decision::Review => {
                    review += 1;
                    review_p += probability(f64::from(p.score));
                }
                Decision::KeepApart => {}
            }
        }
        MatchReport {
            model: self.model.clone(),
            auto_merge_threshold: self.thresholds.0,
            review_threshold: self.thresholds.1,
            candidate_pairs: self.candidate_pairs,
            auto_merge_pairs: auto,
            review_pairs: review,
            review_expected_true_share: if review == 0 {
                0.0
            } else {
                review_p / f64::from(u32::try_from(review).unwrap_or(u32::MAX))
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use synchub_core::model::Contact;

    use crate::matcher::{resolve, MatchConfig};

    #[test]
    fn report_carries_the_fitted_model_and_band() {
        let contacts: Vec<Contact> = (0..50)
            .map(|i| Contact {
                full_name: Some(format!("Person{} Family", i / 2)),
                emails: vec![format!("p{}@example.com", i / 2)],
                ..Contact::default()
            })
            .collect();
        let r = resolve(&contacts, &MatchConfig::default());
        let report = r.report();
        assert_eq!(report.candidate_pairs, r.candidate_pairs);
        assert!(report.auto_merge_pairs >= 20, "{report:?}");
        assert!((0.0..=1.0).contains(&report.review_expected_true_share));
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert!(json["model"]["m"].is_array());
    }
}
