//! Evaluation on every labelled set: FEBRL1 and FEBRL2 (deduplicated as one
//! file each, national-id column dropped), the project's generator and the
//! independent generator. Prints one line per set with pairwise precision,
//! recall and F1, so a change that lifts one set by lowering another shows.
//!
//! `cargo run --release -p synchub-identity --example eval -- [ROWS] [SEED] [SET…]`
//! (ROWS applies to the generators; SET is any of febrl1 febrl2 project indep).

use synchub_identity::eval::sets::{febrl, independent_generator, project_generator, SetReport};
use synchub_identity::matcher::MatchConfig;

fn print(r: &SetReport) {
    println!(
        "set={:<14} rows={:>8} precision={:.4} recall={:.4} f1={:.4} true_pairs={} predicted_pairs={} candidate_pairs={} review_pairs={} seconds={:.2} phases={}",
        r.name,
        r.rows,
        r.scores.precision,
        r.scores.recall,
        r.scores.f1,
        r.scores.true_pairs,
        r.scores.predicted_pairs,
        r.candidate_pairs,
        r.review_pairs,
        r.seconds,
        r.phases
            .iter()
            .map(|(name, s)| format!("{name}:{s:.1}"))
            .collect::<Vec<_>>()
            .join(",")
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(42);
    let mut wanted: Vec<String> = args.collect();
    if wanted.is_empty() {
        wanted = ["febrl1", "febrl2", "project", "indep"]
            .map(String::from)
            .to_vec();
    }
    let cfg = MatchConfig::default();
    for set in &wanted {
        let labelled = match set.as_str() {
            "febrl1" | "febrl2" => febrl(set)?,
            "project" => project_generator(rows, seed),
            "indep" => independent_generator(rows, seed),
            other => return Err(format!("unknown set {other}").into()),
        };
        print(&labelled.evaluate(&cfg));
    }
    Ok(())
}
