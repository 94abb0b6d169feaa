//! Address normalization for comparison: case, punctuation, common street
//! abbreviations, and full-width forms. Storage keeps the cleaned original.

use synchub_core::model::Address;

use super::fold;

const ABBREVIATIONS: &[(&str, &str)] = &[
    ("street", "st"),
    ("road", "rd"),
    ("avenue", "ave"),
    ("av", "ave"),
    ("boulevard", "blvd"),
    ("drive", "dr"),
    ("lane", "ln"),
    ("court", "ct"),
    ("place", "pl"),
    ("square", "sq"),
    ("highway", "hwy"),
    ("building", "bldg"),
    ("floor", "fl"),
    ("apartment", "apt"),
    ("suite", "ste"),
    ("room", "rm"),
    ("section", "sec"),
    ("number", "no"),
    ("north", "n"),
    ("south", "s"),
    ("east", "e"),
    ("west", "w"),
    ("flat", "flt"),
    ("district", "dist"),
];

/// Normalize one address line: folded, punctuation removed, abbreviations
/// applied (`123 Main Street, Apt. 4` → `123 main st apt 4`). Han text keeps
/// its characters but loses spaces and punctuation.
pub fn normalize_address_line(raw: &str) -> String {
    let folded = fold(raw);
    let mut words = Vec::new();
    let mut cur = String::new();
    for c in folded.chars() {
        if c.is_alphanumeric() {
            cur.push(c);
        } else if !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mapped: Vec<&str> = words
        .iter()
        .map(|w| {
            ABBREVIATIONS
                .iter()
                .find(|(l, _)| l == w)
                .map_or(w.as_str(), |(_, s)| s)
        })
        .collect();
    if mapped.iter().any(|w| w.chars().any(super::is_han)) {
        mapped.concat()
    } else {
        mapped.join(" ")
    }
}

/// Normalize a postal code: ASCII letters and digits only, upper-case.
pub fn normalize_postal_code(raw: &str) -> String {
    super::clean_text(raw)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The comparison key of a whole address: line1 + line2 + postal code, or
/// `None` when it has no street line.
pub fn address_key(addr: &Address) -> Option<String> {
    let line1 = normalize_address_line(addr.line1.as_deref().unwrap_or(""));
    if line1.is_empty() {
        return None;
    }
    let line2 = normalize_address_line(addr.line2.as_deref().unwrap_or(""));
    let postal = normalize_postal_code(addr.postal_code.as_deref().unwrap_or(""));
    Some(format!("{line1}|{line2}|{postal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_case_and_punctuation() {
        assert_eq!(
            normalize_address_line("123 Main Street, Apt. 4"),
            "123 main st apt 4"
        );
        assert_eq!(
            normalize_address_line("123  MAIN ST apt 4"),
            "123 main st apt 4"
        );
        assert_eq!(
            normalize_address_line("Flat 5, 10/F, Nathan Road"),
            "flt 5 10 f nathan rd"
        );
    }

    #[test]
    fn cjk_addresses_lose_spaces_and_full_width() {
        assert_eq!(
            normalize_address_line("台北市 信義路五段７號"),
            "台北市信義路五段7號"
        );
    }

    #[test]
    fn postal_codes_and_keys() {
        assert_eq!(normalize_postal_code(" sw1a 1aa "), "SW1A1AA");
        let a = Address {
            line1: Some("1 Main Street".into()),
            postal_code: Some("10001".into()),
            ..Address::default()
        };
        assert_eq!(address_key(&a).as_deref(), Some("1 main st||10001"));
        assert_eq!(address_key(&Address::default()), None);
    }
}
