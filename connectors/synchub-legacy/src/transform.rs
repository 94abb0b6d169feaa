//! Value transforms applied while mapping: names, phones, emails, dates,
//! amounts, booleans and HTML entities.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;

/// Chinese compound (two-character) family names, Traditional and Simplified.
pub const COMPOUND_SURNAMES: &[&str] = &[
    "歐陽", "欧阳", "司馬", "司马", "上官", "諸葛", "诸葛", "東方", "东方", "皇甫", "尉遲", "尉迟",
    "公孫", "公孙", "慕容", "長孫", "长孙", "夏侯", "軒轅", "轩辕", "令狐", "端木", "司徒", "申屠",
    "鍾離", "钟离", "宇文", "張簡", "张简", "范姜", "西門", "西门", "南宮", "南宫", "獨孤", "独孤",
    "澹臺", "澹台", "呼延", "赫連", "赫连",
];

/// A CJK ideograph (unified, extension A, compatibility).
fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// True when the text has a Han character.
pub fn has_han(s: &str) -> bool {
    s.chars().any(is_han)
}

/// Splits a full name into `(given, family)`.
///
/// CJK names without spaces put the family name first: one character, or two
/// for the compound surnames in [`COMPOUND_SURNAMES`]. `Family, Given` is
/// honoured; otherwise Western order (`Given … Family`). A CJK name written
/// with a space (`陳 大文`) keeps family-first order.
pub fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    if full.is_empty() {
        return (None, None);
    }
    if let Some((family, given)) = full.split_once([',', '，']) {
        return (non_empty(given), non_empty(family));
    }
    let parts: Vec<&str> = full.split_whitespace().collect();
    if parts.len() == 1 {
        let name = parts[0];
        let chars: Vec<char> = name.chars().collect();
        if chars.len() >= 2 && chars.iter().all(|c| is_han(*c) || *c == '·') {
            let family_len =
                if chars.len() >= 3 && COMPOUND_SURNAMES.iter().any(|s| name.starts_with(s)) {
                    2
                } else {
                    1
                };
            let family: String = chars[..family_len].iter().collect();
            let given: String = chars[family_len..].iter().collect();
            return (non_empty(&given), Some(family));
        }
        return (Some(name.to_string()), None);
    }
    if parts[0].chars().all(is_han) {
        return (non_empty(&parts[1..].join("")), Some(parts[0].to_string()));
    }
    let (family, given) = parts
        .split_last()
        .map(|(f, g)| (*f, g.join(" ")))
        .unwrap_or_default();
    (non_empty(&given), non_empty(family))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Full-width ASCII (`０９１２－３４５`, ideographic space) to half-width.
pub fn half_width(s: &str) -> String {
    s.chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        })
        .collect()
}

pub use crate::phone::{country_region, normalize_phone, parse_region};

/// Trims and lower-cases an email; `None` when it has no `local@domain` shape.
pub fn normalize_email(raw: &str) -> Option<String> {
    let e = half_width(raw)
        .trim()
        .trim_matches(['<', '>'])
        .to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(char::is_whitespace)
        && !domain.contains('@');
    ok.then_some(e)
}

/// A web domain from a website value (`https://www.Acme.com.tw/about` → `acme.com.tw`).
pub fn domain_of(website: &str) -> Option<String> {
    let w = website.trim().to_ascii_lowercase();
    let w = w.split_once("://").map_or(w.as_str(), |(_, rest)| rest);
    let host = w.split(['/', '?', '#', ':']).next().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    (host.contains('.') && !host.contains(char::is_whitespace)).then(|| host.to_string())
}

/// Truthy legacy flags: `true`, `1`, `yes`, `y`, `x`, `是`.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "x" | "t" | "是" | "on" => Some(true),
        "false" | "0" | "no" | "n" | "f" | "否" | "off" | "" => Some(false),
        _ => None,
    }
}

/// An amount: `1,234.50`, `NT$120,000`, `1.5E6`. `None` when it is not a number.
pub fn parse_decimal(raw: &str) -> Option<Decimal> {
    let cleaned: String = half_width(raw)
        .chars()
        .filter(|c| !matches!(c, ',' | ' ' | '_' | '$'))
        .collect();
    let cleaned = cleaned.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    if cleaned.is_empty() {
        return None;
    }
    cleaned
        .parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(cleaned).ok())
}

/// A date: ISO `2024-05-15`, `2024/5/15`, US `5/15/2024`, or the date part of a datetime.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    let head = s.split(['T', ' ']).next().unwrap_or(s);
    ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d.%m.%Y", "%Y%m%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(head, f).ok())
}

/// A datetime; values without an offset are taken as UTC (what Salesforce
/// and SuiteCRM store). A bare date is midnight UTC.
pub fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let s = s.trim_end_matches('Z');
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%Y %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc())
    .or_else(|| {
        parse_date(s)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    })
}

/// Undoes the HTML escaping SuiteCRM applies to stored text
/// (`&amp;`, `&#039;`, `&quot;`, `&lt;`, `&gt;`, numeric entities).
pub fn unescape_html(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let decoded = tail.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &tail[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "nbsp" => Some('\u{a0}'),
                _ => entity.strip_prefix('#').and_then(|n| {
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => n.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (Option<&str>, Option<&str>) {
        let (g, f) = split_name(s);
        (
            g.map(|g| &*Box::leak(g.into_boxed_str())),
            f.map(|f| &*Box::leak(f.into_boxed_str())),
        )
    }

    #[test]
    fn names_split_family_first_for_cjk() {
        assert_eq!(split("陳大文"), (Some("大文"), Some("陳")));
        assert_eq!(split("歐陽娜娜"), (Some("娜娜"), Some("歐陽")));
        assert_eq!(split("司马光"), (Some("光"), Some("司马")));
        assert_eq!(split("陳 大文"), (Some("大文"), Some("陳")));
        assert_eq!(split("王菲"), (Some("菲"), Some("王")));
        assert_eq!(
            split("Mary Jane Watson"),
            (Some("Mary Jane"), Some("Watson"))
        );
        assert_eq!(split("Chan, Tai Man"), (Some("Tai Man"), Some("Chan")));
        assert_eq!(split("Madonna"), (Some("Madonna"), None));
    }

    #[test]
    fn phones_in_many_formats_normalize() {
        let tw = parse_region("TW");
        let cases = [
            ("0912-345-678", "+886912345678"),
            ("(02)2345-6789", "+886223456789"),
            ("+886 2 2345 6789", "+886223456789"),
            ("886912345678", "+886912345678"),
            ("０９１２－３４５－６７８", "+886912345678"),
            ("+852 9123 4567", "+85291234567"),
            ("(852) 91234567", "+85291234567"),
            ("0086 138 0013 8000", "+8613800138000"),
            ("+86 138-0013-8000", "+8613800138000"),
            ("02 2345 6789 #123", "+886223456789;ext=123"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_phone(raw, tw).as_deref(), Some(want), "{raw}");
        }
        assert_eq!(normalize_phone("n/a", tw), None);
        assert_eq!(normalize_phone("12", tw), None);
    }

    #[test]
    fn other_values_parse() {
        assert_eq!(
            normalize_email(" Tai.Man@Example.HK ").as_deref(),
            Some("tai.man@example.hk")
        );
        assert_eq!(normalize_email("not an email"), None);
        assert_eq!(
            domain_of("https://www.Acme.com.tw/about").as_deref(),
            Some("acme.com.tw")
        );
        assert_eq!(
            parse_decimal("NT$120,000")
                .map(|d| d.to_string())
                .as_deref(),
            Some("120000")
        );
        assert_eq!(parse_decimal("about 1M"), None);
        assert_eq!(
            parse_decimal("1.5E3")
                .map(|d| d.normalize().to_string())
                .as_deref(),
            Some("1500")
        );
        assert_eq!(
            parse_date("5/15/2024").map(|d| d.to_string()).as_deref(),
            Some("2024-05-15")
        );
        let t = parse_datetime("2024-05-15T09:30:00.000Z").expect("datetime");
        assert_eq!(t.to_rfc3339(), "2024-05-15T09:30:00+00:00");
        assert!(parse_datetime("3/15/2024 2:30 PM").is_some());
        assert_eq!(
            unescape_html("VIP &amp; friend&#039;s &quot;x&quot; &bogus"),
            "VIP & friend's \"x\" &bogus"
        );
    }
}
