//! Evaluation: generate a labelled set, run `synchub dedupe` on it, print
//! pairwise precision, recall and F1.
//!
//! `cargo run --release -p synchub-identity --example eval -- [ROWS] [SEED]`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50_000);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(42);
    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    let (summary, s) = synchub_identity::eval::run_generated(rows, seed, dir.path())?;
    println!(
        "rows={} clusters={} candidate_pairs={} review_pairs={} bad_rows={} seconds={:.2}",
        summary.rows,
        summary.clusters,
        summary.candidate_pairs,
        summary.review_pairs,
        summary.bad_rows.len(),
        start.elapsed().as_secs_f64()
    );
    println!(
        "pairs: true={} predicted={} correct={}",
        s.true_pairs, s.predicted_pairs, s.true_positives
    );
    println!(
        "precision={:.4} recall={:.4} f1={:.4}",
        s.precision, s.recall, s.f1
    );
    Ok(())
}
