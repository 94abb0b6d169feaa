//! `synchub dedupe` at 100k and 1M rows: generate labelled CSVs in a temp
//! dir, run the same `dedupe_csv` the CLI runs, and print one BENCH line per
//! size; then the independent generator ([`synchub_identity::synth_indep`])
//! at the same sizes, its rows read as the CLI reads them and resolved in
//! memory (`dedupe_indep_N`). Each run is a child process so peak RSS is its
//! own. `DEDUPE_BENCH_SIZES=20000,100000` and `DEDUPE_BENCH_SETS=indep`
//! (or `project`) narrow the runs.

use std::process::Command;
use std::time::Instant;

use synchub_identity::eval::GeneratedSet;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User plus system CPU seconds this process has used so far (from
/// `/proc/self/stat`, in clock ticks of 1/100 s). On a shared machine the
/// wall-clock figure depends on everyone else's load; this one does not.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (tick(11) + tick(12)) / 100.0
}

fn run_size(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let set = GeneratedSet::create(n, 42, dir.path())?;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let summary = synchub_identity::dedupe::dedupe_csv(&set.options)?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let rss = peak_rss_mb();
    let scores = set.score()?;
    println!(
        "BENCH name=dedupe_{n} records={} seconds={seconds:.2} rate={:.0} peak_rss_mb={rss:.0} f1={:.4} precision={:.4} recall={:.4} clusters={} cpu_seconds={cpu:.1} candidate_pairs={}",
        summary.rows,
        summary.rows as f64 / seconds,
        scores.f1,
        scores.precision,
        scores.recall,
        summary.clusters,
        summary.candidate_pairs
    );
    Ok(())
}

fn run_indep(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let set = synchub_identity::eval::sets::independent_generator(n, 42);
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let report = set.evaluate_owned(&synchub_identity::matcher::MatchConfig::default());
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let rss = peak_rss_mb();
    let phases: Vec<String> = report
        .phases
        .iter()
        .map(|(name, s)| format!("{name}:{s:.1}"))
        .collect();
    println!(
        "BENCH name=dedupe_indep_{n} records={} seconds={seconds:.2} rate={:.0} peak_rss_mb={rss:.0} f1={:.4} precision={:.4} recall={:.4} cpu_seconds={cpu:.1} candidate_pairs={} review_pairs={} phases={}",
        report.rows,
        report.rows as f64 / seconds,
        report.scores.f1,
        report.scores.precision,
        report.scores.recall,
        report.candidate_pairs,
        report.review_pairs,
        phases.join(",")
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let n: usize = args.get(pos + 1).ok_or("--child needs a size")?.parse()?;
        return match args.get(pos + 2).map(String::as_str) {
            Some("indep") => run_indep(n),
            _ => run_size(n),
        };
    }
    let sizes: Vec<usize> = match std::env::var("DEDUPE_BENCH_SIZES") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => vec![100_000, 1_000_000],
    };
    let sets: Vec<String> = match std::env::var("DEDUPE_BENCH_SETS") {
        Ok(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
        Err(_) => vec!["project".into(), "indep".into()],
    };
    let exe = std::env::current_exe()?;
    for set in &sets {
        for n in &sizes {
            let status = Command::new(&exe)
                .arg("--child")
                .arg(n.to_string())
                .arg(set)
                .status()?;
            if !status.success() {
                return Err(format!("dedupe bench ({set}) for {n} rows failed: {status}").into());
            }
        }
    }
    Ok(())
}
