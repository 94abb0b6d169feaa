//! Diagnostics on any labelled set: fitted FS weights, then the false
//! negatives of a run grouped by cause (never a candidate, scored low,
//! review band, guarded by clustering) and level pattern, and the directly
//! linked false positives by pattern. `SHOW=N` prints N examples of each.
//!
//! `cargo run --release -p synchub-identity --example diagnose -- SET [ROWS] [SEED]`
//! (SET: febrl1, febrl2, project, indep).
use std::collections::HashMap;

use synchub_identity::eval::sets::{febrl, independent_generator, project_generator};
use synchub_identity::matcher::block::candidate_pairs;
use synchub_identity::matcher::compare::{compare, FIELDS};
use synchub_identity::matcher::{prepare::Prepared, resolve_prepared, Decision, MatchConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let set = args.next().unwrap_or_else(|| "indep".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20000);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let show: usize = std::env::var("SHOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let data = match set.as_str() {
        "febrl1" | "febrl2" => febrl(&set)?,
        "project" => project_generator(n, seed),
        _ => independent_generator(n, seed),
    };
    let cfg = MatchConfig {
        default_region: data.region.clone(),
        ..Default::default()
    };
    let region = cfg.default_region.as_deref();
    let prepared: Vec<Prepared> = data
        .contacts
        .iter()
        .map(|c| Prepared::new(c, region))
        .collect();
    let res = resolve_prepared(&prepared, &cfg);
    println!(
        "lambda {:.4} prior {:.2} iters {}",
        res.model.lambda, res.model.prior, res.model.iterations
    );
    for (i, f) in FIELDS.iter().enumerate() {
        let w: Vec<String> = (0..f.levels())
            .map(|l| {
                format!(
                    "{}:{:.2}(m{:.3} u{:.5})",
                    f.level_names()[l],
                    res.model.weight(i, l as u8),
                    res.model.m[i][l],
                    res.model.u[i][l]
                )
            })
            .collect();
        println!("{f:?}: {}", w.join(" "));
    }
    let cands = candidate_pairs(&prepared, cfg.max_block, cfg.window);
    let kept: HashMap<(u32, u32), f32> = res.pairs.iter().map(|p| ((p.a, p.b), p.score)).collect();
    let mut by_e: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, t) in data.truth.iter().enumerate() {
        by_e.entry(*t).or_default().push(i);
    }
    let mut cause: HashMap<&str, u64> = HashMap::new();
    let mut patterns: HashMap<(&str, Vec<u8>), u64> = HashMap::new();
    let mut shown: HashMap<&str, usize> = HashMap::new();
    for v in by_e.values() {
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let (a, b) = (v[i], v[j]);
                if res.labels[a] == res.labels[b] {
                    continue;
                }
                let key = ((a as u64) << 32) | b as u64;
                let c = compare(&prepared[a], &prepared[b]);
                let why = if cands.binary_search(&key).is_err() {
                    "not_candidate"
                } else {
                    match kept.get(&(a as u32, b as u32)) {
                        None => "scored_low",
                        Some(s) if res.decision(*s) == Decision::Review => "review",
                        Some(_) => "guarded",
                    }
                };
                *cause.entry(why).or_default() += 1;
                *patterns.entry((why, c.levels.to_vec())).or_default() += 1;
                let k = shown.entry(why).or_default();
                if *k < show {
                    *k += 1;
                    println!(
                        "FN {why} {:?} score {:?}\n  {:?}\n  {:?}",
                        c.levels,
                        kept.get(&(a as u32, b as u32)),
                        data.contacts[a],
                        data.contacts[b]
                    );
                }
            }
        }
    }
    println!("false-negative pairs by cause: {cause:?}");
    let mut pats: Vec<_> = patterns.into_iter().collect();
    pats.sort_by_key(|x| std::cmp::Reverse(x.1));
    for ((why, l), c) in pats.iter().take(25) {
        println!("  FN {why:14} {l:?} {c}");
    }
    let mut fp = 0u64;
    let mut fp_pats: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut fp_shown = 0;
    for p in &res.pairs {
        let (a, b) = (p.a as usize, p.b as usize);
        if data.truth[a] != data.truth[b] && res.labels[a] == res.labels[b] {
            fp += 1;
            *fp_pats.entry(p.comparison.levels.to_vec()).or_default() += 1;
            if fp_shown < show {
                fp_shown += 1;
                println!(
                    "FP {:?} score {:.1}\n  {:?}\n  {:?}",
                    p.comparison.levels, p.score, data.contacts[a], data.contacts[b]
                );
            }
        }
    }
    let mut fps: Vec<_> = fp_pats.into_iter().collect();
    fps.sort_by_key(|x| std::cmp::Reverse(x.1));
    println!("directly linked false-positive pairs {fp}");
    for (l, c) in fps.iter().take(15) {
        println!("  FP {l:?} {c}");
    }
    Ok(())
}
