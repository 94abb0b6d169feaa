//! Phone numbers to E.164: libphonenumber (the `phonenumber` crate) with a
//! cache of verdicts per number shape, because a migration normalizes
//! millions of numbers.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use phonenumber::country::Id as Region;
use phonenumber::Mode;

use crate::transform::half_width;

/// Parses a region code (`TW`, `hk`) for phone normalization.
pub fn parse_region(code: &str) -> Option<Region> {
    code.trim().to_ascii_uppercase().parse().ok()
}

/// The phone region of a country as legacy data spells it
/// (`Taiwan`, `台灣`, `Taiwan, R.O.C.`, `HK`, `香港`, `中国`, `PRC`, or any ISO code).
pub fn country_region(country: &str) -> Option<Region> {
    let c = half_width(country).trim().to_lowercase();
    let code = match c.as_str() {
        "taiwan" | "台灣" | "臺灣" | "台湾" | "taiwan, r.o.c." | "roc" | "r.o.c." | "中華民國" => {
            "TW"
        }
        "hong kong" | "hongkong" | "香港" | "hong kong sar" => "HK",
        "china" | "中国" | "中國" | "prc" | "p.r.c." | "mainland china" => "CN",
        "macau" | "macao" | "澳門" | "澳门" => "MO",
        "singapore" | "新加坡" => "SG",
        "usa" | "united states" | "united states of america" | "美國" | "美国" => "US",
        "japan" | "日本" => "JP",
        other if other.len() == 2 && other.is_ascii() => return parse_region(other),
        _ => return None,
    };
    parse_region(code)
}

/// Normalizes a phone number to E.164 using `region` for national numbers.
///
/// Handles full-width digits, `00`/`0086`-style international prefixes,
/// country codes written without `+` (`886912…`, `(852) 9123…`) and
/// extensions (`#123`, `ext. 123`, kept as `;ext=123`). Returns `None`
/// when no valid number can be read; the caller keeps the text as written.
pub fn normalize_phone(raw: &str, region: Option<Region>) -> Option<String> {
    let text = half_width(raw);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let (number, ext) = match lower.find(['#', 'x', 'e']) {
        Some(i) if lower[..i].chars().filter(char::is_ascii_digit).count() >= 6 => {
            let ext: String = lower[i..].chars().filter(char::is_ascii_digit).collect();
            (&text[..i], (!ext.is_empty()).then_some(ext))
        }
        _ => (text, None),
    };
    let plus = number.trim_start().starts_with('+');
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 || digits.len() > 17 {
        return None;
    }
    let mut candidates = Vec::with_capacity(3);
    if plus {
        candidates.push(format!("+{digits}"));
    } else {
        candidates.push(digits.clone());
        if let Some(rest) = digits.strip_prefix("00") {
            candidates.push(format!("+{rest}"));
        }
        if digits.len() >= 10 && !digits.starts_with('0') {
            candidates.push(format!("+{digits}"));
        }
    }
    for candidate in candidates {
        if !candidate.starts_with('+') && region.is_none() {
            continue;
        }
        if let Some(e164) = e164_of(&candidate, region) {
            return Some(match &ext {
                Some(ext) => format!("{e164};ext={ext}"),
                None => e164,
            });
        }
    }
    None
}

/// Trailing digits left out of a number's shape: libphonenumber's ranges
/// are blocks of numbers that share everything but (at least) the last four
/// digits, so numbers that differ only there have the same verdict.
const FREE_TAIL: usize = 4;

/// What libphonenumber said about the first number of one shape: the
/// country code and how many leading digits to drop to get the national number.
#[derive(Clone, Copy)]
struct Verdict {
    country_code: u16,
    strip: usize,
}

type Shape = (Option<Region>, bool, usize, String);

/// Verdicts by shape (region, `+`, length, all digits but the last four). libphonenumber
/// is exact but slow (tens of microseconds a number, its regex cache holds
/// 100 patterns); a migration sees millions of numbers in a few thousand
/// shapes, so each shape is validated once and later numbers of the same
/// shape are formatted directly. Only valid verdicts are kept; the
/// `phone_shapes_agree_with_libphonenumber` test checks the shortcut.
static VERDICTS: LazyLock<Mutex<HashMap<Shape, Verdict>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// `candidate` (digits, `+` in front when international) in E.164, if valid.
fn e164_of(candidate: &str, region: Option<Region>) -> Option<String> {
    let plus = candidate.starts_with('+');
    let digits = candidate.trim_start_matches('+');
    let head = &digits[..digits.len().saturating_sub(FREE_TAIL)];
    let shape: Shape = (
        if plus { None } else { region },
        plus,
        digits.len(),
        head.to_string(),
    );
    if let Ok(verdicts) = VERDICTS.lock() {
        if let Some(v) = verdicts.get(&shape) {
            return Some(format!("+{}{}", v.country_code, &digits[v.strip..]));
        }
    }
    let parsed = phonenumber::parse(if plus { None } else { region }, candidate).ok()?;
    if !phonenumber::is_valid(&parsed) {
        return None;
    }
    let e164 = parsed.format().mode(Mode::E164).to_string();
    let national = parsed.national().to_string();
    if digits.ends_with(&national) && !national.starts_with('0') {
        let verdict = Verdict {
            country_code: parsed.code().value(),
            strip: digits.len() - national.len(),
        };
        if let Ok(mut verdicts) = VERDICTS.lock() {
            if verdicts.len() > 500_000 {
                verdicts.clear();
            }
            verdicts.insert(shape, verdict);
        }
    }
    Some(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_shapes_agree_with_libphonenumber() {
        // Numbers of many blocks, each block seen twice: the second answer
        // comes from the verdict cache and must equal libphonenumber's own.
        let region = parse_region("TW");
        let mut checked = 0;
        for block in 0..3000u64 {
            for (prefix, width) in [
                ("09", 8),
                ("02", 8),
                ("+852", 8),
                ("+8613", 9),
                ("+8869", 8),
                ("0", 9),
            ] {
                let head = (block * 7919) % 10u64.pow(width - 4);
                for tail in [1234u64, 9876] {
                    let n = format!("{prefix}{head:0w$}{tail:04}", w = (width - 4) as usize);
                    let plus = n.starts_with('+');
                    let direct = phonenumber::parse(if plus { None } else { region }, &n)
                        .ok()
                        .filter(phonenumber::is_valid)
                        .map(|p| p.format().mode(Mode::E164).to_string());
                    assert_eq!(e164_of(&n, region), direct, "{n}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 36_000);
    }
}
