//! Decisions on small hand-made batches: disagreement is evidence, chains
//! are refused, and near-identical strangers stay apart.

use synchub_core::model::{Address, Contact};

use super::{resolve, MatchConfig};

fn person(name: &str, email: &str, phone: &str, company: &str) -> Contact {
    Contact {
        full_name: Some(name.into()),
        emails: [email]
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| e.to_string())
            .collect(),
        phones: [phone]
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.to_string())
            .collect(),
        company: (!company.is_empty()).then(|| company.to_string()),
        ..Contact::default()
    }
}

/// Unrelated background records so the batch has something to estimate from.
fn background(n: usize) -> Vec<Contact> {
    (0..n)
        .map(|i| {
            person(
                &format!("Person{i} Family{}", i % 37),
                &format!("p{i}@mail{}.com", i % 7),
                &format!("+8529{:07}", 1_000_000 + i * 13),
                "",
            )
        })
        .collect()
}

fn resolve_hk(contacts: &[Contact]) -> Vec<u32> {
    let cfg = MatchConfig {
        default_region: Some("HK".into()),
        ..MatchConfig::default()
    };
    resolve(contacts, &cfg).labels
}

#[test]
fn same_name_with_different_email_phone_and_company_stays_apart() {
    // GIVEN two "Tai Man Chan" who share nothing but the name
    let mut batch = vec![
        person(
            "Tai Man Chan",
            "tmchan@netvigator.com",
            "9123 4567",
            "Harbour Trading Ltd",
        ),
        person(
            "Tai Man Chan",
            "chan.taiman@gmail.com",
            "6789 0123",
            "Kowloon Motors",
        ),
    ];
    batch.extend(background(200));
    // WHEN resolved THEN they are two people
    let labels = resolve_hk(&batch);
    assert_ne!(labels[0], labels[1]);
}

#[test]
fn same_name_with_emails_one_digit_apart_does_not_auto_merge() {
    // GIVEN the same name, emails user01@ and user21@, and phone, birth date and city disagreeing
    let mut a = person("Mary Wong", "user01@example.com", "9123 4567", "");
    let mut b = person("Mary Wong", "user21@example.com", "6123 9876", "");
    a.birth_date = chrono::NaiveDate::from_ymd_opt(1980, 1, 2);
    b.birth_date = chrono::NaiveDate::from_ymd_opt(1975, 7, 9);
    a.addresses.push(Address {
        city: Some("Kowloon".into()),
        ..Address::default()
    });
    b.addresses.push(Address {
        city: Some("Sha Tin".into()),
        ..Address::default()
    });
    let mut batch = vec![a, b];
    batch.extend(background(200));
    // WHEN resolved THEN they are not merged
    let labels = resolve_hk(&batch);
    assert_ne!(labels[0], labels[1]);
}

#[test]
fn a_chain_whose_ends_disagree_is_not_built() {
    // GIVEN A and B sharing an email, B and C sharing a phone, and A and C
    // disagreeing on both email and phone
    let mut batch = vec![
        person("Wing Kei Lam", "wk.lam@gmail.com", "9123 4567", ""),
        person("Wing Kei Lam", "wk.lam@gmail.com", "6123 9876", ""),
        person("Wing Kei Lam", "lamwk@yahoo.com.hk", "6123 9876", ""),
    ];
    batch.extend(background(200));
    // WHEN resolved
    let cfg = MatchConfig {
        default_region: Some("HK".into()),
        ..MatchConfig::default()
    };
    let r = resolve(&batch, &cfg);
    let ab = r.pairs.iter().find(|p| (p.a, p.b) == (0, 1));
    assert_eq!(
        ab.map(|p| p.comparison.levels[3]),
        Some(1),
        "phones read and different"
    );
    let labels = r.labels;
    // THEN A and C never end up in one cluster
    assert_ne!(labels[0], labels[2]);
    // and B joins one of them
    assert!(labels[1] == labels[0] || labels[1] == labels[2]);
}

#[test]
fn the_same_person_with_a_shared_email_still_merges() {
    // GIVEN one person twice: same email, different phones (a second number)
    let mut batch = vec![
        person("Tai Man Chan", "tmchan@netvigator.com", "9123 4567", ""),
        person("Chan Tai Man", "tmchan@netvigator.com", "6789 0123", ""),
    ];
    batch.extend(background(200));
    let labels = resolve_hk(&batch);
    assert_eq!(labels[0], labels[1]);
}

#[test]
fn disagreeing_email_and_phone_outweigh_a_rare_name_under_weak_fitted_weights() {
    use super::compare::Comparison;
    use super::model::{probability, FsModel};
    use super::score_pair;
    // GIVEN a fitted model like the one in issue 13: an exact rare name weighs
    // about +10 per part, while a different email, phone or company weighs
    // almost nothing (-0.007, -0.05)
    let mut model = FsModel::defaults(&rustc_hash::FxHashMap::default(), 1.0);
    model.prior = -12.0;
    model.m[0][0] = 0.9;
    model.u[0][0] = 0.9 / 1024.0;
    model.m[1][0] = 0.9;
    model.u[1][0] = 0.9 / 1024.0;
    for (field, level) in [(2usize, 2usize), (3, 1), (6, 2)] {
        model.u[field][level] = 0.99;
        model.m[field][level] = 0.99 * 0.97;
    }
    // two "Tai Man Chan": names exact; email, phone and company different
    let c = Comparison {
        levels: [0, 0, 2, 1, 3, 4, 2],
        swapped: false,
    };
    // WHEN scored
    let p = probability(score_pair(&model, &c, None));
    // THEN they are kept apart (without the disagreement rule p would be 0.99)
    assert!(p < 0.5, "p = {p}");
    // and the pair counts as a conflict for clustering
    assert!(super::is_conflict(&c));
}
