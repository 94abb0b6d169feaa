//! Tests for name normalization and comparison.

use super::*;

fn full(s: &str) -> PersonName {
    PersonName::parse(None, None, Some(s))
}

#[test]
fn normalize_name_strips_titles_and_folds() {
    assert_eq!(
        normalize_name("  Dr. JOSÉ  García-López "),
        "jose garcia lopez"
    );
    assert_eq!(normalize_name("陳 大文 先生"), "陳大文");
    assert_eq!(normalize_name("ＪＡＮＥ　ＤＯＥ"), "jane doe");
    assert_eq!(normalize_name("O'Brien"), "obrien");
}

#[test]
fn cjk_full_names_split_family_first() {
    let (g, f) = split_full_name("陳大文");
    assert_eq!((g, f), (vec!["大文".to_string()], vec!["陳".to_string()]));
    let (g, f) = split_full_name("歐陽小明");
    assert_eq!((g, f), (vec!["小明".to_string()], vec!["歐陽".to_string()]));
}

#[test]
fn romanized_names_split_by_surname() {
    assert_eq!(split_full_name("Chan Tai Man").1, vec!["chan".to_string()]);
    assert_eq!(split_full_name("Tai Man Chan").1, vec!["chan".to_string()]);
    assert_eq!(split_full_name("Jane Doe").1, vec!["doe".to_string()]);
    assert_eq!(split_full_name("Doe, Jane").0, vec!["jane".to_string()]);
}

#[test]
fn cjk_and_romanizations_are_equivalent() {
    let han = full("陳大文");
    for latin in [
        "Chan Tai Man",
        "Chen Da Wen",
        "Chen Ta-Wen",
        "CHAN Taiman",
        "Tai Man Chan",
    ] {
        let (g, f, _) = han.compare(&full(latin));
        assert_eq!(
            (g, f),
            (NameLevel::Equivalent, NameLevel::Equivalent),
            "{latin}"
        );
    }
    let (g, f, _) = full("Chan Tai Man").compare(&full("Chen Da Wen"));
    assert_eq!((g, f), (NameLevel::Equivalent, NameLevel::Equivalent));
    assert_eq!(
        full("陳大文").compare(&full("陈大文")).1,
        NameLevel::Equivalent
    );
}

#[test]
fn different_given_names_in_one_family_differ() {
    let (g, f, _) = full("陳大文").compare(&full("陳小明"));
    assert_eq!((g, f), (NameLevel::Different, NameLevel::Exact));
    let (g, _, _) = full("Chan Tai Man").compare(&full("Chan Siu Ming"));
    assert_eq!(g, NameLevel::Different);
}

#[test]
fn nicknames_typos_initials_and_swaps() {
    let a = PersonName::parse(Some("William"), Some("Smith"), None);
    assert_eq!(
        a.compare(&PersonName::parse(Some("Bill"), Some("Smith"), None))
            .0,
        NameLevel::Exact
    );
    assert_eq!(
        a.compare(&PersonName::parse(Some("Wiliam"), Some("Smith"), None))
            .0,
        NameLevel::Close
    );
    assert_eq!(
        a.compare(&PersonName::parse(Some("W."), Some("Smith"), None))
            .0,
        NameLevel::Initial
    );
    let swapped = a.compare(&PersonName::parse(Some("Smith"), Some("William"), None));
    assert_eq!(swapped, (NameLevel::Exact, NameLevel::Exact, true));
    assert_eq!(a.compare(&PersonName::default()).0, NameLevel::Missing);
}

#[test]
fn hyphenated_given_names_are_not_surnames() {
    // Hui is also 許 in Cantonese, but the hyphen marks a given name.
    assert_eq!(
        split_full_name("Hui-fang Liu"),
        (
            vec!["hui".to_string(), "fang".to_string()],
            vec!["liu".to_string()]
        )
    );
    let (g, f, _) =
        full("Hui-fang Liu").compare(&PersonName::parse(Some("輝芳"), Some("劉"), None));
    assert_eq!((g, f), (NameLevel::Equivalent, NameLevel::Equivalent));
}

#[test]
fn han_names_written_given_first_are_split_at_the_surname() {
    let (g, f) = split_full_name("大文陳");
    assert_eq!((g, f), (vec!["大文".to_string()], vec!["陳".to_string()]));
    let (g, f) = split_full_name("小明歐陽");
    assert_eq!((g, f), (vec!["小明".to_string()], vec!["歐陽".to_string()]));
    // A surname first stays family-first, an unknown first character too.
    assert_eq!(split_full_name("陳大文").1, vec!["陳".to_string()]);
    assert_eq!(split_full_name("孔文林").1, vec!["孔".to_string()]);
}

#[test]
fn names_split_differently_still_read_the_same() {
    // `Hui Yun Huang` reads family-first as 許 + 雲黃; the syllables still match 黃慧雲.
    let (g, f, _) = full("Hui Yun Huang").compare(&full("黃慧雲"));
    assert_eq!((g, f), (NameLevel::Equivalent, NameLevel::Equivalent));
    let (g, f, _) = full("Qiang-qiang Luo").compare(&full("羅強強"));
    assert_eq!((g, f), (NameLevel::Equivalent, NameLevel::Equivalent));
    // Different characters do not.
    let (g, _, _) = full("Hui Yun Huang").compare(&full("黃慧明"));
    assert_ne!(g, NameLevel::Equivalent);
}

#[test]
fn a_typo_in_a_romanized_name_is_close_to_the_han_name() {
    let han = PersonName::parse(Some("明家"), Some("黃"), None);
    let typo = PersonName::parse(Some("Mingg ka"), Some("Wong"), None);
    assert_eq!(han.compare(&typo).0, NameLevel::Close);
    // A different name in Latin letters stays different.
    let other = PersonName::parse(Some("Siu Ming"), Some("Wong"), None);
    assert_eq!(han.compare(&other).0, NameLevel::Different);
}

#[test]
fn cut_short_forms_are_weak_agreement() {
    let part = |s: &str| PersonName::parse(Some(s), Some("x"), None).given;
    for (a, b) in [
        ("Timmy", "Timothy"),
        ("Maddie", "Madison"),
        ("Mo", "Mohammed"),
        ("Becca", "Rebecca"),
        ("Gail", "Abigail"),
    ] {
        assert_eq!(
            compare_parts(&part(a), &part(b)),
            NameLevel::Initial,
            "{a} {b}"
        );
    }
    assert_eq!(
        compare_parts(&part("Mary"), &part("Martin")),
        NameLevel::Initial
    );
    assert_eq!(
        compare_parts(&part("Anna"), &part("Peter")),
        NameLevel::Different
    );
    assert_eq!(
        compare_parts(&part("Ann"), &part("Joanne")),
        NameLevel::Different
    );
}
