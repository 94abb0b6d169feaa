//! The people behind the independent generator's rows: single people and
//! households (shared surname, address and home phone, sometimes twins).

use chrono::{Datelike, NaiveDate};
use rustc_hash::FxHashSet;

use super::tables::{
    AU_SUBURBS, CN_ROADS, COMPANIES, DOMAINS, ENGLISH_NAMES, FAMILY, GIVEN, HAN_FAMILY, HAN_GIVEN,
    HK_ROADS, LEGAL_FORMS, STREETS, STREET_TYPES, TW_ROADS, UK_TOWNS, US_CITIES,
};
use crate::synth::rng::Rng;

/// Where a person lives, which decides how every field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// United States.
    Us,
    /// United Kingdom.
    Uk,
    /// Australia.
    Au,
    /// Hong Kong.
    Hk,
    /// Taiwan.
    Tw,
    /// Mainland China.
    Cn,
}

impl Region {
    /// Index into per-region tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// True for the three Chinese-speaking regions.
    pub fn is_chinese(self) -> bool {
        matches!(self, Region::Hk | Region::Tw | Region::Cn)
    }
}

/// A person's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonName {
    /// Western: rows of [`GIVEN`] and [`FAMILY`], maybe a middle initial.
    Western {
        /// Given-name row.
        given: usize,
        /// Family-name row.
        family: usize,
        /// Middle initial.
        middle: Option<char>,
    },
    /// Chinese: rows of [`HAN_FAMILY`] and [`HAN_GIVEN`], maybe an English name.
    Han {
        /// Family row.
        family: usize,
        /// Given-character rows.
        given: Vec<usize>,
        /// English name row in [`ENGLISH_NAMES`].
        english: Option<usize>,
    },
}

/// A postal address, kept as parts so each source can write it its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// House number.
    pub number: u32,
    /// Street row in the region's table.
    pub street: usize,
    /// Street-type row ([`STREET_TYPES`]) for Western regions; floor for HK/TW/CN.
    pub kind: usize,
    /// Town / city / district row in the region's table.
    pub area: usize,
    /// Postcode as the post office writes it.
    pub postcode: String,
}

/// One generated person.
#[derive(Debug, Clone)]
pub struct Person {
    /// Truth label.
    pub entity: u32,
    /// Region.
    pub region: Region,
    /// Name.
    pub name: PersonName,
    /// Birth date.
    pub birth: NaiveDate,
    /// Personal email, maybe a work email.
    pub emails: Vec<String>,
    /// Mobile, national significant number without trunk prefix.
    pub mobile: String,
    /// Household landline (national significant number).
    pub home_phone: Option<String>,
    /// Current address.
    pub home: Place,
    /// Where they lived before, with the mobile they had then.
    pub previous: Option<(Place, String)>,
    /// Company stem row and legal-form group.
    pub company: Option<(usize, usize)>,
}

/// Hands out people, keeping emails unique as mail providers do.
#[derive(Debug, Default)]
pub struct PersonFactory {
    next_entity: u32,
    emails: FxHashSet<String>,
}

fn zipf(rng: &mut Rng, n: usize) -> usize {
    // Squared uniform: the first rows are drawn far more often than the last.
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((x * x * n as f64) as usize).min(n - 1)
}

impl PersonFactory {
    /// One person alone, or a household of two to four.
    pub fn unit(&mut self, rng: &mut Rng) -> Vec<Person> {
        let region = match rng.below(100) {
            0..=39 => Region::Us,
            40..=54 => Region::Uk,
            55..=69 => Region::Au,
            70..=79 => Region::Hk,
            80..=89 => Region::Tw,
            _ => Region::Cn,
        };
        let first = self.person(rng, region, None);
        if !rng.chance(0.22) {
            return vec![first];
        }
        let size = 2 + rng.index(3);
        let home_phone = Some(mobile(rng, region));
        let mut out = vec![Person {
            home_phone: home_phone.clone(),
            ..first
        }];
        let twins = rng.chance(0.15);
        // Children when the first member is old enough, else that member's parents.
        let gap = 24 + rng.below(10);
        let kids_birth = if out[0].birth.year() <= 1985 {
            shift_years(out[0].birth, gap)
        } else {
            out[0].birth - chrono::Days::new(gap * 365)
        };
        for i in 1..size {
            let mut p = self.person(rng, region, Some(&out[0]));
            p.home_phone.clone_from(&home_phone);
            p.home = out[0].home.clone();
            p.previous = None;
            if i >= 2 || (twins && i == 1 && size == 2) {
                p.birth = kids_birth;
            }
            out.push(p);
        }
        if twins && size >= 3 {
            // Twins: the last two share a birth date (and surname, address, home phone).
            let b = out[size - 2].birth;
            out[size - 1].birth = b;
        }
        out
    }

    fn person(&mut self, rng: &mut Rng, region: Region, household: Option<&Person>) -> Person {
        self.next_entity += 1;
        let name = match (&household.map(|h| &h.name), region.is_chinese()) {
            (Some(PersonName::Han { family, .. }), _) => han_name(rng, Some(*family)),
            (Some(PersonName::Western { family, .. }), _) => western_name(rng, Some(*family)),
            (None, true) => han_name(rng, None),
            (None, false) => western_name(rng, None),
        };
        let birth = match household {
            Some(h) => h.birth - chrono::Days::new(rng.below(7 * 365)),
            None => birth_date(rng),
        };
        let company = rng
            .chance(0.45)
            .then(|| (rng.index(COMPANIES.len()), legal_group(rng, region)));
        let mut emails = vec![self.email(rng, region, &name, birth)];
        if let Some((c, _)) = company.filter(|_| rng.chance(0.3)) {
            let local = email_local(rng, &name, birth);
            let domain = format!("{}.com", COMPANIES[c].to_lowercase());
            emails.push(self.unique(format!("{local}@{domain}")));
        }
        let home = place(rng, region);
        let previous = rng
            .chance(0.15)
            .then(|| (place(rng, region), mobile(rng, region)));
        Person {
            entity: self.next_entity,
            region,
            name,
            birth,
            emails,
            mobile: mobile(rng, region),
            home_phone: None,
            home,
            previous,
            company,
        }
    }

    fn email(
        &mut self,
        rng: &mut Rng,
        region: Region,
        name: &PersonName,
        birth: NaiveDate,
    ) -> String {
        let domain = rng.pick(DOMAINS[region.index()]);
        if region == Region::Cn && domain == &"qq.com" {
            let n = 10_000_000 + rng.below(2_000_000_000);
            return self.unique(format!("{n}@qq.com"));
        }
        let local = email_local(rng, name, birth);
        self.unique(format!("{local}@{domain}"))
    }

    fn unique(&mut self, email: String) -> String {
        let mut candidate = email.clone();
        let (local, domain) = email.split_once('@').unwrap_or((&email, "example.com"));
        let mut n = 1;
        while !self.emails.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{local}{n}@{domain}");
        }
        candidate
    }
}

fn email_local(rng: &mut Rng, name: &PersonName, birth: NaiveDate) -> String {
    let (g, f) = match name {
        PersonName::Western { given, family, .. } => (
            GIVEN[*given].0.to_lowercase(),
            FAMILY[*family].to_lowercase().replace([' ', '\''], ""),
        ),
        PersonName::Han {
            family,
            given,
            english,
        } => {
            let g = match english {
                Some(e) if rng.chance(0.5) => ENGLISH_NAMES[*e].to_lowercase(),
                _ => given.iter().map(|c| HAN_GIVEN[*c].2).collect(),
            };
            (g, HAN_FAMILY[*family].2.to_lowercase())
        }
    };
    let yy = birth.year() % 100;
    let initial = g.chars().next().unwrap_or('x');
    match rng.below(8) {
        0 => format!("{g}.{f}"),
        1 => format!("{g}{f}"),
        2 => format!("{initial}{f}"),
        3 => format!("{initial}.{f}{yy:02}"),
        4 => format!("{g}_{f}"),
        5 => format!("{f}.{g}"),
        6 => format!("{g}{yy:02}"),
        _ => format!("{g}.{f}{}", rng.below(100)),
    }
}

fn western_name(rng: &mut Rng, family: Option<usize>) -> PersonName {
    PersonName::Western {
        given: rng.index(GIVEN.len()),
        family: family.unwrap_or_else(|| zipf(rng, FAMILY.len())),
        middle: rng
            .chance(0.3)
            .then(|| char::from(b'A' + u8::try_from(rng.below(26)).unwrap_or(0))),
    }
}

fn han_name(rng: &mut Rng, family: Option<usize>) -> PersonName {
    let len = if rng.chance(0.85) { 2 } else { 1 };
    PersonName::Han {
        family: family.unwrap_or_else(|| zipf(rng, HAN_FAMILY.len())),
        given: (0..len).map(|_| rng.index(HAN_GIVEN.len())).collect(),
        english: rng.chance(0.35).then(|| rng.index(ENGLISH_NAMES.len())),
    }
}

fn birth_date(rng: &mut Rng) -> NaiveDate {
    let base = NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or_default();
    base + chrono::Days::new(rng.below(365 * 62))
}

fn shift_years(d: NaiveDate, years: u64) -> NaiveDate {
    d + chrono::Days::new(years * 365 + (d.to_string().len() as u64 % 7) * 11)
}

fn legal_group(rng: &mut Rng, region: Region) -> usize {
    match region {
        Region::Us => 1 + rng.index(2),
        Region::Au => 3,
        Region::Uk => 0,
        Region::Hk => {
            if rng.chance(0.5) {
                0
            } else {
                4
            }
        }
        Region::Tw | Region::Cn => 4,
    }
    .min(LEGAL_FORMS.len() - 1)
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + u8::try_from(rng.below(10)).unwrap_or(0)))
        .collect()
}

/// A mobile number (national significant number, no trunk prefix).
pub fn mobile(rng: &mut Rng, region: Region) -> String {
    match region {
        Region::Us => {
            let area = rng.pick(US_CITIES).3;
            let exchange = 201 + rng.below(700);
            let exchange = if exchange == 555 { 556 } else { exchange };
            format!("{area}{exchange}{}", digits(rng, 4))
        }
        Region::Uk => format!(
            "7{}{}",
            rng.pick(&["4", "5", "7", "8", "9"]),
            digits(rng, 8)
        ),
        Region::Au => format!("4{}", digits(rng, 8)),
        Region::Hk => format!("{}{}", rng.pick(&["5", "6", "9"]), digits(rng, 7)),
        Region::Tw => format!("9{}", digits(rng, 8)),
        Region::Cn => format!("1{}{}", rng.pick(&["3", "5", "8"]), digits(rng, 9)),
    }
}

fn place(rng: &mut Rng, region: Region) -> Place {
    let (street, area, postcode) = match region {
        Region::Us => {
            let a = rng.index(US_CITIES.len());
            let pc = format!("{}{}", US_CITIES[a].2, digits(rng, 2));
            (rng.index(STREETS[0].len()), a, pc)
        }
        Region::Uk => {
            let a = rng.index(UK_TOWNS.len());
            let pc = format!(
                "{}{} {}{}{}",
                UK_TOWNS[a].1,
                1 + rng.below(20),
                rng.below(10),
                char::from(b'A' + u8::try_from(rng.below(26)).unwrap_or(0)),
                char::from(b'A' + u8::try_from(rng.below(26)).unwrap_or(0)),
            );
            (rng.index(STREETS[1].len()), a, pc)
        }
        Region::Au => {
            let a = rng.index(AU_SUBURBS.len());
            (rng.index(STREETS[2].len()), a, AU_SUBURBS[a].2.to_string())
        }
        Region::Hk => (rng.index(HK_ROADS.len()), 0, String::new()),
        Region::Tw => {
            let a = rng.index(TW_ROADS.len());
            (a, a, TW_ROADS[a].4.to_string())
        }
        Region::Cn => {
            let a = rng.index(CN_ROADS.len());
            (a, a, CN_ROADS[a].3.to_string())
        }
    };
    let kind = if region.is_chinese() {
        2 + rng.index(30)
    } else {
        rng.index(STREET_TYPES.len())
    };
    Place {
        number: 1 + u32::try_from(rng.below(400)).unwrap_or(0),
        street,
        kind,
        area,
        postcode,
    }
}
