//! Pairwise comparison: each field of two prepared contacts is reduced to an
//! agreement level, and the vector of levels is the input to Fellegi–Sunter.

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use super::prepare::Prepared;

/// The fields the probabilistic scorer compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Given name.
    GivenName,
    /// Family name.
    FamilyName,
    /// Email addresses.
    Email,
    /// Phone numbers.
    Phone,
    /// Birth date.
    BirthDate,
    /// Street address.
    Address,
    /// Company.
    Company,
}

/// All compared fields, in vector order.
pub const FIELDS: [Field; 7] = [
    Field::GivenName,
    Field::FamilyName,
    Field::Email,
    Field::Phone,
    Field::BirthDate,
    Field::Address,
    Field::Company,
];

impl Field {
    /// Number of agreement levels; the last one always means "missing".
    pub const fn levels(self) -> usize {
        match self {
            Field::GivenName | Field::FamilyName => 6,
            Field::Email | Field::BirthDate | Field::Company => 4,
            Field::Phone => 3,
            Field::Address => 5,
        }
    }

    /// Human-readable labels of the levels, best first.
    pub const fn level_names(self) -> &'static [&'static str] {
        match self {
            Field::GivenName | Field::FamilyName => &[
                "exact",
                "equivalent",
                "close",
                "initial",
                "different",
                "missing",
            ],
            Field::Email => &["same", "close", "different", "missing"],
            Field::Phone => &["same", "different", "missing"],
            Field::BirthDate => &["same", "near", "different", "missing"],
            Field::Address => &["same", "close", "same_area", "different", "missing"],
            Field::Company => &["same", "close", "different", "missing"],
        }
    }
}

/// Agreement levels of one pair, one per field of [`FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Comparison {
    /// Level per field.
    pub levels: [u8; 7],
    /// True when the names agreed better with first and last swapped.
    pub swapped: bool,
}

impl Comparison {
    /// Mixed-radix code of the level vector, unique per pattern.
    pub fn pattern(&self) -> u32 {
        FIELDS
            .iter()
            .zip(self.levels)
            .fold(0u32, |acc, (f, l)| acc * f.levels() as u32 + u32::from(l))
    }

    /// Decode a pattern code.
    pub fn from_pattern(mut code: u32) -> [u8; 7] {
        let mut levels = [0u8; 7];
        for (i, f) in FIELDS.iter().enumerate().rev() {
            let radix = f.levels() as u32;
            levels[i] = u8::try_from(code % radix).unwrap_or(0);
            code /= radix;
        }
        levels
    }

    /// Number of distinct patterns.
    pub fn pattern_count() -> usize {
        FIELDS.iter().map(|f| f.levels()).product()
    }
}

/// Compare two prepared contacts.
pub fn compare(a: &Prepared, b: &Prepared) -> Comparison {
    let (given, family, swapped) = a.name.compare(&b.name);
    Comparison {
        levels: [
            given as u8,
            family as u8,
            compare_emails(&a.emails, &b.emails),
            compare_phones(&a.phones, &b.phones),
            compare_dates(a, b),
            compare_address(a, b),
            compare_company(a.company.as_deref(), b.company.as_deref()),
        ],
        swapped,
    }
}

fn compare_emails(a: &[String], b: &[String]) -> u8 {
    if a.is_empty() || b.is_empty() {
        return 3;
    }
    if a.iter().any(|x| b.contains(x)) {
        return 0;
    }
    if a.iter().any(|x| b.iter().any(|y| emails_close(x, y))) {
        1
    } else {
        2
    }
}

/// A typo of the same mailbox: same domain, local parts of six characters
/// or more one edit apart, and the same digits in the same order. A digit
/// that differs (`user01@…` against `user21@…`) is another mailbox, not a
/// typo; and the same local part at another provider (`jsmith@sky.com`,
/// `jsmith@yahoo.co.uk`) is a common handle, not evidence. Nor is a
/// separator added or dropped (`nathan.wilson@` against `nathanwilson@`):
/// both are handles made from the same name, taken by two people.
fn emails_close(x: &str, y: &str) -> bool {
    let (lx, dx) = x.split_once('@').unwrap_or((x, ""));
    let (ly, dy) = y.split_once('@').unwrap_or((y, ""));
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let bare = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, '.' | '_' | '-'))
            .collect::<String>()
    };
    dx == dy
        && lx.len() >= 6
        && digits(lx) == digits(ly)
        && bare(lx) != bare(ly)
        && strsim::damerau_levenshtein(lx, ly) <= 1
}

fn compare_phones(a: &[String], b: &[String]) -> u8 {
    if a.is_empty() || b.is_empty() {
        2
    } else if a.iter().any(|x| b.contains(x)) {
        0
    } else {
        1
    }
}

fn compare_dates(a: &Prepared, b: &Prepared) -> u8 {
    let (Some(x), Some(y)) = (a.birth_date, b.birth_date) else {
        return 3;
    };
    if x == y {
        return 0;
    }
    let swapped_dm = x.year() == y.year() && x.month() == y.day() && x.day() == y.month();
    let one_off = u8::from(x.year() != y.year())
        + u8::from(x.month() != y.month())
        + u8::from(x.day() != y.day())
        == 1;
    if swapped_dm || one_off {
        1
    } else {
        2
    }
}

/// Addresses compared part by part: house number, street name (fuzzy),
/// second line, city (fuzzy) and postal code. `same`: the same street name
/// and number and no part disagreeing; `close`: the street name agrees
/// (allowing a typo), the numbers do not disagree, and at most one part
/// disagrees while three agree (or none disagrees); `same_area`: city,
/// postal code or second line agree; `different`; `missing` when no part
/// is present on both sides.
fn compare_address(a: &Prepared, b: &Prepared) -> u8 {
    let fuzzy = |x: &Option<String>, y: &Option<String>, t: f64| match (x, y) {
        (Some(x), Some(y)) => Some(jaro_winkler_at_least(x, y, t)),
        _ => None,
    };
    let exact = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => Some(x == y),
        _ => None,
    };
    let name = fuzzy(&a.street_name, &b.street_name, 0.9);
    let number = exact(&a.number, &b.number);
    let parts = [
        name,
        number,
        fuzzy(&a.line2, &b.line2, 0.9),
        fuzzy(&a.city, &b.city, 0.92),
        exact(&a.postal_code, &b.postal_code),
    ];
    let agree = parts.iter().filter(|p| **p == Some(true)).count();
    let disagree = parts.iter().filter(|p| **p == Some(false)).count();
    if agree + disagree == 0 {
        return 4;
    }
    let same_street = a.street_name.is_some() && a.street_name == b.street_name;
    if same_street && number == Some(true) && disagree == 0 {
        return 0;
    }
    let few_disagree = disagree == 0 || (disagree == 1 && agree >= 3);
    let street_agrees = name == Some(true) && number != Some(false);
    let number_and_place = name.is_none() && number == Some(true) && agree >= 3;
    if (street_agrees || number_and_place) && few_disagree && agree >= 2 {
        return 1;
    }
    if parts[2..].contains(&Some(true)) {
        2
    } else {
        3
    }
}

/// `jaro_winkler(x, y) >= t`, skipping the computation when the lengths
/// alone rule it out. With the standard prefix weight (0.1, at most four
/// characters) `jw <= 0.6 * jaro + 0.4`, and `jaro <= (2 + short/long) / 3`,
/// so `jw >= t` needs `short/long >= 5 (t - 0.4) - 2`.
pub(crate) fn jaro_winkler_at_least(x: &str, y: &str, t: f64) -> bool {
    if x == y {
        return true;
    }
    let (lx, ly) = if x.is_ascii() && y.is_ascii() {
        (x.len(), y.len())
    } else {
        (x.chars().count(), y.chars().count())
    };
    let (short, long) = (lx.min(ly) as f64, lx.max(ly).max(1) as f64);
    if short / long < 5.0 * (t - 0.4) - 2.0 {
        return false;
    }
    strsim::jaro_winkler(x, y) >= t
}

fn compare_company(a: Option<&str>, b: Option<&str>) -> u8 {
    match (a, b) {
        (Some(x), Some(y)) if x == y => 0,
        (Some(x), Some(y)) if jaro_winkler_at_least(x, y, 0.9) => 1,
        (Some(_), Some(_)) => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synchub_core::model::Contact;

    fn prep(full: &str, email: &str, phone: &str) -> Prepared {
        let c = Contact {
            full_name: Some(full.into()),
            emails: vec![email.into()],
            phones: vec![phone.into()],
            ..Contact::default()
        };
        Prepared::new(&c, Some("TW"))
    }

    #[test]
    fn pattern_round_trips() {
        let c = Comparison {
            levels: [1, 2, 3, 2, 1, 4, 0],
            swapped: false,
        };
        assert_eq!(Comparison::from_pattern(c.pattern()), c.levels);
        assert!(usize::try_from(c.pattern()).unwrap_or(usize::MAX) < Comparison::pattern_count());
    }

    #[test]
    fn compares_a_cjk_record_with_its_romanization() {
        let a = prep("陳大文", "taiman.chan@example.com", "0912-345-678");
        let b = prep(
            "Chan Tai Man",
            "TaiMan.Chan@Example.com",
            "+886 912 345 678",
        );
        let c = compare(&a, &b);
        assert_eq!(&c.levels[..4], &[1, 1, 0, 0]);
        assert_eq!(c.levels[4], 3, "no birth dates: missing");
    }

    #[test]
    fn length_bound_agrees_with_jaro_winkler() {
        let words = [
            "main street",
            "main st",
            "maine street",
            "1 main street apt 3",
            "x",
            "",
            "信義路3段",
            "信義路三段278號",
            "acme",
            "acme corp",
            "acmee",
        ];
        for a in words {
            for b in words {
                for t in [0.9, 0.92] {
                    assert_eq!(
                        jaro_winkler_at_least(a, b, t),
                        strsim::jaro_winkler(a, b) >= t,
                        "{a:?} {b:?} {t}"
                    );
                }
            }
        }
    }

    fn at(line1: &str, line2: &str, city: &str, postal: &str) -> Prepared {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let c = Contact {
            full_name: Some("x".into()),
            addresses: vec![synchub_core::model::Address {
                line1: some(line1),
                line2: some(line2),
                city: some(city),
                postal_code: some(postal),
                ..Default::default()
            }],
            ..Contact::default()
        };
        Prepared::new(&c, None)
    }

    #[test]
    fn addresses_compare_by_parts() {
        let level = |a: &Prepared, b: &Prepared| compare(a, b).levels[5];
        let home = at("12 High Street", "", "Leeds", "LS1 4AB");
        // Street / St, and the same parts: same.
        assert_eq!(level(&home, &at("12 High St", "", "Leeds", "LS14AB")), 0);
        // A typo in the street name, number missing on one side: close.
        let a = at("trainwr court", "sleepy pines", "eight mile plains", "2142");
        let b = at(
            "6 trainer court",
            "sleepy pines",
            "eight mile plains",
            "2125",
        );
        assert_eq!(level(&a, &b), 1);
        // Another house on the same street: the same area, not close.
        assert_eq!(
            level(&home, &at("14 High Street", "", "Leeds", "LS1 4AB")),
            2
        );
        // High Street in another town: different.
        assert_eq!(
            level(&home, &at("12 High Street", "", "York", "YO1 7HH")),
            3
        );
        // 路/號 written in simplified or traditional, with or without the city: same.
        let tw = at("台北市大安區復興南路一段12號", "", "", "106");
        assert_eq!(level(&tw, &at("復興南路1段12号", "", "", "106")), 0);
        // Nothing on one side: missing.
        assert_eq!(level(&home, &prep("x", "", "")), 4);
    }

    #[test]
    fn near_emails_are_close() {
        let a = prep("x", "jane.doe@example.com", "");
        let b = prep("x", "jane.deo@example.com", "");
        assert_eq!(compare(&a, &b).levels[2], 1);
    }

    #[test]
    fn emails_one_digit_apart_or_at_another_provider_are_different() {
        let a = prep("x", "user01@example.com", "");
        let b = prep("x", "user21@example.com", "");
        assert_eq!(compare(&a, &b).levels[2], 2, "another mailbox, not a typo");
        let a = prep("x", "jjefferies@sky.com", "");
        let b = prep("x", "jjefferies@yahoo.co.uk", "");
        assert_eq!(
            compare(&a, &b).levels[2],
            2,
            "a common handle at two providers"
        );
    }
}
