//! How each source writes a person: which columns it fills, and how names,
//! phones, addresses and dates look in that person's region.

use chrono::{Datelike, NaiveDate};

use super::person::{Person, PersonName, Place, Region};
use super::tables::{
    AU_SUBURBS, CN_ROADS, COMPANIES, ENGLISH_NAMES, FAMILY, GIVEN, HAN_FAMILY, HAN_GIVEN, HK_ROADS,
    LEGAL_FORMS, STREETS, STREET_TYPES, TW_ROADS, UK_TOWNS, US_CITIES,
};
use crate::synth::rng::Rng;

/// Render one row of `source` (index into [`super::SOURCES`]) for `p`.
pub fn row(rng: &mut Rng, p: &Person, source: usize) -> Vec<String> {
    let mut v = vec![String::new(); super::HEADER.len()];
    // crm and events have first/last columns; shop and support one name column.
    let split_columns = source == 0 || source == 2;
    let (first, last, full) = name(rng, p);
    if split_columns {
        if rng.chance(0.04) {
            (v[1], v[2]) = (last, first);
        } else {
            (v[1], v[2]) = (first, last);
        }
    } else {
        v[3] = full;
    }
    let moved = p.previous.as_ref().filter(|_| rng.chance(0.4));
    let (place, mobile) = match moved {
        Some((old, old_mobile)) => (
            old,
            if rng.chance(0.6) {
                old_mobile
            } else {
                &p.mobile
            },
        ),
        None => (&p.home, &p.mobile),
    };
    let wants = |rng: &mut Rng, p: f64| rng.chance(p) && !rng.chance(0.08);
    let email_p = [0.9, 0.95, 0.95, 0.6][source];
    if wants(rng, email_p) {
        let e = rng.pick(&p.emails).clone();
        v[4] = if rng.chance(0.03) { typo(rng, &e) } else { e };
        if rng.chance(0.05) {
            v[4] = v[4].to_uppercase();
        }
    }
    let phone_p = [0.85, 0.9, 0.5, 0.95][source];
    if wants(rng, phone_p) {
        let number = match &p.home_phone {
            Some(h) if rng.chance(0.3) => h,
            _ => mobile,
        };
        v[5] = phone(rng, p.region, number);
    }
    let company_p = [0.9, 0.0, 0.9, 0.3][source];
    if let Some((stem, group)) = p.company.filter(|_| wants(rng, company_p)) {
        v[6] = company(rng, stem, group);
    }
    let address_p = [0.9, 0.95, 0.0, 0.1][source];
    if wants(rng, address_p) {
        let (line, city, postcode, state) = address(rng, p.region, place);
        v[7] = line;
        v[8] = city;
        v[9] = postcode;
        v[10] = state;
    }
    let country_p = [0.85, 0.9, 0.5, 0.4][source];
    if wants(rng, country_p) {
        v[11] = country(rng, p.region).to_string();
    }
    let birth_p = [0.8, 0.1, 0.0, 0.3][source];
    if wants(rng, birth_p) {
        v[12] = date(rng, p.region, p.birth);
    }
    v
}

/// A random one-character edit (swap, drop, double or replace) of ASCII text.
pub fn typo(rng: &mut Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 4 || !s.is_ascii() {
        return s.to_string();
    }
    let i = 1 + rng.index(chars.len() - 2);
    let mut out = chars.clone();
    match rng.below(4) {
        0 => out.swap(i, i + 1),
        1 => {
            out.remove(i);
        }
        2 => out.insert(i, chars[i]),
        _ => {
            let vowels = ['a', 'e', 'i', 'o', 'u'];
            out[i] = *rng.pick(&vowels);
        }
    }
    out.into_iter().collect()
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// (first, last, full) as this row writes them.
fn name(rng: &mut Rng, p: &Person) -> (String, String, String) {
    match &p.name {
        PersonName::Western {
            given,
            family,
            middle,
        } => {
            let (canonical, nicks) = GIVEN[*given];
            let mut g = match rng.below(100) {
                0..=11 if !nicks.is_empty() => rng.pick(nicks).to_string(),
                12..=15 => format!("{}.", &canonical[..1]),
                16..=20 => typo(rng, canonical),
                _ => canonical.to_string(),
            };
            let mut f = if rng.chance(0.05) {
                typo(rng, FAMILY[*family])
            } else {
                FAMILY[*family].to_string()
            };
            if rng.chance(0.05) {
                g = g.to_uppercase();
                f = f.to_uppercase();
            }
            let full = match (rng.below(100), middle) {
                (0..=9, _) => format!("{f}, {g}"),
                (10..=19, Some(m)) => format!("{g} {m}. {f}"),
                _ => format!("{g} {f}"),
            };
            (g, f, full)
        }
        PersonName::Han {
            family,
            given,
            english,
        } => han_name(rng, p.region, *family, given, *english),
    }
}

fn han_name(
    rng: &mut Rng,
    region: Region,
    family: usize,
    given: &[usize],
    english: Option<usize>,
) -> (String, String, String) {
    let fam = HAN_FAMILY[family];
    let chars = |simplified: bool| -> (String, String) {
        let g: String = given
            .iter()
            .map(|c| {
                if simplified {
                    HAN_GIVEN[*c].1
                } else {
                    HAN_GIVEN[*c].0
                }
            })
            .collect();
        (g, (if simplified { fam.1 } else { fam.0 }).to_string())
    };
    let roll = rng.below(100);
    let han_share = match region {
        Region::Hk => 35,
        Region::Tw => 45,
        _ => 60,
    };
    if roll < han_share {
        let (g, f) = chars(region == Region::Cn && roll >= 5);
        let full = format!("{f}{g}");
        return (g, f, full);
    }
    if let Some(e) = english.filter(|_| roll >= 85 && region != Region::Cn) {
        let e = ENGLISH_NAMES[e];
        let f = match region {
            Region::Hk => fam.3,
            _ => fam.4,
        };
        let full = if rng.chance(0.5) {
            format!("{e} {f}")
        } else {
            let (g, _, _) = romanized(rng, region, family, given);
            format!("{e} {f} {g}")
        };
        return (e.to_string(), f.to_string(), full);
    }
    let (g, f, family_first) = romanized(rng, region, family, given);
    let full = if family_first {
        format!("{f} {g}")
    } else {
        format!("{g} {f}")
    };
    let full = if rng.chance(0.1) {
        full.replacen(&f, &f.to_uppercase(), 1)
    } else {
        full
    };
    (g, f, full)
}

/// Romanized given and family names in the region's system, and whether the
/// full name puts the family first.
fn romanized(
    rng: &mut Rng,
    region: Region,
    family: usize,
    given: &[usize],
) -> (String, String, bool) {
    let fam = HAN_FAMILY[family];
    let syl = |c: &usize| -> &str {
        match region {
            Region::Hk => HAN_GIVEN[*c].3,
            // Taiwan writes given names in Wade–Giles, as passports do.
            Region::Tw => HAN_GIVEN[*c].4,
            _ => HAN_GIVEN[*c].2,
        }
    };
    let parts: Vec<&str> = given.iter().map(syl).collect();
    let g = match region {
        Region::Hk if rng.chance(0.5) => parts.iter().map(|s| cap(s)).collect::<Vec<_>>().join(" "),
        Region::Hk | Region::Tw => {
            let mut s = cap(parts.first().copied().unwrap_or(""));
            for p in parts.iter().skip(1) {
                s.push('-');
                if rng.chance(0.5) {
                    s.push_str(p);
                } else {
                    s.push_str(&cap(p));
                }
            }
            s
        }
        _ => cap(&parts.concat()),
    };
    let f = match region {
        Region::Hk => fam.3,
        Region::Tw => fam.4,
        _ => fam.2,
    };
    (g, f.to_string(), rng.chance(0.6))
}

fn phone(rng: &mut Rng, region: Region, n: &str) -> String {
    let cc = ["1", "44", "61", "852", "886", "86"][region.index()];
    let international = region != Region::Us && rng.chance(0.5) || rng.chance(0.15);
    let (a, b) = n.split_at(n.len().min(3));
    let (b, c) = b.split_at(b.len().min(3));
    match (region, international) {
        (Region::Us, false) => match rng.below(3) {
            0 => format!("({a}) {b}-{c}"),
            1 => format!("{a}-{b}-{c}"),
            _ => n.to_string(),
        },
        (Region::Hk, false) => format!("{} {}", &n[..4.min(n.len())], &n[4.min(n.len())..]),
        (Region::Cn, false) => n.to_string(),
        (_, false) => format!("0{n}"),
        (_, true) => match rng.below(3) {
            0 => format!("+{cc} {n}"),
            1 => format!("+{cc}-{a}-{b}{c}"),
            _ => format!("00{cc}{n}"),
        },
    }
}

fn company(rng: &mut Rng, stem: usize, group: usize) -> String {
    let form = rng.pick(LEGAL_FORMS[group]);
    let stem = COMPANIES[stem];
    let stem = if rng.chance(0.1) {
        stem.to_uppercase()
    } else {
        stem.to_string()
    };
    match group {
        4 if rng.chance(0.5) => format!("{stem}股份{form}"),
        4 => format!("{stem}{form}"),
        _ if rng.chance(0.15) => stem,
        _ => format!("{stem} {form}"),
    }
}

/// (street line, city, postcode, state).
fn address(rng: &mut Rng, region: Region, p: &Place) -> (String, String, String, String) {
    let western_line = |rng: &mut Rng, street: &str| {
        let (long, short) = STREET_TYPES[p.kind];
        let kind = if rng.chance(0.5) { long } else { short };
        let line = format!("{} {street} {kind}", p.number);
        if rng.chance(0.04) {
            typo(rng, &line)
        } else {
            line
        }
    };
    match region {
        Region::Us => {
            let (city, state, _, _) = US_CITIES[p.area];
            let line = western_line(rng, STREETS[0][p.street]);
            let line = if p.number.is_multiple_of(5) && rng.chance(0.7) {
                format!("{line} Apt {}", 1 + p.number % 9)
            } else {
                line
            };
            (line, city.into(), p.postcode.clone(), state.into())
        }
        Region::Uk => {
            let line = western_line(rng, STREETS[1][p.street]);
            let pc = if rng.chance(0.2) {
                p.postcode.replace(' ', "")
            } else {
                p.postcode.clone()
            };
            (line, UK_TOWNS[p.area].0.into(), pc, String::new())
        }
        Region::Au => {
            let (suburb, state, _) = AU_SUBURBS[p.area];
            let line = western_line(rng, STREETS[2][p.street]);
            (line, suburb.into(), p.postcode.clone(), state.into())
        }
        Region::Hk => {
            let (road, road_en, district, district_en) = HK_ROADS[p.street];
            if rng.chance(0.5) {
                let line = format!("{road}{}號{}樓", p.number, p.kind);
                (line, district.into(), String::new(), String::new())
            } else {
                let line = format!(
                    "Flat {}, {}/F, {} {road_en}",
                    1 + p.number % 8,
                    p.kind,
                    p.number
                );
                (line, district_en.into(), String::new(), String::new())
            }
        }
        Region::Tw => {
            let (city, district, road, road_en, _) = TW_ROADS[p.street];
            let pc = p.postcode.clone();
            if rng.chance(0.7) {
                let city = if rng.chance(0.3) {
                    city.replace('台', "臺")
                } else {
                    city.to_string()
                };
                let num = if rng.chance(0.2) { "号" } else { "號" };
                let line = format!("{district}{road}{}{num}{}樓", p.number, p.kind);
                (line, city, pc, String::new())
            } else {
                let line = format!("{}F., No. {}, {road_en}", p.kind, p.number);
                let city_en = match city {
                    "台北市" => "Taipei City",
                    "新北市" => "New Taipei City",
                    "台中市" => "Taichung City",
                    "高雄市" => "Kaohsiung City",
                    _ => "Tainan City",
                };
                (line, city_en.into(), pc, String::new())
            }
        }
        Region::Cn => {
            let (city, district, road, pc) = CN_ROADS[p.street];
            let line = format!("{district}{road}{}号", p.number);
            let city = if rng.chance(0.4) {
                city.trim_end_matches('市').to_string()
            } else {
                city.to_string()
            };
            (line, city, pc.into(), String::new())
        }
    }
}

fn country(rng: &mut Rng, region: Region) -> &'static str {
    let names: &[&str] = match region {
        Region::Us => &["US", "USA", "United States"],
        Region::Uk => &["UK", "United Kingdom", "GB"],
        Region::Au => &["Australia", "AU"],
        Region::Hk => &["Hong Kong", "HK", "香港"],
        Region::Tw => &["Taiwan", "台灣", "TW"],
        Region::Cn => &["China", "中国", "CN"],
    };
    names[rng.index(names.len())]
}

/// A birth date as people in `region` write it.
pub fn date(rng: &mut Rng, region: Region, d: NaiveDate) -> String {
    let (y, m, day) = (d.year(), d.month(), d.day());
    let roll = rng.below(100);
    match region {
        Region::Us => match roll {
            0..=59 => format!("{m:02}/{day:02}/{y}"),
            60..=74 => format!("{m}/{day}/{:02}", y % 100),
            _ => format!("{y}-{m:02}-{day:02}"),
        },
        Region::Uk | Region::Au | Region::Hk => match roll {
            0..=59 => format!("{day:02}/{m:02}/{y}"),
            60..=69 => format!("{day:02}-{m:02}-{y}"),
            70..=79 => d.format("%-d %b %Y").to_string(),
            _ => format!("{y}-{m:02}-{day:02}"),
        },
        Region::Cn => match roll {
            0..=59 => format!("{y}-{m:02}-{day:02}"),
            60..=79 => format!("{y}年{m}月{day}日"),
            _ => format!("{y}/{m}/{day}"),
        },
        Region::Tw => match roll {
            0..=49 => format!("{y}/{m:02}/{day:02}"),
            50..=74 if y > 1911 => format!("{}/{m:02}/{day:02}", y - 1911),
            75..=84 if y > 1911 => format!("民國{}年{m}月{day}日", y - 1911),
            _ => format!("{y}{m:02}{day:02}"),
        },
    }
}
