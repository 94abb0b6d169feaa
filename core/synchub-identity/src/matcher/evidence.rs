//! What a reviewer sees for a pair: the decision, the score, and the
//! per-field agreement levels with the weight each contributed.

use serde::{Deserialize, Serialize};

use super::compare::{Field, FIELDS};
use super::model::{probability, FsModel};
use super::ScoredPair;

/// What happens to a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Same person: merge without asking.
    AutoMerge,
    /// Perhaps the same person: a human decides.
    Review,
    /// Different people.
    KeepApart,
}

/// One field's contribution to a pair's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldEvidence {
    /// The field.
    pub field: Field,
    /// Agreement level, e.g. `exact`, `equivalent`, `different`, `missing`.
    pub level: String,
    /// Log2 Bayes factor the level contributed (before term-frequency adjustment).
    pub weight: f64,
}

/// The scored comparison of two records, serializable for a review queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchEvidence {
    /// Index of the first record in the batch.
    pub left: u32,
    /// Index of the second record.
    pub right: u32,
    /// Log2 match odds, prior and term-frequency adjustment included.
    pub score: f64,
    /// Posterior match probability.
    pub probability: f64,
    /// The decision.
    pub decision: Decision,
    /// True when the names matched with first and last swapped.
    pub names_swapped: bool,
    /// Per-field evidence, in field order.
    pub fields: Vec<FieldEvidence>,
}

impl MatchEvidence {
    /// Build the evidence of a scored pair.
    pub fn new(pair: &ScoredPair, model: &FsModel, decision: Decision) -> Self {
        let fields = FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let level = pair.comparison.levels[i];
                FieldEvidence {
                    field: *f,
                    level: f
                        .level_names()
                        .get(usize::from(level))
                        .copied()
                        .unwrap_or("?")
                        .to_string(),
                    weight: model.weight(i, level),
                }
            })
            .collect();
        MatchEvidence {
            left: pair.a,
            right: pair.b,
            score: f64::from(pair.score),
            probability: probability(f64::from(pair.score)),
            decision,
            names_swapped: pair.comparison.swapped,
            fields,
        }
    }
}
