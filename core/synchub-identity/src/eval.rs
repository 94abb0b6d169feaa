//! Pairwise precision, recall and F1 of a clustering against truth labels,
//! and the labelled sets they are measured on ([`sets`]).

pub mod sets;

use rustc_hash::FxHashMap;
use serde::Serialize;

/// Pairwise scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairwiseScores {
    /// Pairs put together that are the same person.
    pub true_positives: u64,
    /// Pairs put together.
    pub predicted_pairs: u64,
    /// Pairs that are the same person.
    pub true_pairs: u64,
    /// TP / predicted.
    pub precision: f64,
    /// TP / true.
    pub recall: f64,
    /// Harmonic mean.
    pub f1: f64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Score predicted cluster labels against truth labels (same length).
pub fn pairwise_scores(truth: &[u32], predicted: &[u32]) -> PairwiseScores {
    let mut t: FxHashMap<u32, u64> = FxHashMap::default();
    let mut p: FxHashMap<u32, u64> = FxHashMap::default();
    let mut both: FxHashMap<(u32, u32), u64> = FxHashMap::default();
    for (a, b) in truth.iter().zip(predicted) {
        *t.entry(*a).or_default() += 1;
        *p.entry(*b).or_default() += 1;
        *both.entry((*a, *b)).or_default() += 1;
    }
    let tp: u64 = both.values().map(|n| pairs(*n)).sum();
    let predicted_pairs: u64 = p.values().map(|n| pairs(*n)).sum();
    let true_pairs: u64 = t.values().map(|n| pairs(*n)).sum();
    let precision = if predicted_pairs == 0 {
        1.0
    } else {
        tp as f64 / predicted_pairs as f64
    };
    let recall = if true_pairs == 0 {
        1.0
    } else {
        tp as f64 / true_pairs as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    PairwiseScores {
        true_positives: tp,
        predicted_pairs,
        true_pairs,
        precision,
        recall,
        f1,
    }
}

/// A generated, labelled set written to CSV, ready for `dedupe_csv`.
#[derive(Debug)]
pub struct GeneratedSet {
    /// Options that run dedupe on the files exactly as the CLI does (region TW).
    pub options: crate::dedupe::DedupeOptions,
    truth_of: FxHashMap<(String, String), u32>,
}

impl GeneratedSet {
    /// Generate `rows` labelled rows from `seed` into `dir`, one CSV per source.
    pub fn create(
        rows: usize,
        seed: u64,
        dir: &std::path::Path,
    ) -> Result<Self, crate::dedupe::DedupeError> {
        use crate::dedupe::{DedupeError, DedupeInput, DedupeOptions};
        let data = crate::synth::generate(seed, rows);
        let paths = crate::synth::write_csvs(dir, &data).map_err(|source| DedupeError::Csv {
            path: dir.to_path_buf(),
            source,
        })?;
        let truth_of = data
            .iter()
            .map(|r| ((r.source.to_string(), r.values[0].clone()), r.entity))
            .collect();
        let options = DedupeOptions {
            inputs: paths
                .into_iter()
                .map(|path| DedupeInput { path, source: None })
                .collect(),
            map: Vec::new(),
            region: Some("TW".into()),
            output: dir.join("clusters.csv"),
            config: crate::matcher::MatchConfig::default(),
        };
        Ok(GeneratedSet { options, truth_of })
    }

    /// Score the output file of a dedupe run against the truth.
    pub fn score(&self) -> Result<PairwiseScores, crate::dedupe::DedupeError> {
        let output = &self.options.output;
        let err = |source| crate::dedupe::DedupeError::Csv {
            path: output.clone(),
            source,
        };
        let mut reader = csv::Reader::from_path(output).map_err(err)?;
        let (mut truth, mut predicted) = (Vec::new(), Vec::new());
        for rec in reader.records() {
            let rec = rec.map_err(err)?;
            let key = (
                rec.get(0).unwrap_or("").to_string(),
                rec.get(1).unwrap_or("").to_string(),
            );
            truth.push(self.truth_of.get(&key).copied().unwrap_or(u32::MAX));
            predicted.push(rec.get(2).and_then(|c| c.parse().ok()).unwrap_or(u32::MAX));
        }
        Ok(pairwise_scores(&truth, &predicted))
    }
}

/// Generate a set, run [`crate::dedupe::dedupe_csv`] on it, and score it.
pub fn run_generated(
    rows: usize,
    seed: u64,
    dir: &std::path::Path,
) -> Result<(crate::dedupe::DedupeSummary, PairwiseScores), crate::dedupe::DedupeError> {
    let set = GeneratedSet::create(rows, seed, dir)?;
    let summary = crate::dedupe::dedupe_csv(&set.options)?;
    Ok((summary, set.score()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_partial() {
        let s = pairwise_scores(&[1, 1, 2, 2], &[5, 5, 6, 6]);
        assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
        let s = pairwise_scores(&[1, 1, 1, 2], &[5, 5, 6, 6]);
        assert_eq!(s.true_positives, 1);
        assert_eq!(s.predicted_pairs, 2);
        assert_eq!(s.true_pairs, 3);
    }
}
