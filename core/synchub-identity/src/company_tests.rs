//! Company resolution: unit cases per evidence type and a generated set.

use synchub_core::model::{Address, Company};

use super::*;
use crate::eval::pairwise_scores;
use crate::synth::rng::Rng;

fn company(name: &str, domain: &str, tax: &str, phone: &str, line1: &str, city: &str) -> Company {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Company {
        name: name.into(),
        domain: some(domain),
        tax_id: some(tax),
        phones: some(phone).into_iter().collect(),
        addresses: if line1.is_empty() && city.is_empty() {
            Vec::new()
        } else {
            vec![Address {
                line1: some(line1),
                city: some(city),
                ..Address::default()
            }]
        },
        ..Company::default()
    }
}

#[test]
fn legal_forms_and_a_shared_domain_merge() {
    let a = company("Bluewater Trading Ltd.", "bluewater.com.hk", "", "", "", "");
    let b = company(
        "BLUEWATER TRADING LIMITED",
        "https://www.bluewater.com.hk/",
        "",
        "",
        "",
        "",
    );
    assert_eq!(decide_companies(&a, &b, Some("HK")), CompanyDecision::Same);
    let a = company("藍水貿易股份有限公司", "", "", "02 2345 6789", "", "");
    let b = company("藍水貿易有限公司", "", "", "+886 2 2345 6789", "", "");
    assert_eq!(decide_companies(&a, &b, Some("TW")), CompanyDecision::Same);
}

#[test]
fn a_different_tax_id_or_domain_keeps_two_companies_apart() {
    let a = company("Acme Ltd", "acme.co.uk", "GB123", "", "", "");
    let b = company("Acme Limited", "acme.co.uk", "GB999", "", "", "");
    assert_eq!(decide_companies(&a, &b, None), CompanyDecision::Different);
    let a = company("Acme Inc", "acme.com", "", "", "", "");
    let b = company("Acme Inc.", "acme-tools.com", "", "", "", "");
    assert_eq!(decide_companies(&a, &b, None), CompanyDecision::Different);
}

#[test]
fn a_shared_name_alone_is_only_a_question() {
    let a = company("Summit Foods Ltd", "", "", "", "12 High St", "Leeds");
    let b = company("Summit Foods Limited", "", "", "", "", "");
    assert_eq!(decide_companies(&a, &b, None), CompanyDecision::Review);
    let c = company("Summit Foods Ltd", "", "", "", "3 Mill Road", "York");
    assert_eq!(decide_companies(&a, &c, None), CompanyDecision::Different);
}

const WORDS_A: &[&str] = &[
    "Blue", "North", "Iron", "Pine", "Harbour", "Gold", "Silver", "Red", "Bright", "Key", "Summit",
    "Ever", "Ocean", "Meridian", "Star", "Stone", "River", "Cedar", "Eagle", "Jade",
];
const WORDS_B: &[&str] = &[
    "Trading",
    "Logistics",
    "Foods",
    "Tech",
    "Holdings",
    "Partners",
    "Textiles",
    "Motors",
    "Pharma",
    "Design",
    "Capital",
    "Electronics",
];
const FORMS: &[&[&str]] = &[
    &["Ltd", "Ltd.", "Limited", "LTD"],
    &["Inc", "Inc.", "Incorporated"],
    &["Pty Ltd", "Pty. Ltd.", "Pty Limited"],
    &["Co., Ltd.", "Company Limited", "Co Ltd"],
];

/// Companies written by several systems: legal form, case, missing fields.
fn generated(seed: u64, n: usize) -> (Vec<Company>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let (mut out, mut truth) = (Vec::new(), Vec::new());
    let mut entity = 0u32;
    while out.len() < n {
        entity += 1;
        let a = rng.index(WORDS_A.len());
        let b = rng.index(WORDS_B.len());
        let form = rng.index(FORMS.len());
        let stem = format!(
            "{}{} {}",
            WORDS_A[a],
            if rng.chance(0.5) { "water" } else { "line" },
            WORDS_B[b]
        );
        // Several firms share a stem: each has its own domain, tax id, phone and address.
        let domain = format!("{}{}.com", stem.to_lowercase().replace(' ', ""), entity);
        let tax = format!("{:08}", 10_000_000 + u64::from(entity) * 7919 % 89_999_999);
        let phone = format!(
            "+1 212 {:03} {:04}",
            200 + rng.below(700),
            rng.below(10_000)
        );
        let line1 = format!(
            "{} {} Street",
            1 + rng.below(300),
            WORDS_A[rng.index(WORDS_A.len())]
        );
        let city = ["Boston", "Austin", "Denver", "Seattle"][rng.index(4)];
        let copies = 1 + rng.index(3);
        for _ in 0..copies {
            let mut name = format!("{stem} {}", rng.pick(FORMS[form]));
            if rng.chance(0.15) {
                name = name.to_uppercase();
            }
            let keep = |rng: &mut Rng, p: f64, v: &str| {
                if rng.chance(p) {
                    v.to_string()
                } else {
                    String::new()
                }
            };
            let c = company(
                &name,
                &keep(&mut rng, 0.5, &domain),
                &keep(&mut rng, 0.3, &tax),
                &keep(&mut rng, 0.6, &phone),
                &keep(&mut rng, 0.6, &line1),
                &keep(&mut rng, 0.8, city),
            );
            out.push(c);
            truth.push(entity);
        }
    }
    (out, truth)
}

#[test]
fn generated_companies_precision_at_least_0_99() {
    // GIVEN 3,000 company rows where many firms share a name stem
    let (companies, truth) = generated(11, 3000);
    // WHEN resolved
    let r = resolve_companies(&companies, Some("US"));
    let s = pairwise_scores(&truth, &r.labels);
    eprintln!(
        "companies: precision {:.4} recall {:.4} f1 {:.4}",
        s.precision, s.recall, s.f1
    );
    // THEN almost every merge is right, and most duplicates are found
    assert!(s.precision >= 0.99, "precision {}", s.precision);
    assert!(s.recall >= 0.6, "recall {}", s.recall);
}
