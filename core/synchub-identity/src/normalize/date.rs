//! Birth dates as CRM exports write them: ISO and other year-first forms,
//! `YYYYMMDD`, `DD/MM/YYYY` or `MM/DD/YYYY` (chosen by which reading is a
//! valid date, then by the record's region), 民國 (Republic of China) years
//! (`79/05/12`, `民國79年5月12日`), two-digit years, and month names
//! (`12 May 1979`, `May 12, 1979`, `12-May-79`).

use chrono::NaiveDate;

use super::clean_text;

/// Regions that write day and month as `MM/DD/YYYY`. Everyone else who
/// writes the year last puts the day first.
const MONTH_FIRST: &[&str] = &["US", "PH", "FM", "MH", "PW", "AS", "GU", "PR", "VI", "UM"];

/// Two-digit years at or below this are read as 20yy, above as 19yy.
/// (A birth date is in the past; a CRM holds few people over 100.)
const TWO_DIGIT_PIVOT: i32 = 25;

/// 民國 year 1 is 1912.
const ROC_OFFSET: i32 = 1911;

/// Parse a birth date written in any common form; `region` is the ISO
/// 3166-1 alpha-2 code of the record's country (or the run's default), used
/// only when both day-first and month-first readings are valid (without a
/// region such a date is refused), and to read
/// a two- or three-digit leading year as a 民國 year in Taiwan.
pub fn parse_birth_date(raw: &str, region: Option<&str>) -> Option<NaiveDate> {
    let s = clean_text(raw);
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    // Keep only the date part of a timestamp (`1979-05-12T00:00:00Z`, `1979-05-12 00:00`).
    let s = s
        .split_once('T')
        .filter(|(d, _)| d.len() >= 8 && d.starts_with(|c: char| c.is_ascii_digit()))
        .map_or(s, |(d, _)| d);
    let s = s
        .split_once(' ')
        .filter(|(_, t)| t.contains(':'))
        .map_or(s, |(d, _)| d);
    let roc = s.starts_with("民國") || s.starts_with("民国");
    let body = s
        .trim_start_matches("民國")
        .trim_start_matches("民国")
        .trim();
    if let Some(d) = parse_numeric(body, region, roc) {
        return Some(d);
    }
    parse_month_name(body)
}

fn parse_numeric(s: &str, region: Option<&str>, roc: bool) -> Option<NaiveDate> {
    let groups: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let only_digits_and_separators = s.chars().all(|c| {
        c.is_ascii_digit() || matches!(c, '/' | '-' | '.' | ' ' | '年' | '月' | '日' | ',')
    });
    if !only_digits_and_separators {
        return None;
    }
    let num = |g: &str| g.parse::<i32>().ok();
    let ymd = |y: i32, m: i32, d: i32| {
        NaiveDate::from_ymd_opt(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)
    };
    match groups.as_slice() {
        [one] if one.len() == 8 => {
            let (y, m, d) = (num(&one[..4])?, num(&one[4..6])?, num(&one[6..])?);
            ymd(y, m, d).or_else(|| {
                // DDMMYYYY
                let (d, m, y) = (num(&one[..2])?, num(&one[2..4])?, num(&one[4..])?);
                ymd(y, m, d)
            })
        }
        [one] if one.len() == 7 && (roc || region == Some("TW")) => {
            // 0790512: a 民國 year in three digits.
            ymd(
                num(&one[..3])? + ROC_OFFSET,
                num(&one[3..5])?,
                num(&one[5..])?,
            )
        }
        [a, b, c] => {
            let (x, y, z) = (num(a)?, num(b)?, num(c)?);
            if a.len() == 4 {
                return ymd(x, y, z);
            }
            let taiwan = roc || region == Some("TW");
            if taiwan && a.len() <= 3 && c.len() <= 2 {
                // 79/05/12 or 079/05/12 in Taiwan: 民國 year first.
                if let Some(d) = ymd(x + ROC_OFFSET, y, z) {
                    return Some(d);
                }
            }
            let year = match c.len() {
                4 => z,
                2 if z <= TWO_DIGIT_PIVOT => 2000 + z,
                2 => 1900 + z,
                _ => return None,
            };
            let day_first = ymd(year, y, x);
            let month_first = ymd(year, x, y);
            match (day_first, month_first) {
                (Some(d), None) | (None, Some(d)) => Some(d),
                (Some(d), Some(m)) if d == m => Some(d),
                // Both readings valid: the region decides; without one the
                // date is refused rather than guessed.
                (Some(d), Some(m)) => region.map(|r| if MONTH_FIRST.contains(&r) { m } else { d }),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

fn parse_month_name(s: &str) -> Option<NaiveDate> {
    let cleaned: String = s.replace([',', '.'], " ");
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    const FORMATS: &[&str] = &[
        "%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%d-%b-%Y", "%d-%B-%Y", "%Y-%b-%d",
    ];
    if let Some(d) = FORMATS
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(&cleaned, f).ok())
        .filter(|d| chrono::Datelike::year(d) >= 1000)
    {
        return Some(d);
    }
    // 12-May-79 / 12 May 79: two-digit year with the pivot.
    for f in ["%d-%b-%y", "%d %b %y", "%d-%B-%y", "%d %B %y"] {
        if let Ok(d) = NaiveDate::parse_from_str(&cleaned, f) {
            use chrono::Datelike;
            let yy = d.year() % 100;
            let year = if yy <= TWO_DIGIT_PIVOT {
                2000 + yy
            } else {
                1900 + yy
            };
            return d.with_year(year);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }

    #[test]
    fn year_first_forms() {
        for s in [
            "1979-05-12",
            "1979/5/12",
            "1979.05.12",
            "19790512",
            "1979年5月12日",
            "１９７９－０５－１２",
            "1979-05-12T00:00:00Z",
            "1979-05-12 08:00:00",
        ] {
            assert_eq!(parse_birth_date(s, None), d(1979, 5, 12), "{s}");
        }
    }

    #[test]
    fn day_and_month_order_by_validity_then_region() {
        // Only one reading valid: region does not matter.
        assert_eq!(parse_birth_date("15/11/1956", Some("US")), d(1956, 11, 15));
        assert_eq!(parse_birth_date("11/15/1956", Some("GB")), d(1956, 11, 15));
        // Both valid: the region decides.
        assert_eq!(parse_birth_date("03/12/1980", Some("US")), d(1980, 3, 12));
        assert_eq!(parse_birth_date("03/12/1980", Some("GB")), d(1980, 12, 3));
        assert_eq!(parse_birth_date("03/12/1980", Some("HK")), d(1980, 12, 3));
        assert_eq!(parse_birth_date("03.12.1980", Some("AU")), d(1980, 12, 3));
        assert_eq!(parse_birth_date("31/02/1980", Some("GB")), None);
        assert_eq!(
            parse_birth_date("03/12/1980", None),
            None,
            "ambiguous, no region"
        );
    }

    #[test]
    fn minguo_years() {
        assert_eq!(parse_birth_date("79/05/12", Some("TW")), d(1990, 5, 12));
        assert_eq!(parse_birth_date("079/05/12", Some("TW")), d(1990, 5, 12));
        assert_eq!(parse_birth_date("民國79年5月12日", None), d(1990, 5, 12));
        assert_eq!(parse_birth_date("民国79/5/12", None), d(1990, 5, 12));
        assert_eq!(parse_birth_date("0790512", Some("TW")), d(1990, 5, 12));
    }

    #[test]
    fn two_digit_years_and_month_names() {
        assert_eq!(parse_birth_date("12/05/79", Some("GB")), d(1979, 5, 12));
        assert_eq!(parse_birth_date("05/12/79", Some("US")), d(1979, 5, 12));
        assert_eq!(parse_birth_date("12/05/03", Some("AU")), d(2003, 5, 12));
        assert_eq!(parse_birth_date("12 May 1979", None), d(1979, 5, 12));
        assert_eq!(parse_birth_date("May 12, 1979", None), d(1979, 5, 12));
        assert_eq!(parse_birth_date("12-May-79", None), d(1979, 5, 12));
        assert_eq!(parse_birth_date("not a date", None), None);
    }
}
