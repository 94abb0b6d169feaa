//! The probabilistic tier: blocking, Fellegi–Sunter scoring with EM-estimated
//! weights and term-frequency adjusted names, three-way decisions, and
//! chain-guarded clustering. [`resolve`] runs it all on a batch of contacts.

pub mod block;
pub mod cluster;
pub mod compare;
pub mod evidence;
pub mod model;
pub mod prepare;
pub mod report;
pub mod single;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use synchub_core::model::Contact;

use self::block::{candidate_pairs, unpack};
use self::cluster::Clusters;
use self::compare::{compare, Comparison, FIELDS};
pub use self::evidence::{Decision, FieldEvidence, MatchEvidence};
use self::model::{probability, FsModel};
use self::prepare::Prepared;

/// Tuning of the matcher. The defaults are what the evaluation set was judged with.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchConfig {
    /// Region for phones written without a country code (ISO 3166-1 alpha-2).
    pub default_region: Option<String>,
    /// Posterior match probability at or above which a pair merges automatically.
    pub auto_merge: f64,
    /// Posterior probability at or above which a pair goes to review (below: kept apart).
    pub review: f64,
    /// Largest cluster the clustering may build.
    pub max_cluster_size: usize,
    /// Blocks larger than this are windowed instead of fully paired.
    pub max_block: usize,
    /// Sorted-neighbourhood window for oversized blocks.
    pub window: usize,
    /// Random pairs drawn to estimate `u`.
    pub u_samples: usize,
    /// Maximum EM iterations.
    pub em_iterations: usize,
    /// Seed for the random pairs.
    pub seed: u64,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            default_region: None,
            auto_merge: 0.99,
            review: 0.5,
            max_cluster_size: 32,
            max_block: 40,
            window: 6,
            u_samples: 300_000,
            em_iterations: 60,
            seed: 0x5eed,
        }
    }
}

/// One scored candidate pair that was not kept apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    /// Lower record index.
    pub a: u32,
    /// Higher record index.
    pub b: u32,
    /// Field levels.
    pub comparison: Comparison,
    /// Log2 match odds, prior included.
    pub score: f32,
}

/// The result of [`resolve`].
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Cluster label per record (the smallest record index of its cluster).
    pub labels: Vec<u32>,
    /// Pairs that merged automatically or wait for review.
    pub pairs: Vec<ScoredPair>,
    /// The fitted model.
    pub model: FsModel,
    /// Number of candidate pairs compared.
    pub candidate_pairs: usize,
    /// Thresholds used (probabilities).
    pub thresholds: (f64, f64),
    /// Wall seconds per phase (blocking, comparing, fitting, scoring,
    /// clustering), for the bench line.
    pub phases: Vec<(&'static str, f64)>,
}

impl Resolution {
    /// The decision for a pair's score.
    pub fn decision(&self, score: f32) -> Decision {
        let p = probability(f64::from(score));
        if p >= self.thresholds.0 {
            Decision::AutoMerge
        } else if p >= self.thresholds.1 {
            Decision::Review
        } else {
            Decision::KeepApart
        }
    }

    /// Readable evidence for a pair.
    pub fn evidence(&self, pair: &ScoredPair) -> MatchEvidence {
        MatchEvidence::new(pair, &self.model, self.decision(pair.score))
    }

    /// Pairs in the review band, with evidence, strongest first.
    pub fn review_queue(&self) -> Vec<MatchEvidence> {
        let mut out: Vec<MatchEvidence> = self
            .pairs
            .iter()
            .filter(|p| self.decision(p.score) == Decision::Review)
            .map(|p| self.evidence(p))
            .collect();
        out.sort_by(|x, y| y.score.total_cmp(&x.score));
        out
    }
}

/// Resolve a batch of contacts into clusters of the same person.
pub fn resolve(contacts: &[Contact], cfg: &MatchConfig) -> Resolution {
    let region = cfg.default_region.as_deref();
    let prepared: Vec<Prepared> = contacts
        .par_iter()
        .map(|c| Prepared::new(c, region))
        .collect();
    resolve_prepared(&prepared, cfg)
}

/// [`resolve`] on records already prepared.
pub fn resolve_prepared(records: &[Prepared], cfg: &MatchConfig) -> Resolution {
    let mut phases = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &'static str| {
        phases.push((name, clock.elapsed().as_secs_f64()));
        clock = std::time::Instant::now();
    };
    let pairs = candidate_pairs(records, cfg.max_block, cfg.window);
    lap("block");
    let comparisons: Vec<Comparison> = pairs
        .par_iter()
        .map(|p| {
            let (a, b) = unpack(*p);
            compare(&records[a as usize], &records[b as usize])
        })
        .collect();
    lap("compare");
    let patterns: FxHashMap<u32, u64> = comparisons
        .par_iter()
        .fold(FxHashMap::default, |mut acc: FxHashMap<u32, u64>, c| {
            *acc.entry(c.pattern()).or_default() += 1;
            acc
        })
        .reduce(FxHashMap::default, |mut a, b| {
            for (k, v) in b {
                *a.entry(k).or_default() += v;
            }
            a
        });
    let u = FsModel::u_from_counts(&random_pair_counts(records, cfg.u_samples, cfg.seed));
    let n = records.len() as f64;
    let model = if records.len() < SMALL_BATCH {
        FsModel::defaults(&patterns, n * (n - 1.0) / 2.0)
    } else {
        FsModel::fit(u, &patterns, cfg.em_iterations, n * (n - 1.0) / 2.0)
    };
    let tf = NameFrequencies::new(records);
    lap("fit");
    let auto_score = odds(cfg.auto_merge);
    let review_score = odds(cfg.review);
    // Scores are computed where they are used, so no per-candidate score
    // vector is ever held: at a million records that is tens of megabytes.
    let kept: Vec<ScoredPair> = pairs
        .par_iter()
        .zip(&comparisons)
        .filter_map(|(p, c)| {
            let (a, b) = unpack(*p);
            let score = score_pair(&model, c, tf.of(a)) as f32;
            (f64::from(score) >= review_score).then_some(ScoredPair {
                a,
                b,
                comparison: *c,
                score,
            })
        })
        .collect();
    let conflicts: Vec<(u32, u32)> = pairs
        .par_iter()
        .zip(&comparisons)
        .filter(|(_, c)| is_conflict(c))
        .filter_map(|(p, c)| {
            let (a, b) = unpack(*p);
            (score_pair(&model, c, tf.of(a)) < review_score).then_some((a, b))
        })
        .collect();
    lap("score");
    let candidate_pairs = pairs.len();
    drop(pairs);
    drop(comparisons);
    let mut clusters = Clusters::new(records.len(), &conflicts, cfg.max_cluster_size);
    drop(conflicts);
    let mut links: Vec<&ScoredPair> = kept
        .iter()
        .filter(|p| f64::from(p.score) >= auto_score)
        .collect();
    links.par_sort_unstable_by(|x, y| {
        y.score
            .total_cmp(&x.score)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    // Every pair across two clusters is checked before they join, not only
    // the linking pair: a chain A–B–C whose ends disagree stops at B.
    for l in links {
        clusters.link_unless(l.a, l.b, |x, y| {
            let c = compare(&records[x as usize], &records[y as usize]);
            is_conflict(&c) && score_pair(&model, &c, tf.of(x)) < review_score
        });
    }
    let labels = clusters.labels();
    lap("cluster");
    Resolution {
        labels,
        pairs: kept,
        model,
        candidate_pairs,
        thresholds: (cfg.auto_merge, cfg.review),
        phases,
    }
}

/// Below this many records the model uses [`FsModel::defaults`] instead of EM.
pub const SMALL_BATCH: usize = 1000;

pub(crate) fn odds(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).log2()
}

/// A pair that is clearly two people: given names or birth dates disagree,
/// or both email and phone disagree without a strong name, address and
/// birth-date match to outweigh them.
pub(crate) fn is_conflict(c: &Comparison) -> bool {
    c.levels[0] == 4 || c.levels[4] == 2 || (contact_disagrees(c) && !strong_identity(c))
}

/// Both sides have an email and a phone, and neither is shared.
fn contact_disagrees(c: &Comparison) -> bool {
    c.levels[2] == 2 && c.levels[3] == 1
}

/// Names at least equivalent, the same address and the same birth date.
fn strong_identity(c: &Comparison) -> bool {
    c.levels[0] <= 1 && c.levels[1] <= 1 && c.levels[4] == 0 && c.levels[5] == 0
}

/// Per record, how common its given and family values are: the share of
/// records carrying that value in whichever position it is more common in,
/// so a family name written in the given-name column still counts as common.
struct NameFrequencies {
    given: Vec<f64>,
    family: Vec<f64>,
}

impl NameFrequencies {
    fn of(&self, record: u32) -> Option<(f64, f64)> {
        let i = record as usize;
        Some((self.given[i], self.family[i]))
    }

    fn new(records: &[Prepared]) -> Self {
        let mut g: FxHashMap<&str, u32> = FxHashMap::default();
        let mut f: FxHashMap<&str, u32> = FxHashMap::default();
        for r in records {
            *g.entry(&r.name.given.compact).or_default() += 1;
            *f.entry(&r.name.family.compact).or_default() += 1;
        }
        let n = records.len().max(1) as f64;
        let freq = |v: &str| {
            let count = g
                .get(v)
                .copied()
                .unwrap_or(0)
                .max(f.get(v).copied().unwrap_or(0));
            f64::from(count) / n
        };
        NameFrequencies {
            given: records
                .iter()
                .map(|r| freq(&r.name.given.compact))
                .collect(),
            family: records
                .iter()
                .map(|r| freq(&r.name.family.compact))
                .collect(),
        }
    }
}

/// Match weight of a pair with term-frequency adjusted exact name agreement:
/// agreeing on a rare name counts more than agreeing on `Wang` or `Chen`.
/// When the names disagree and no email is shared, a shared phone or address counts for nothing:
/// households share both, which breaks the independence FS assumes.
/// `freq` is the share of records carrying the first record's given and
/// family name (`None`: no term-frequency adjustment).
pub(crate) fn score_pair(model: &FsModel, c: &Comparison, freq: Option<(f64, f64)>) -> f64 {
    let mut score = model.prior_weight();
    if contact_disagrees(c) {
        // A different email and a different phone count against a match as
        // strongly as a shared one counts for it. Separately each is weak
        // evidence (people have a work address and a second number), so
        // the two fitted weights alone let a same-name stranger through.
        let separate = model.weight(2, 2) + model.weight(3, 1);
        let agreement = model.weight(2, 0).min(model.weight(3, 0)).max(0.0);
        score += (-agreement - separate).min(0.0);
    }
    // (Unless the birth date agrees too: a household's members rarely share one.)
    let names_differ =
        (c.levels[0] == 4 || c.levels[1] == 4) && c.levels[2] != 0 && c.levels[4] != 0;
    for (f, l) in c.levels.iter().enumerate() {
        let mut w = model.weight(f, *l);
        if names_differ && (f == 3 || f == 5) {
            w = w.min(0.0);
        }
        let exact_name = f < 2 && *l == 0;
        if exact_name {
            // Field 0 compares a's given name (with b's given, or b's family
            // when swapped); field 1 a's family name.
            let u = model.u[f][0];
            let freq = freq.map_or(u, |(g, fam)| if f == 0 { g } else { fam });
            let u_tf = freq.max(u.min(1e-6));
            score += (model.m[f][0] / u_tf).log2().min(w + 4.0);
        } else {
            score += w;
        }
    }
    score
}

fn random_pair_counts(records: &[Prepared], samples: usize, seed: u64) -> Vec<Vec<u64>> {
    let empty = || -> Vec<Vec<u64>> { FIELDS.iter().map(|f| vec![0; f.levels()]).collect() };
    let n = records.len() as u64;
    if n < 2 {
        return empty();
    }
    // Drawn in fixed chunks, each from its own seed, so the sample (and the
    // fitted u) does not depend on how many threads share the work.
    const CHUNK: usize = 10_000;
    let chunks = samples.div_ceil(CHUNK);
    (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut counts = empty();
            let mut rng = crate::synth::rng::Rng::new(
                seed ^ (chunk as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            let draws = CHUNK.min(samples - chunk * CHUNK);
            for _ in 0..draws {
                let a = rng.below(n);
                let b = rng.below(n);
                if a == b {
                    continue;
                }
                let c = compare(&records[a as usize], &records[b as usize]);
                for (f, l) in c.levels.iter().enumerate() {
                    counts[f][usize::from(*l)] += 1;
                }
            }
            counts
        })
        .reduce(empty, |mut acc, part| {
            for (a, p) in acc.iter_mut().zip(part) {
                for (x, y) in a.iter_mut().zip(p) {
                    *x += y;
                }
            }
            acc
        })
}

#[cfg(test)]
mod tests;
