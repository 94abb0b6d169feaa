//! Synthetic people and households.

use chrono::NaiveDate;

use super::rng::Rng;
use super::tables::{
    CITIES, COMPANIES, DOMAINS, HAN_GIVEN, HAN_ROADS, HAN_SURNAMES, STREETS, WESTERN_FAMILY,
    WESTERN_GIVEN,
};
use crate::normalize::phone::normalize_phone;

/// Where a Chinese name comes from, which decides its usual romanization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Taiwan: Wade–Giles.
    Tw,
    /// Hong Kong: Cantonese (HK government).
    Hk,
    /// Mainland: Pinyin.
    Cn,
    /// Elsewhere (Western names, US numbers).
    Us,
}

/// A person's name.
#[derive(Debug, Clone)]
pub enum Name {
    /// Chinese: surname row and given-character rows.
    Han { family: usize, given: Vec<usize> },
    /// Western: given and family rows.
    Western { given: usize, family: usize },
}

/// A synthetic person, the truth behind the rows.
#[derive(Debug, Clone)]
pub struct Person {
    /// Truth label.
    pub entity: u32,
    /// Region.
    pub region: Region,
    /// Name.
    pub name: Name,
    /// Primary email and maybe a second.
    pub emails: Vec<String>,
    /// Mobile as (country code, national significant number).
    pub mobile: (&'static str, String),
    /// A household landline shared with others.
    pub landline: Option<(&'static str, String)>,
    /// Birth date.
    pub birth_date: Option<NaiveDate>,
    /// Street line, city, postal code, country.
    pub address: (String, String, String, &'static str),
    /// Company stem.
    pub company: Option<&'static str>,
}

/// A household of one to four people sharing a family name and address.
pub fn household(rng: &mut Rng, first_entity: u32) -> Vec<Person> {
    let size = match rng.below(100) {
        0..=74 => 1,
        75..=86 => 2,
        87..=94 => 3,
        _ => 4,
    };
    let region = match rng.below(100) {
        0..=24 => Region::Tw,
        25..=44 => Region::Hk,
        45..=59 => Region::Cn,
        _ => Region::Us,
    };
    let han = region != Region::Us;
    let family = if han {
        rng.index(HAN_SURNAMES.len())
    } else {
        rng.index(WESTERN_FAMILY.len())
    };
    let address = address(rng, region);
    let landline = (size > 1 && rng.chance(0.5)).then(|| phone(rng, region, true));
    let mut out: Vec<Person> = Vec::with_capacity(size);
    let mut used: Vec<Vec<usize>> = Vec::new();
    for k in 0..size {
        let given = loop {
            let g = if han {
                let n = if rng.chance(0.8) { 2 } else { 1 };
                (0..n)
                    .map(|_| rng.index(HAN_GIVEN.len()))
                    .collect::<Vec<_>>()
            } else {
                vec![rng.index(WESTERN_GIVEN.len())]
            };
            if !used.contains(&g) {
                break g;
            }
        };
        used.push(given.clone());
        let name = if han {
            Name::Han { family, given }
        } else {
            Name::Western {
                given: given[0],
                family,
            }
        };
        let entity = first_entity + u32::try_from(k).unwrap_or(0);
        let latin = latin_handle(&name);
        let mut emails = vec![format!(
            "{latin}{}@{}",
            rng.below(9000) + 100,
            rng.pick(DOMAINS)
        )];
        if rng.chance(0.15) {
            emails.push(format!(
                "{}{}@{}.com",
                latin.replace('.', ""),
                rng.below(90) + 10,
                rng.pick(COMPANIES).to_lowercase()
            ));
        }
        let birth_date = rng.chance(0.85).then(|| {
            let y = 1945 + i32::try_from(rng.below(60)).unwrap_or(0);
            NaiveDate::from_ymd_opt(y, 1 + rng.below(12) as u32, 1 + rng.below(28) as u32)
                .unwrap_or_default()
        });
        let company = rng.chance(0.6).then(|| *rng.pick(COMPANIES));
        out.push(Person {
            entity,
            region,
            name,
            emails,
            mobile: phone(rng, region, false),
            landline: landline.clone(),
            birth_date,
            address: address.clone(),
            company,
        });
    }
    out
}

fn latin_handle(name: &Name) -> String {
    match name {
        Name::Han { family, given } => {
            let g: String = given.iter().map(|i| HAN_GIVEN[*i].2).collect();
            format!("{g}.{}", HAN_SURNAMES[*family].2)
        }
        Name::Western { given, family } => {
            format!("{}.{}", WESTERN_GIVEN[*given].0, WESTERN_FAMILY[*family]).to_lowercase()
        }
    }
}

fn phone(rng: &mut Rng, region: Region, landline: bool) -> (&'static str, String) {
    loop {
        let (cc, nsn, iso) = match (region, landline) {
            (Region::Tw, false) => ("886", format!("9{:08}", rng.below(100_000_000)), "TW"),
            (Region::Tw, true) => ("886", format!("2{:08}", rng.below(100_000_000)), "TW"),
            (Region::Hk, false) => (
                "852",
                format!("{}{:07}", rng.pick(&[5, 6, 9]), rng.below(10_000_000)),
                "HK",
            ),
            (Region::Hk, true) => ("852", format!("2{:07}", rng.below(10_000_000)), "HK"),
            (Region::Cn, false) => (
                "86",
                format!("1{}{:09}", rng.pick(&[3, 5, 8]), rng.below(1_000_000_000)),
                "CN",
            ),
            (Region::Cn, true) => ("86", format!("21{:08}", rng.below(100_000_000)), "CN"),
            (Region::Us, _) => (
                "1",
                format!(
                    "{}{}{:06}",
                    rng.pick(&[212, 415, 206, 617, 512, 312]),
                    2 + rng.below(7),
                    rng.below(1_000_000)
                ),
                "US",
            ),
        };
        if normalize_phone(&format!("+{cc}{nsn}"), Some(iso)).is_some() {
            return (cc, nsn);
        }
    }
}

fn address(rng: &mut Rng, region: Region) -> (String, String, String, &'static str) {
    let iso = match region {
        Region::Tw => "TW",
        Region::Hk => "HK",
        Region::Cn => "CN",
        Region::Us => "US",
    };
    let cities = CITIES
        .iter()
        .find(|(c, _)| *c == iso)
        .map_or(&[][..], |(_, l)| l);
    let city = cities
        .get(rng.index(cities.len()))
        .copied()
        .unwrap_or_default()
        .to_string();
    let n = rng.below(300) + 1;
    if region == Region::Us {
        let line = format!("{n} {} Street Apt {}", rng.pick(STREETS), rng.below(40) + 1);
        return (line, city, format!("{:05}", rng.below(99_999)), iso);
    }
    let line = format!(
        "{}{}段{}號{}樓",
        rng.pick(HAN_ROADS),
        rng.below(5) + 1,
        n,
        rng.below(20) + 1
    );
    (line, city, format!("{}", 100 + rng.below(900)), iso)
}
