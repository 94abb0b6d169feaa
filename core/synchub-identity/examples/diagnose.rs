//! Diagnostics: fitted FS weights, false positives (FP=1) and false negatives (FN=1)
//! on the synthetic set. `cargo run --release -p synchub-identity --example diagnose -- [ROWS]`
use synchub_identity::matcher::{
    compare::FIELDS, prepare::Prepared, resolve_prepared, MatchConfig,
};
use synchub_identity::synth;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20000);
    let data = synth::generate(42, n);
    // Build prepared from rows via the same mapping as dedupe: reuse csv reading is internal; approximate.
    let contacts: Vec<synchub_core::model::Contact> = data
        .iter()
        .map(|r| {
            let v = &r.values;
            let s = |i: usize| {
                if v[i].is_empty() {
                    None
                } else {
                    Some(v[i].clone())
                }
            };
            synchub_core::model::Contact {
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
            }
        })
        .collect();
    let prepared: Vec<Prepared> = contacts
        .iter()
        .map(|c| Prepared::new(c, Some("TW")))
        .collect();
    let res = resolve_prepared(
        &prepared,
        &MatchConfig {
            default_region: Some("TW".into()),
            ..Default::default()
        },
    );
    println!("lambda {} iters {}", res.model.lambda, res.model.iterations);
    for (i, f) in FIELDS.iter().enumerate() {
        let w: Vec<String> = (0..f.levels())
            .map(|l| {
                format!(
                    "{}:{:.2}(m{:.3} u{:.4})",
                    f.level_names()[l],
                    res.model.weight(i, l as u8),
                    res.model.m[i][l],
                    res.model.u[i][l]
                )
            })
            .collect();
        println!("{f:?}: {}", w.join(" "));
    }
    let mut fp = 0;
    for p in &res.pairs {
        if data[p.a as usize].entity != data[p.b as usize].entity
            && res.decision(p.score) == synchub_identity::matcher::Decision::AutoMerge
        {
            fp += 1;
            if fp <= 12 && std::env::var("FP").is_ok() {
                println!(
                    "FP score {:.1} levels {:?}\n  {:?}\n  {:?}",
                    p.score,
                    p.comparison.levels,
                    data[p.a as usize].values,
                    data[p.b as usize].values
                );
            }
        }
    }
    println!("fp auto pairs {fp} of {}", res.pairs.len());
    let mut scored = std::collections::HashMap::new();
    for p in &res.pairs {
        scored.insert((p.a, p.b), (p.score, p.comparison.levels));
    }
    let mut by_e: std::collections::HashMap<u32, Vec<usize>> = Default::default();
    for (i, r) in data.iter().enumerate() {
        by_e.entry(r.entity).or_default().push(i);
    }
    let (mut fn_, mut shown, mut unscored) = (0, 0, 0);
    for v in by_e.values() {
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let (a, b) = (v[i], v[j]);
                if res.labels[a] != res.labels[b] {
                    fn_ += 1;
                    let s = scored.get(&(a as u32, b as u32));
                    if s.is_none() {
                        unscored += 1;
                    }
                    if shown < 14 && std::env::var("FN").is_ok() {
                        shown += 1;
                        println!("FN {:?}\n  {:?}\n  {:?}", s, data[a].values, data[b].values);
                    }
                }
            }
        }
    }
    println!("fn pairs {fn_} (not in kept pairs: {unscored})");
}
