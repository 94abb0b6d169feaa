//! Fellegi–Sunter scoring with m and u probabilities estimated from the data.
//! u comes from randomly drawn record pairs (almost all non-matches); EM (two
//! latent classes, fields conditionally independent, u held) runs over the
//! level patterns of the candidate pairs, fitting m and the share of matches
//! among candidates.
//! Scoring then uses the EM m with the random-pair u and the prior of a
//! random pair being a match (expected matches / all pairs): candidate pairs
//! are a biased sample (they share a blocking key), so their own u would
//! understate how rare agreement is in the population. Missing values carry
//! no weight. See Fellegi & Sunter (1969), Winkler
//! (1988) on EM for record linkage, and Splink's term-frequency adjustment.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::compare::{Comparison, FIELDS};

/// Probabilities of each agreement level among matches (`m`) and non-matches (`u`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FsModel {
    /// `m[field][level]`.
    pub m: Vec<Vec<f64>>,
    /// `u[field][level]`.
    pub u: Vec<Vec<f64>>,
    /// Share of candidate pairs that are matches.
    pub lambda: f64,
    /// Log2 prior odds that a random pair of records is a match.
    pub prior: f64,
    /// EM iterations run.
    pub iterations: usize,
}

const FLOOR: f64 = 1e-9;

impl FsModel {
    /// Estimate `u` from level counts of random pairs (Laplace-smoothed).
    pub fn u_from_counts(counts: &[Vec<u64>]) -> Vec<Vec<f64>> {
        counts
            .iter()
            .map(|levels| {
                let informative = &levels[..levels.len() - 1];
                let total: u64 = informative.iter().sum();
                let denom = total as f64 + 0.5 * informative.len() as f64;
                let mut u: Vec<f64> = informative
                    .iter()
                    .map(|c| (*c as f64 + 0.5) / denom)
                    .collect();
                u.push(1.0);
                u
            })
            .collect()
    }

    /// Fit in training sessions, as Splink does: EM over the candidate pairs
    /// that share an email estimates m for every other field; EM over pairs
    /// that share a phone and a name estimates m for email. A field a session
    /// selects on tells nothing about its own m. Then the share of matches
    /// among all candidates is fitted with m and u held. One EM over all
    /// candidates (the fallback when a session has no pairs) can lock onto
    /// "same common name" as its match class on large inputs.
    pub fn fit(
        u: Vec<Vec<f64>>,
        patterns: &FxHashMap<u32, u64>,
        max_iter: usize,
        all_pairs: f64,
    ) -> Self {
        let subset = |keep: &dyn Fn(&[u8; 7]) -> bool| -> FxHashMap<u32, u64> {
            patterns
                .iter()
                .filter(|(p, _)| keep(&Comparison::from_pattern(**p)))
                .map(|(p, c)| (*p, *c))
                .collect()
        };
        let by_email = subset(&|l| l[2] == 0);
        let by_phone = subset(&|l| l[3] == 0 && l[0] <= 1 && l[1] <= 1);
        if by_email.values().sum::<u64>() < 50 || by_phone.values().sum::<u64>() < 50 {
            return Self::fit_em(u, patterns, max_iter, all_pairs);
        }
        let s1 = Self::fit_em(u.clone(), &by_email, max_iter, all_pairs);
        let s2 = Self::fit_em(u.clone(), &by_phone, max_iter, all_pairs);
        let mut m = s1.m;
        m[2] = s2.m[2].clone();
        let model = FsModel {
            m,
            u,
            lambda: 0.1,
            prior: 0.0,
            iterations: s1.iterations + s2.iterations,
        };
        model.with_fitted_lambda(patterns, max_iter, all_pairs)
    }

    /// Textbook m and u (each level's share among matches and among random
    /// non-matches) for batches too small to estimate from: a few records
    /// cannot tell EM anything, and their random pairs include the matches.
    pub fn defaults(patterns: &FxHashMap<u32, u64>, all_pairs: f64) -> Self {
        let m = vec![
            vec![0.6, 0.25, 0.08, 0.02, 0.05, 1.0],
            vec![0.65, 0.25, 0.05, 0.01, 0.04, 1.0],
            vec![0.85, 0.05, 0.10, 1.0],
            vec![0.85, 0.15, 1.0],
            vec![0.93, 0.05, 0.02, 1.0],
            vec![0.7, 0.15, 0.1, 0.05, 1.0],
            vec![0.6, 0.2, 0.2, 1.0],
        ];
        let u = vec![
            vec![0.005, 0.002, 0.003, 0.002, 0.988, 1.0],
            vec![0.01, 0.01, 0.002, 0.001, 0.977, 1.0],
            vec![1e-5, 1e-6, 0.99999, 1.0],
            vec![1e-5, 0.99999, 1.0],
            vec![1e-4, 5e-3, 0.995, 1.0],
            vec![1e-4, 1e-3, 0.02, 0.979, 1.0],
            vec![0.05, 0.01, 0.94, 1.0],
        ];
        FsModel {
            m,
            u,
            lambda: 0.5,
            prior: 0.0,
            iterations: 0,
        }
        .with_fitted_lambda(patterns, 30, all_pairs)
    }

    fn with_fitted_lambda(
        mut self,
        patterns: &FxHashMap<u32, u64>,
        max_iter: usize,
        all_pairs: f64,
    ) -> Self {
        let decoded: Vec<(f64, f64)> = patterns
            .iter()
            .map(|(p, c)| {
                let l = Comparison::from_pattern(*p);
                let w: f64 = l.iter().enumerate().map(|(f, x)| self.weight(f, *x)).sum();
                (w.exp2(), *c as f64)
            })
            .collect();
        let total: f64 = decoded.iter().map(|(_, c)| c).sum::<f64>().max(1.0);
        for _ in 0..max_iter {
            let odds = self.lambda / (1.0 - self.lambda);
            let matched: f64 = decoded
                .iter()
                .map(|(bf, c)| c * odds * bf / (1.0 + odds * bf))
                .sum();
            self.lambda = (matched / total).clamp(1e-6, 1.0 - 1e-6);
        }
        let expected = (self.lambda * total).max(1.0);
        self.prior = (expected / (all_pairs.max(total) - expected).max(1.0)).log2();
        self
    }

    /// One EM over the given patterns with `u` held at the random-pair
    /// estimate: only m and the match share are free. Letting u float too
    /// lets the two classes lock onto something other than match/non-match
    /// (for instance "both written in Han" against "one romanized" among the
    /// pairs that share an email), which drove the m of romanization-equivalent
    /// names to a twentieth of its true value.
    pub fn fit_em(
        u: Vec<Vec<f64>>,
        patterns: &FxHashMap<u32, u64>,
        max_iter: usize,
        all_pairs: f64,
    ) -> Self {
        let mut m: Vec<Vec<f64>> = FIELDS
            .iter()
            .map(|f| {
                let n = f.levels() - 1;
                let mut v: Vec<f64> = (0..n)
                    .map(|l| 0.6f64.powi(i32::try_from(l).unwrap_or(0) + 1))
                    .collect();
                let s: f64 = v.iter().sum();
                v.iter_mut().for_each(|x| *x /= s);
                v.push(1.0);
                v
            })
            .collect();
        let mut lambda = 0.1;
        let decoded: Vec<([u8; 7], f64)> = patterns
            .iter()
            .map(|(p, c)| (Comparison::from_pattern(*p), *c as f64))
            .collect();
        let total: f64 = decoded.iter().map(|(_, c)| c).sum();
        let mut iterations = 0;
        for _ in 0..max_iter {
            iterations += 1;
            let mut acc: Vec<Vec<f64>> = FIELDS.iter().map(|f| vec![0.0; f.levels()]).collect();
            let mut matched = 0.0;
            for (levels, count) in &decoded {
                let (mut pm, mut pu) = (lambda, 1.0 - lambda);
                for (f, l) in levels.iter().enumerate() {
                    pm *= m[f][usize::from(*l)];
                    pu *= u[f][usize::from(*l)];
                }
                let p = pm / (pm + pu).max(f64::MIN_POSITIVE);
                matched += p * count;
                for (f, l) in levels.iter().enumerate() {
                    acc[f][usize::from(*l)] += p * count;
                }
            }
            let new_lambda = (matched / total.max(1.0)).clamp(1e-6, 1.0 - 1e-6);
            normalize_into(&acc, &mut m);
            let converged = (new_lambda - lambda).abs() < 1e-7;
            lambda = new_lambda;
            if converged {
                break;
            }
        }
        let candidates = total.max(1.0);
        let expected = (lambda * candidates).max(1.0);
        let prior = (expected / (all_pairs.max(candidates) - expected).max(1.0)).log2();
        FsModel {
            m,
            u,
            lambda,
            prior,
            iterations,
        }
    }

    /// Log2 Bayes factor of one field level (0 for "missing"). A partial
    /// agreement never weighs less than outright disagreement: a level the
    /// matches of this data never showed (FEBRL has no initials, so EM puts
    /// m of "initial" near zero) would otherwise count an initial that
    /// agrees as stronger evidence against than a different name.
    pub fn weight(&self, field: usize, level: u8) -> f64 {
        let l = usize::from(level);
        let levels = self.m[field].len();
        if l + 1 == levels {
            return 0.0;
        }
        let raw = |l: usize| (self.m[field][l] / self.u[field][l].max(FLOOR)).log2();
        let different = levels - 2;
        if l < different {
            raw(l).max(raw(different))
        } else {
            raw(l)
        }
    }

    /// Log2 prior odds that a random pair is a match.
    pub fn prior_weight(&self) -> f64 {
        self.prior
    }

    /// Total match weight of a pattern (prior included), without term-frequency adjustment.
    pub fn score_levels(&self, levels: &[u8; 7]) -> f64 {
        self.prior_weight()
            + levels
                .iter()
                .enumerate()
                .map(|(f, l)| self.weight(f, *l))
                .sum::<f64>()
    }
}

fn normalize_into(acc: &[Vec<f64>], out: &mut [Vec<f64>]) {
    for (f, a) in acc.iter().enumerate() {
        let n = a.len() - 1;
        let s: f64 = a[..n].iter().sum::<f64>() + 1e-3 * n as f64;
        for l in 0..n {
            out[f][l] = ((a[l] + 1e-3) / s).max(FLOOR);
        }
    }
}

/// Posterior match probability of a log2-odds score.
pub fn probability(score: f64) -> f64 {
    1.0 / (1.0 + (-score).exp2())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn em_separates_two_obvious_classes() {
        // GIVEN 100 pairs agreeing on everything and 900 disagreeing on everything
        let all = |l: [u8; 7]| {
            Comparison {
                levels: l,
                swapped: false,
            }
            .pattern()
        };
        let mut patterns = FxHashMap::default();
        patterns.insert(all([0, 0, 0, 0, 0, 0, 0]), 100);
        patterns.insert(all([4, 4, 2, 1, 2, 3, 2]), 900);
        // and u saying agreement is rare among random pairs
        let counts: Vec<Vec<u64>> = FIELDS
            .iter()
            .map(|f| {
                let mut v = vec![0u64; f.levels()];
                v[0] = 1;
                v[f.levels() - 2] = 999;
                v
            })
            .collect();
        // WHEN fitted
        let model = FsModel::fit(FsModel::u_from_counts(&counts), &patterns, 50, 1000.0);
        // THEN lambda is about 0.1, agreement weighs for, disagreement against
        assert!((model.lambda - 0.1).abs() < 0.01, "lambda {}", model.lambda);
        assert!(model.weight(2, 0) > 5.0);
        assert!(model.weight(0, 4) < -2.0);
        assert_eq!(model.weight(2, 3), 0.0, "missing is neutral");
        assert!(
            model.weight(0, 3) >= model.weight(0, 4),
            "an initial that agrees never weighs less than a different name"
        );
        assert!(probability(model.score_levels(&[0, 0, 0, 0, 0, 0, 0])) > 0.99);
        assert!(probability(model.score_levels(&[4, 4, 2, 1, 2, 3, 2])) < 0.01);
    }
}
