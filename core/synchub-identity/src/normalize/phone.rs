//! Phone normalization to E.164 with the `phonenumber` crate (libphonenumber
//! metadata), plus the ways numbers are really written in Taiwan, Hong Kong and
//! mainland China: full-width digits, `0086`/`00886` prefixes (the `00`
//! international prefix is not the IDD of every region), a country code
//! written without `+` (`86-138 0013 8000`), and a trunk zero kept after the
//! country code (`+886 0912 345 678`).

use phonenumber::country;

use super::clean_text;

/// Normalize a phone number to E.164 (`+886912345678`). `default_region` is an
/// ISO 3166-1 alpha-2 code used for numbers written without a country code.
/// `None` when the text is not a valid number.
pub fn normalize_phone(raw: &str, default_region: Option<&str>) -> Option<String> {
    widen_regex_cache();
    let cleaned = clean_text(raw);
    // Cut extensions: "x123", "ext. 12", "#12", "轉12".
    let main = cut_extension(&cleaned);
    let plus = main.trim_start().starts_with('+');
    let digits: String = main.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 || digits.len() > 17 {
        return None;
    }
    let region =
        default_region.and_then(|r| r.trim().to_ascii_uppercase().parse::<country::Id>().ok());
    if plus {
        return parse_valid(None, &format!("+{digits}"));
    }
    if let Some(intl) = digits.strip_prefix("00") {
        if let Some(n) = parse_valid(None, &format!("+{intl}")) {
            return Some(n);
        }
    }
    if region.is_some() {
        if let Some(n) = parse_valid(region, &digits) {
            return Some(n);
        }
    }
    // A country code written without "+", e.g. "86-138 0013 8000" or "852 9123 4567".
    if digits.starts_with('0') {
        return None;
    }
    let e164 = parse_valid(None, &format!("+{digits}"))?;
    if region.is_none() || written_country_code(main, &e164) {
        return Some(e164);
    }
    // The number is not valid where the record says it is, and nothing in
    // how it is written marks a country code: reading its first digits as
    // one would turn `(490) 299-2014` in Singapore into a German number.
    None
}

/// The `phonenumber` crate compiles its metadata's patterns on use into one
/// process-wide cache of 100 regular expressions behind a mutex. A batch
/// mixing a few regions needs more than that, so every lookup recompiled a
/// pattern while holding the mutex: at a million rows that was most of the
/// matcher's CPU time and kept the phone work on one core. Room for every
/// pattern of the regions in use makes each a single compile.
fn widen_regex_cache() {
    static WIDEN: std::sync::Once = std::sync::Once::new();
    WIDEN.call_once(|| {
        if let Ok(mut cache) = phonenumber::metadata::DATABASE.cache().lock() {
            cache.set_capacity(REGEX_CACHE);
        }
    });
}

/// Compiled patterns kept (the metadata of all regions has a few thousand).
const REGEX_CACHE: usize = 8192;

/// True when the first group of digits as written (`86-138…`, `(852) 9123…`,
/// `886 912…`) is exactly the country code of `e164`.
fn written_country_code(written: &str, e164: &str) -> bool {
    let first: String = written
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let all_digits = written.chars().filter(char::is_ascii_digit).count();
    (1..=3).contains(&first.len())
        && first.len() < all_digits
        && phonenumber::parse(None, e164).is_ok_and(|n| n.code().value().to_string() == first)
}

fn cut_extension(s: &str) -> &str {
    let lower_idx = ["ext", "x", "#", "轉", "分機"]
        .iter()
        .filter_map(|m| find_ascii_ci(s, m))
        .min();
    match lower_idx {
        Some(i) if i > 0 => &s[..i],
        _ => s,
    }
}

fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    if needle.is_ascii() {
        hay.to_ascii_lowercase().find(needle)
    } else {
        hay.find(needle)
    }
}

fn parse_valid(region: Option<country::Id>, text: &str) -> Option<String> {
    let number = phonenumber::parse(region, text).ok()?;
    // E.164 is `+`, the country code and the national number (with any
    // leading zeros it keeps, as in Italy); writing it directly skips the
    // crate's general formatter, a tenth of the cost of a phone.
    phonenumber::is_valid(&number).then(|| {
        let national = number.national();
        let zeros = "0".repeat(usize::from(national.zeros()));
        format!("+{}{zeros}{}", number.code().value(), national.value())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str, region: Option<&str>) -> Option<String> {
        normalize_phone(raw, region)
    }

    #[test]
    fn taiwan_numbers() {
        assert_eq!(
            p("０９１２-３４５-６７８", Some("TW")).as_deref(),
            Some("+886912345678")
        );
        assert_eq!(
            p("(02) 2345-6789", Some("TW")).as_deref(),
            Some("+886223456789")
        );
        assert_eq!(
            p("+886 0912 345 678", None).as_deref(),
            Some("+886912345678")
        );
        assert_eq!(
            p("+886-912-345-678", Some("HK")).as_deref(),
            Some("+886912345678")
        );
        assert_eq!(
            p("00886 912 345 678", Some("HK")).as_deref(),
            Some("+886912345678")
        );
        assert_eq!(p("886912345678", None).as_deref(), Some("+886912345678"));
    }

    #[test]
    fn hong_kong_numbers() {
        assert_eq!(p("+852 9123 4567", None).as_deref(), Some("+85291234567"));
        assert_eq!(p("9123 4567", Some("HK")).as_deref(), Some("+85291234567"));
        assert_eq!(
            p("(852) 9123-4567", Some("TW")).as_deref(),
            Some("+85291234567")
        );
    }

    #[test]
    fn mainland_numbers() {
        assert_eq!(
            p("86-138 0013 8000", None).as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            p("86-138 0013 8000", Some("CN")).as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            p("0086 138 0013 8000", Some("TW")).as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            p("0086 138 0013 8000", Some("CN")).as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            p("138-0013-8000", Some("CN")).as_deref(),
            Some("+8613800138000")
        );
    }

    #[test]
    fn trunk_zeros_after_the_country_code_are_dropped() {
        // Taiwan: mobile and Taipei landline, with and without the trunk 0.
        for raw in [
            "+886 0912 345 678",
            "+886 912 345 678",
            "+886 (0)912-345-678",
        ] {
            assert_eq!(p(raw, None).as_deref(), Some("+886912345678"), "{raw}");
        }
        for raw in [
            "+886 02 2345 6789",
            "+886 2 2345 6789",
            "00886 (0)2-2345-6789",
        ] {
            assert_eq!(p(raw, None).as_deref(), Some("+886223456789"), "{raw}");
        }
        // Mainland: Shanghai landline written with its trunk 0 after +86, and nationally.
        for raw in [
            "+86 021 6288 8888",
            "+86 21 6288 8888",
            "0086 (0)21-62888888",
        ] {
            assert_eq!(p(raw, None).as_deref(), Some("+862162888888"), "{raw}");
        }
        assert_eq!(
            p("021-6288-8888", Some("CN")).as_deref(),
            Some("+862162888888")
        );
        assert_eq!(
            p("+86 0138 0013 8000", None).as_deref(),
            Some("+8613800138000")
        );
        // Hong Kong has no trunk prefix: a landline with and without the country code.
        assert_eq!(p("+852 2123 4567", None).as_deref(), Some("+85221234567"));
        assert_eq!(p("2123 4567", Some("HK")).as_deref(), Some("+85221234567"));
    }

    #[test]
    fn full_width_digits_and_signs() {
        assert_eq!(
            p("＋８５２　９１２３　４５６７", None).as_deref(),
            Some("+85291234567")
        );
        assert_eq!(
            p("（８６）１３８－００１３－８０００", None).as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            p("＋８８６　０９１２－３４５－６７８", Some("TW")).as_deref(),
            Some("+886912345678")
        );
    }

    #[test]
    fn extensions_are_cut() {
        assert_eq!(
            p("+1 650-253-0000 ext. 12", None).as_deref(),
            Some("+16502530000")
        );
        assert_eq!(
            p("(02) 2345-6789 轉 301", Some("TW")).as_deref(),
            Some("+886223456789")
        );
    }

    #[test]
    fn e164_matches_the_crate_formatter() {
        for raw in [
            "+39 06 1234 5678",
            "+886 2 2345 6789",
            "+852 2123 4567",
            "+1 212 555 0100",
        ] {
            let n = phonenumber::parse(None, raw).ok();
            let expected = n.map(|n| n.format().mode(phonenumber::Mode::E164).to_string());
            assert_eq!(p(raw, None), expected, "{raw}");
        }
        assert_eq!(
            p("+39 06 1234 5678", None).as_deref(),
            Some("+390612345678")
        );
    }

    #[test]
    fn a_number_invalid_for_its_region_is_never_read_as_another_country() {
        // Neither is valid where the record says it is; read from their
        // first digits they would be German and US numbers.
        assert_eq!(p("(490) 299-2014", Some("SG")), None);
        assert_eq!(p("154-1239-1594", Some("CN")), None);
        // A country code written as its own group is still read as one.
        assert_eq!(
            p("852 9123 4567", Some("TW")).as_deref(),
            Some("+85291234567")
        );
        assert_eq!(
            p("86-138 0013 8000", Some("HK")).as_deref(),
            Some("+8613800138000")
        );
        // Without any region the digits are all there is to go on.
        assert_eq!(p("886912345678", None).as_deref(), Some("+886912345678"));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(p("", Some("TW")), None);
        assert_eq!(p("n/a", Some("TW")), None);
        assert_eq!(p("12345", Some("TW")), None);
        assert_eq!(
            p("0912-345-678", None),
            None,
            "national number without a region"
        );
        assert_eq!(p("+886 12", None), None);
    }
}
