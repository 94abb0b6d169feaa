//! Diagnostics: fitted FS weights, then the false negatives and false
//! positives of a run on the synthetic set, grouped by cause (never a
//! candidate, scored low, review band, guarded by clustering) and by level
//! pattern. Set `SHOW=N` to print N examples of each.
//!
//! `cargo run --release -p synchub-identity --example diagnose -- [ROWS] [SEED]`
use std::collections::HashMap;

use synchub_identity::matcher::block::candidate_pairs;
use synchub_identity::matcher::compare::{compare, FIELDS};
use synchub_identity::matcher::{prepare::Prepared, resolve_prepared, Decision, MatchConfig};
use synchub_identity::synth;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20000);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let show: usize = std::env::var("SHOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let data = synth::generate(seed, n);
    let prepared: Vec<Prepared> = data
        .iter()
        .map(|r| {
            let v = &r.values;
            let s = |i: usize| (!v[i].is_empty()).then(|| v[i].clone());
            let c = synchub_core::model::Contact {
                given_name: s(1),
                family_name: s(2),
                full_name: s(3),
                emails: s(4).into_iter().collect(),
                phones: s(5).into_iter().collect(),
                company: s(6),
                addresses: vec![synchub_core::model::Address {
                    line1: s(7),
                    city: s(8),
                    postal_code: s(9),
                    country: s(10),
                    ..Default::default()
                }],
                birth_date: synchub_identity::dedupe::parse_date(&v[11]),
                ..Default::default()
            };
            Prepared::new(&c, Some("TW"))
        })
        .collect();
    let cfg = MatchConfig {
        default_region: Some("TW".into()),
        ..Default::default()
    };
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
    let mut cause: HashMap<&str, u64> = HashMap::new();
    let mut patterns: HashMap<(&str, [u8; 7]), u64> = HashMap::new();
    let mut shown: HashMap<&str, usize> = HashMap::new();
    let mut by_e: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, r) in data.iter().enumerate() {
        by_e.entry(r.entity).or_default().push(i);
    }
    let mut true_pairs = 0u64;
    let mut oracle_m: Vec<Vec<u64>> = FIELDS.iter().map(|f| vec![0; f.levels()]).collect();
    for v in by_e.values() {
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let c = compare(&prepared[v[i]], &prepared[v[j]]);
                for (f, l) in c.levels.iter().enumerate() {
                    oracle_m[f][usize::from(*l)] += 1;
                }
            }
        }
    }
    for (f, counts) in FIELDS.iter().zip(&oracle_m) {
        let tot: u64 = counts[..counts.len() - 1].iter().sum();
        let shares: Vec<String> = counts[..counts.len() - 1]
            .iter()
            .map(|c| format!("{:.3}", *c as f64 / tot.max(1) as f64))
            .collect();
        println!("oracle m {f:?}: {}", shares.join(" "));
    }
    // Oracle: join true pairs that agree on something besides the name.
    for strong_only in [true, false] {
        let mut tp = 0u64;
        let mut all = 0u64;
        for v in by_e.values() {
            let mut root: Vec<usize> = (0..v.len()).collect();
            fn find(r: &mut [usize], mut x: usize) -> usize {
                while r[x] != x {
                    x = r[x];
                }
                x
            }
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    let l = compare(&prepared[v[i]], &prepared[v[j]]).levels;
                    let ev = l[2] <= 1 || l[3] == 0 || l[4] <= 1;
                    let weak = l[5] == 0 || l[6] == 0;
                    if ev || (!strong_only && weak) {
                        let (a, b) = (find(&mut root, i), find(&mut root, j));
                        root[a] = b;
                    }
                }
            }
            let mut sizes: HashMap<usize, u64> = HashMap::new();
            for i in 0..v.len() {
                *sizes.entry(find(&mut root, i)).or_default() += 1;
            }
            tp += sizes.values().map(|n| n * (n - 1) / 2).sum::<u64>();
            let n = v.len() as u64;
            all += n * (n - 1) / 2;
        }
        println!(
            "oracle recall without name-only links (strong evidence only: {strong_only}): {:.4}",
            tp as f64 / all.max(1) as f64
        );
    }
    for v in by_e.values() {
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                true_pairs += 1;
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
                *patterns.entry((why, c.levels)).or_default() += 1;
                let k = shown.entry(why).or_default();
                if *k < show {
                    *k += 1;
                    println!(
                        "FN {why} {:?} score {:?}\n  {:?}\n  {:?}",
                        c.levels,
                        kept.get(&(a as u32, b as u32)),
                        data[a].values,
                        data[b].values
                    );
                }
            }
        }
    }
    println!("true pairs {true_pairs}; false-negative pairs by cause: {cause:?}");
    let mut pats: Vec<_> = patterns.into_iter().collect();
    pats.sort_by_key(|x| std::cmp::Reverse(x.1));
    for ((why, l), c) in pats.iter().take(25) {
        println!("  FN {why:14} {l:?} {c}");
    }
    let mut fp = 0u64;
    let mut fp_pats: HashMap<[u8; 7], u64> = HashMap::new();
    let mut fp_shown = 0;
    for p in &res.pairs {
        if data[p.a as usize].entity != data[p.b as usize].entity
            && res.labels[p.a as usize] == res.labels[p.b as usize]
        {
            fp += 1;
            *fp_pats.entry(p.comparison.levels).or_default() += 1;
            if fp_shown < show {
                fp_shown += 1;
                println!(
                    "FP {:?} score {:.1}\n  {:?}\n  {:?}",
                    p.comparison.levels,
                    p.score,
                    data[p.a as usize].values,
                    data[p.b as usize].values
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
}
