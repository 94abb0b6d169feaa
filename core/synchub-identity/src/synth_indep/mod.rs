//! A second labelled generator, written independently of the matcher's
//! rules and of [`crate::synth`]: its own name lists and nickname table, a
//! US / UK / AU / HK / TW / CN mix, households sharing an address, a surname
//! and a home phone, twins sharing a birth date, people who moved (old address
//! and old phone in some sources), dates written the way each region writes
//! them, and four sources that export different columns. See [`generate`].

mod person;
mod render;
pub mod tables;

use crate::synth::rng::Rng;

pub use self::person::{Person, Region};

/// CSV header of the generated rows (what `synchub dedupe` guesses from).
pub const HEADER: [&str; 13] = [
    "id",
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "company",
    "address_line1",
    "city",
    "postal_code",
    "state",
    "country",
    "birth_date",
];

/// The sources rows come from; each exports a different set of columns.
pub const SOURCES: [&str; 4] = ["crm", "shop", "events", "support"];

/// One row and the person it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndepRow {
    /// Truth label.
    pub entity: u32,
    /// Index into [`SOURCES`].
    pub source: usize,
    /// Values in [`HEADER`] order; empty means missing.
    pub values: Vec<String>,
}

/// Generate at least `rows` rows from `seed`; the same seed gives the same rows.
pub fn generate(seed: u64, rows: usize) -> Vec<IndepRow> {
    let mut rng = Rng::new(seed ^ 0x1d3e_9a77_0c41_5b2f);
    let mut people = person::PersonFactory::default();
    let mut out = Vec::with_capacity(rows + 16);
    let mut next_id = 0u64;
    while out.len() < rows {
        for p in people.unit(&mut rng) {
            let copies = match rng.below(100) {
                0..=44 => 1,
                45..=74 => 2,
                75..=89 => 3,
                90..=96 => 4,
                _ => 5,
            };
            for _ in 0..copies {
                next_id += 1;
                let source = rng.index(SOURCES.len());
                let mut values = render::row(&mut rng, &p, source);
                values[0] = format!("{}-{next_id}", SOURCES[source]);
                out.push(IndepRow {
                    entity: p.entity,
                    source,
                    values,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_mixed_and_labelled() {
        let a = generate(3, 2000);
        assert_eq!(a, generate(3, 2000));
        let people: std::collections::BTreeSet<u32> = a.iter().map(|r| r.entity).collect();
        assert!(people.len() < a.len() && people.len() > a.len() / 3);
        let any = |f: &dyn Fn(&IndepRow) -> bool| a.iter().any(f);
        assert!(any(&|r| r.values[3].chars().any(crate::normalize::is_han)));
        assert!(any(
            &|r| r.values[12].contains('/') && r.values[12].len() == 10
        ));
        assert!(any(
            &|r| r.values[12].starts_with("民國") || r.values[12].len() == 8
        ));
        let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 1);
        let parsed = a
            .iter()
            .filter_map(|r| crate::normalize::date::parse_birth_date(&r.values[12], Some("CN")));
        assert!(parsed.clone().count() > 100);
        assert!(
            parsed.map(Some).all(|d| d < today),
            "no birth date in the future"
        );
        for s in 0..SOURCES.len() {
            assert!(any(&|r| r.source == s));
        }
    }
}
