//! Normalizers for the fields identity resolution compares: emails, phones,
//! person names, addresses and companies. Each is a pure function of its input.

pub mod address;
pub mod address_parts;
pub mod company;
pub mod country;
pub mod date;
pub mod email;
pub mod name;
pub mod phone;
pub mod romanize;

use unicode_normalization::UnicodeNormalization;

/// NFKC-normalize and trim, collapsing runs of white space to one space.
/// Full-width letters and digits become ASCII; ideographic spaces become spaces.
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfkc() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// [`clean_text`], lower-cased, with Latin diacritics removed (`José` → `jose`).
pub fn fold(s: &str) -> String {
    let cleaned = clean_text(s);
    if cleaned.is_ascii() {
        return cleaned.to_ascii_lowercase();
    }
    cleaned
        .nfkd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .nfc()
        .flat_map(char::to_lowercase)
        .collect()
}

/// True for characters of the CJK unified ideograph blocks.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_folds_full_width_and_spaces() {
        assert_eq!(clean_text("  ＡＢＣ\u{3000}１２３  "), "ABC 123");
        assert_eq!(clean_text("a \t\n b"), "a b");
        assert_eq!(clean_text(""), "");
    }

    #[test]
    fn fold_strips_diacritics_and_case() {
        assert_eq!(fold("José ÅNGSTRÖM"), "jose angstrom");
        assert_eq!(fold("陳大文"), "陳大文");
    }
}
