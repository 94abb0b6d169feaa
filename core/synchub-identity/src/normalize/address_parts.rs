//! An address line split into the parts that are compared one by one: the
//! house number, the street name (type abbreviated: Street/St, Road/Rd), and
//! what is left over (flat, floor, unit). Han lines are read the same way:
//! `台北市大安區復興南路一段12號5樓` has street `復興南路1段`, number `12`
//! (`号`/`號`, `臺`/`台` and Chinese numerals before `段` unified; a city or
//! district prefix dropped).

use super::address::normalize_address_line;
use super::is_han;

/// The compared parts of one address line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressParts {
    /// House number (`12`, `12a`).
    pub number: Option<String>,
    /// Street name with its type abbreviated (`nathan rd`, `復興南路1段`).
    pub street: Option<String>,
}

/// Unit and floor words after which a number is not the house number.
const UNIT_WORDS: &[&str] = &[
    "apt", "flt", "unit", "ste", "rm", "fl", "lot", "shop", "bldg", "suite",
];

/// Split a raw address line into parts.
pub fn address_parts(raw: &str) -> AddressParts {
    let line = normalize_address_line(raw);
    if line.chars().any(is_han) {
        return han_parts(&line);
    }
    let tokens: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
    let mut number = None;
    let mut street: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        let next = tokens.get(i + 1).copied();
        let is_num = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
        if UNIT_WORDS.contains(&t) && next.is_some_and(is_num) {
            i += 2;
            continue;
        }
        if is_num(t) && next == Some("f") {
            // 12/F: a floor.
            i += 2;
            continue;
        }
        if is_num(t) && t.ends_with('f') && t[..t.len() - 1].chars().all(|c| c.is_ascii_digit()) {
            // 5F: a floor.
            i += 1;
            continue;
        }
        if t == "no" && next.is_some_and(is_num) {
            number = next.map(str::to_string);
            i += 2;
            continue;
        }
        if is_num(t) {
            // In `3 12 smith st` (unit 3/12) the last number before the name is the house.
            if street.is_empty() {
                number = Some(t.to_string());
            }
            i += 1;
            continue;
        }
        street.push(t);
        i += 1;
    }
    AddressParts {
        number,
        street: (!street.is_empty()).then(|| street.join(" ")),
    }
}

fn han_parts(line: &str) -> AddressParts {
    let unified: String = line
        .chars()
        .map(|c| match c {
            '号' => '號',
            '臺' => '台',
            '区' => '區',
            '县' => '縣',
            c => c,
        })
        .collect();
    let chars: Vec<char> = unified.chars().collect();
    // Chinese numerals before 段 as digits: 一段 → 1段.
    let mut text = String::new();
    for (i, c) in chars.iter().enumerate() {
        let before_section = chars.get(i + 1) == Some(&'段');
        match (before_section, "一二三四五六七八九".find(*c)) {
            (true, Some(byte)) => text.push_str(&(byte / 3 + 1).to_string()),
            _ => text.push(*c),
        }
    }
    // Drop a city / district prefix: keep what follows the last 市, 區 or 縣.
    let start = text
        .char_indices()
        .rev()
        .find(|(_, c)| matches!(c, '市' | '區' | '縣'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let rest = &text[start..];
    // House number: the digits right before 號.
    let (street, number) = match rest.find('號') {
        Some(end) => {
            let head = &rest[..end];
            let digits_start = head
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_ascii_digit() || *c == '-')
                .last()
                .map_or(end, |(i, _)| i);
            (
                &head[..digits_start],
                Some(head[digits_start..].to_string()),
            )
        }
        None => (rest, None),
    };
    AddressParts {
        number: number.filter(|n| !n.is_empty()),
        street: (!street.is_empty()).then(|| street.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(n: Option<&str>, s: &str) -> AddressParts {
        AddressParts {
            number: n.map(str::to_string),
            street: Some(s.to_string()),
        }
    }

    #[test]
    fn western_lines_with_units_and_types() {
        assert_eq!(
            address_parts("12 High Street"),
            parts(Some("12"), "high st")
        );
        assert_eq!(address_parts("12 High St."), parts(Some("12"), "high st"));
        assert_eq!(
            address_parts("379 Lincoln Lane Apt 4"),
            parts(Some("379"), "lincoln ln")
        );
        assert_eq!(
            address_parts("Flat 5, 12/F, 88 Nathan Road"),
            parts(Some("88"), "nathan rd")
        );
        assert_eq!(
            address_parts("5F., No. 12, Fuxing S. Rd."),
            parts(Some("12"), "fuxing s rd")
        );
        assert_eq!(address_parts("trainer court"), parts(None, "trainer ct"));
    }

    #[test]
    fn han_lines_unify_variants_and_drop_the_city() {
        let want = parts(Some("12"), "復興南路1段");
        assert_eq!(address_parts("台北市大安區復興南路一段12號5樓"), want);
        assert_eq!(address_parts("臺北市大安区復興南路1段12号"), want);
        assert_eq!(address_parts("復興南路一段１２號"), want);
        assert_eq!(
            address_parts("朝阳区建国路88号"),
            parts(Some("88"), "建国路")
        );
    }
}
