//! Writing a person as one source row, with the corruption real CRM exports
//! show: typos and transpositions, missing fields, swapped first/last names,
//! nicknames and initials, CJK names with and without romanization, phone and
//! email format variants, full-width characters.

use super::people::{Name, Person, Region};
use super::rng::Rng;
use super::tables::{HAN_GIVEN, HAN_SURNAMES, WESTERN_FAMILY, WESTERN_GIVEN};

/// Render one row (values in `COLUMNS` order without `entity`; `id` left empty).
pub fn render(rng: &mut Rng, p: &Person) -> [String; 12] {
    let mut v: [String; 12] = Default::default();
    let (first, last, full) = render_name(rng, p);
    (v[1], v[2], v[3]) = (first, last, full);
    if rng.chance(0.75) {
        let e = if p.emails.len() > 1 && rng.chance(0.4) {
            &p.emails[1]
        } else {
            &p.emails[0]
        };
        v[4] = email_variant(rng, e);
    }
    if rng.chance(0.7) {
        let (cc, nsn) = match &p.landline {
            Some(l) if rng.chance(0.4) => l.clone(),
            _ => p.mobile.clone(),
        };
        v[5] = phone_variant(rng, p.region, cc, &nsn);
    }
    if let Some(c) = p.company.filter(|_| rng.chance(0.5)) {
        let suffix = if c.is_ascii() {
            *rng.pick(&["", " Inc", " Ltd.", " Co., Ltd.", " LIMITED"])
        } else {
            *rng.pick(&["", "有限公司", "股份有限公司"])
        };
        v[6] = format!("{c}{suffix}");
    }
    if rng.chance(0.6) {
        let (line, city, postal, country) = &p.address;
        v[7] = address_variant(rng, line);
        v[8] = city.clone();
        v[9] = if rng.chance(0.8) {
            postal.clone()
        } else {
            String::new()
        };
        v[10] = (*country).to_string();
    }
    if let Some(d) = p.birth_date.filter(|_| rng.chance(0.55)) {
        let d = if rng.chance(0.03) {
            d.with_day(1 + (d.day() % 28)).unwrap_or(d)
        } else {
            d
        };
        v[11] = if rng.chance(0.7) {
            d.format("%Y-%m-%d").to_string()
        } else {
            d.format("%Y/%-m/%-d").to_string()
        };
    }
    v
}

use chrono::Datelike;

fn render_name(rng: &mut Rng, p: &Person) -> (String, String, String) {
    let (mut given, mut family, han) = match &p.name {
        Name::Han { family, given } if rng.chance(0.45) => {
            let simp = (p.region == Region::Cn) != rng.chance(0.1);
            let pick = |r: &(
                &'static str,
                &'static str,
                &'static str,
                &'static str,
                &'static str,
            )|
             -> &'static str {
                if simp {
                    r.1
                } else {
                    r.0
                }
            };
            let g: String = given.iter().map(|i| pick(&HAN_GIVEN[*i])).collect();
            (g, pick(&HAN_SURNAMES[*family]).to_string(), true)
        }
        Name::Han { family, given } => {
            let scheme = if rng.chance(0.8) {
                match p.region {
                    Region::Tw => 3,
                    Region::Hk => 4,
                    _ => 2,
                }
            } else {
                2 + rng.index(3)
            };
            let col = |r: &(
                &'static str,
                &'static str,
                &'static str,
                &'static str,
                &'static str,
            )| match scheme {
                2 => r.2,
                3 => r.3,
                _ => r.4,
            };
            let sylls: Vec<&str> = given.iter().map(|i| col(&HAN_GIVEN[*i])).collect();
            let sep = *rng.pick(&[" ", "-", ""]);
            let g = capitalize(&sylls.join(sep).to_lowercase());
            (g, capitalize(col(&HAN_SURNAMES[*family])), false)
        }
        Name::Western { given, family } => {
            let (g, nick) = WESTERN_GIVEN[*given];
            let g = match nick {
                Some(n) if rng.chance(0.12) => n.to_string(),
                _ if rng.chance(0.03) => format!("{}.", &g[..1]),
                _ => g.to_string(),
            };
            (g, WESTERN_FAMILY[*family].to_string(), false)
        }
    };
    if !han && rng.chance(0.1) {
        if rng.chance(0.5) {
            given = typo(rng, &given);
        } else {
            family = typo(rng, &family);
        }
    }
    if !han && rng.chance(0.08) {
        family = family.to_uppercase();
    }
    if rng.chance(0.06) {
        std::mem::swap(&mut given, &mut family);
    }
    if rng.chance(0.5) {
        return (given, family, String::new());
    }
    let full = match (&p.name, han) {
        (_, true) => {
            if rng.chance(0.15) {
                format!("{family} {given}")
            } else {
                format!("{family}{given}")
            }
        }
        (Name::Han { .. }, false) if rng.chance(0.5) => format!("{family} {given}"),
        (Name::Western { .. }, false) if rng.chance(0.15) => format!("{family}, {given}"),
        (Name::Western { .. }, false) if rng.chance(0.05) => format!("Dr. {given} {family}"),
        _ => format!("{given} {family}"),
    };
    (String::new(), String::new(), full)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

fn typo(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 4 {
        return s.to_string();
    }
    let i = 1 + rng.index(chars.len() - 2);
    match rng.below(4) {
        0 => chars.swap(i, i + 1),
        1 => {
            chars.remove(i);
        }
        2 => chars.insert(i, chars[i]),
        _ => chars[i] = *rng.pick(&['a', 'e', 'i', 'o', 'n', 'r']),
    }
    chars.into_iter().collect()
}

fn email_variant(rng: &mut Rng, e: &str) -> String {
    match rng.below(100) {
        0..=19 => e.to_uppercase(),
        20..=34 => capitalize(e),
        35..=39 => format!("Contact <{e}>"),
        40..=42 => {
            let (local, domain) = e.split_once('@').unwrap_or((e, ""));
            format!("{}@{domain}", typo(rng, local))
        }
        43..=46 => format!(" {e} "),
        _ => e.to_string(),
    }
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' | '+' | '-' | '(' | ')' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            ' ' => '\u{3000}',
            _ => c,
        })
        .collect()
}

fn group(nsn: &str, sizes: &[usize], sep: &str) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    for s in sizes {
        if i >= nsn.len() {
            break;
        }
        let end = (i + s).min(nsn.len());
        parts.push(&nsn[i..end]);
        i = end;
    }
    if i < nsn.len() {
        parts.push(&nsn[i..]);
    }
    parts.join(sep)
}

fn phone_variant(rng: &mut Rng, region: Region, cc: &str, nsn: &str) -> String {
    let sep = *rng.pick(&[" ", "-", ""]);
    let sizes: &[usize] = match region {
        Region::Tw => &[3, 3, 3],
        Region::Hk => &[4, 4],
        Region::Cn => &[3, 4, 4],
        Region::Us => &[3, 3, 4],
    };
    let grouped = group(nsn, sizes, sep);
    let s = match (region, rng.below(6)) {
        // National format only for the default region of the evaluation (TW).
        (Region::Tw, 0 | 1) => format!("0{}", group(nsn, &[3, 3, 3], sep)),
        (Region::Tw, 2) => format!("+886 0{grouped}"),
        (_, 0 | 1) => format!("+{cc} {grouped}"),
        (_, 2) => format!("{cc}-{grouped}"),
        (_, 3) => format!("00{cc} {grouped}"),
        (_, 4) => format!("({cc}) {grouped}"),
        _ => format!("+{cc}{nsn}"),
    };
    if rng.chance(0.1) {
        full_width(&s)
    } else {
        s
    }
}

fn address_variant(rng: &mut Rng, line: &str) -> String {
    if line.is_ascii() {
        match rng.below(4) {
            0 => line.replace("Street", "St.").replace("Apt", "Apt."),
            1 => line.to_uppercase(),
            2 => line.replace("Street", "St"),
            _ => line.to_string(),
        }
    } else if rng.chance(0.2) {
        full_width(line)
    } else {
        line.to_string()
    }
}
