//! A deterministic, labelled evaluation set: people (Western and Chinese from
//! Taiwan, Hong Kong and the mainland, some sharing a household) written as
//! CRM rows by several sources with realistic corruption. See [`generate`].

mod people;
mod render;
pub mod rng;
pub mod tables;

use std::path::{Path, PathBuf};

use self::rng::Rng;

/// CSV header of the generated files (`entity` is the truth label).
pub const COLUMNS: [&str; 13] = [
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
    "country",
    "birth_date",
    "entity",
];

/// Source labels rows are spread over.
pub const SOURCES: [&str; 3] = ["crm", "shop", "erp"];

/// One generated row with its truth label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthRow {
    /// The person this row describes.
    pub entity: u32,
    /// Source label (one of [`SOURCES`]).
    pub source: &'static str,
    /// Values in [`COLUMNS`] order (without `entity`); empty means missing.
    pub values: [String; 12],
}

/// Generate at least `rows` rows (the last person's duplicates may overshoot
/// slightly) from `seed`. The same seed always gives the same rows.
pub fn generate(seed: u64, rows: usize) -> Vec<SynthRow> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<SynthRow> = Vec::with_capacity(rows + 8);
    let mut entity = 0u32;
    let mut counters = [0u64; 3];
    while out.len() < rows {
        for person in people::household(&mut rng, entity) {
            entity += 1;
            let copies = match rng.below(100) {
                0..=44 => 1,
                45..=74 => 2,
                75..=89 => 3,
                90..=96 => 4,
                _ => 5,
            };
            for _ in 0..copies {
                let s = rng.index(SOURCES.len());
                counters[s] += 1;
                let mut values = render::render(&mut rng, &person);
                values[0] = format!("{}{:07}", &SOURCES[s][..1].to_uppercase(), counters[s]);
                out.push(SynthRow {
                    entity: person.entity,
                    source: SOURCES[s],
                    values,
                });
            }
        }
    }
    out
}

/// Write rows to one CSV per source in `dir` (`crm.csv`, `shop.csv`, `erp.csv`);
/// returns the paths in [`SOURCES`] order.
pub fn write_csvs(dir: &Path, rows: &[SynthRow]) -> Result<Vec<PathBuf>, csv::Error> {
    let mut paths = Vec::new();
    for source in SOURCES {
        let path = dir.join(format!("{source}.csv"));
        let mut w = csv::Writer::from_path(&path)?;
        w.write_record(COLUMNS)?;
        for row in rows.iter().filter(|r| r.source == source) {
            let entity = row.entity.to_string();
            w.write_record(
                row.values
                    .iter()
                    .map(String::as_str)
                    .chain([entity.as_str()]),
            )?;
        }
        w.flush()?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_labelled() {
        let a = generate(7, 500);
        let b = generate(7, 500);
        assert_eq!(a, b);
        assert!(a.len() >= 500);
        let entities: std::collections::BTreeSet<u32> = a.iter().map(|r| r.entity).collect();
        assert!(entities.len() < a.len(), "some people have duplicates");
        assert!(
            a.iter()
                .any(|r| r.values[3].chars().any(crate::normalize::is_han)),
            "CJK names present"
        );
        assert!(
            a.iter()
                .any(|r| r.values[5].contains('＋') || r.values[5].contains('０')),
            "full-width phones"
        );
    }
}
