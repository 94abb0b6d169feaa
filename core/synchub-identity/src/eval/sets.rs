//! Labelled evaluation sets, each scored the same way so that a change which
//! lifts one set by lowering another is visible: FEBRL1 and FEBRL2 (public
//! record-linkage benchmarks, committed under `data/febrl/` without their
//! national-id column), the project's generator ([`crate::synth`]) and an
//! independently written one ([`crate::synth_indep`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rustc_hash::FxHashMap;
use serde::Serialize;
use synchub_core::model::{Address, Contact};

use super::{pairwise_scores, PairwiseScores};
use crate::dedupe::columns::guess;
use crate::dedupe::{row_contact, DedupeError};
use rayon::prelude::*;

use crate::matcher::prepare::Prepared;
use crate::matcher::{resolve, resolve_prepared, Decision, MatchConfig};
use crate::normalize::date::parse_birth_date;

/// Contacts with the person each one truly is.
#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// Set name as printed (`febrl1`, `indep_20000`, …).
    pub name: String,
    /// The records.
    pub contacts: Vec<Contact>,
    /// Truth label per record.
    pub truth: Vec<u32>,
    /// Default region the set is resolved with (as `--region`).
    pub region: Option<String>,
}

/// How the matcher did on one set.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    /// Set name.
    pub name: String,
    /// Records.
    pub rows: usize,
    /// Pairwise scores of the auto-merged clusters.
    pub scores: PairwiseScores,
    /// Candidate pairs compared.
    pub candidate_pairs: usize,
    /// Pairs left in the review band.
    pub review_pairs: usize,
    /// Wall seconds of the resolve step.
    pub seconds: f64,
    /// Wall seconds per phase (`prepare`, then the matcher's own).
    pub phases: Vec<(&'static str, f64)>,
}

impl LabelledSet {
    /// Build a set from CSV-like rows: `header` names the columns as a CRM
    /// export would (guessed exactly as `synchub dedupe` guesses them) and
    /// each row carries its truth label.
    pub fn from_rows<'a>(
        name: &str,
        header: &[&str],
        rows: impl IntoIterator<Item = (&'a [String], u32)>,
        region: Option<&str>,
    ) -> Self {
        let fields: Vec<_> = header.iter().map(|h| guess(h)).collect();
        let (mut contacts, mut truth) = (Vec::new(), Vec::new());
        for (values, label) in rows {
            let rec = csv::StringRecord::from(values.to_vec());
            let (contact, _, _) = row_contact(&rec, &fields, region);
            contacts.push(contact);
            truth.push(label);
        }
        LabelledSet {
            name: name.to_string(),
            contacts,
            truth,
            region: region.map(str::to_string),
        }
    }

    /// Resolve the set with `cfg` (its region applied) and score the clusters.
    pub fn evaluate(&self, cfg: &MatchConfig) -> SetReport {
        let mut cfg = cfg.clone();
        cfg.default_region.clone_from(&self.region);
        let start = Instant::now();
        let resolution = resolve(&self.contacts, &cfg);
        self.report(&resolution, start.elapsed().as_secs_f64())
    }

    /// [`LabelledSet::evaluate`], dropping each contact once it is prepared,
    /// as `synchub dedupe` holds only prepared rows (for large sets).
    pub fn evaluate_owned(mut self, cfg: &MatchConfig) -> SetReport {
        let mut cfg = cfg.clone();
        cfg.default_region.clone_from(&self.region);
        let start = Instant::now();
        let region = cfg.default_region.clone();
        let prepared: Vec<Prepared> = std::mem::take(&mut self.contacts)
            .into_par_iter()
            .map(|c| Prepared::new(&c, region.as_deref()))
            .collect();
        let prepare = start.elapsed().as_secs_f64();
        let resolution = resolve_prepared(&prepared, &cfg);
        let rows = prepared.len();
        drop(prepared);
        let mut report = self.report(&resolution, start.elapsed().as_secs_f64());
        report.rows = rows;
        report.phases.insert(0, ("prepare", prepare));
        report
    }

    fn report(&self, resolution: &crate::matcher::Resolution, seconds: f64) -> SetReport {
        let review_pairs = resolution
            .pairs
            .iter()
            .filter(|p| resolution.decision(p.score) == Decision::Review)
            .count();
        SetReport {
            name: self.name.clone(),
            rows: self.truth.len(),
            scores: pairwise_scores(&self.truth, &resolution.labels),
            candidate_pairs: resolution.candidate_pairs,
            review_pairs,
            seconds,
            phases: resolution.phases.clone(),
        }
    }
}

/// The crate's `data/` folder (evaluation data committed with the code).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Load a FEBRL set exported by `data/export_febrl.py` (`febrl1` or `febrl2`):
/// records from `NAME.csv`, truth from the true links in `NAME_links.csv`.
/// FEBRL is Australian: the set resolves with region `AU`.
pub fn febrl(name: &str) -> Result<LabelledSet, DedupeError> {
    let dir = data_dir().join("febrl");
    let records = dir.join(format!("{name}.csv"));
    let links = dir.join(format!("{name}_links.csv"));
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DedupeError::Csv { path, source }
    };
    let mut reader = csv::Reader::from_path(&records).map_err(err(&records))?;
    let headers = reader.headers().map_err(err(&records))?.clone();
    let col = |n: &str| headers.iter().position(|h| h == n);
    let idx: Vec<Option<usize>> = [
        "rec_id",
        "given_name",
        "surname",
        "street_number",
        "address_1",
        "address_2",
        "suburb",
        "postcode",
        "state",
        "date_of_birth",
    ]
    .iter()
    .map(|n| col(n))
    .collect();
    let mut ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut contacts = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(err(&records))?;
        let get = |i: usize| {
            idx[i]
                .and_then(|c| rec.get(c))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let id = get(0).unwrap_or_default();
        let line1 = match (get(3), get(4)) {
            (Some(n), Some(s)) => Some(format!("{n} {s}")),
            (n, s) => s.or(n),
        };
        let address = Address {
            line1,
            line2: get(5),
            city: get(6),
            postal_code: get(7),
            region: get(8),
            ..Address::default()
        };
        let contact = Contact {
            given_name: get(1),
            family_name: get(2),
            birth_date: get(9).and_then(|d| parse_birth_date(&d, Some("AU"))),
            addresses: if address.is_empty() {
                Vec::new()
            } else {
                vec![address]
            },
            ..Contact::default()
        };
        let n = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        ids.insert(id, n);
        contacts.push(contact);
    }
    let mut parent: Vec<u32> = (0..u32::try_from(contacts.len()).unwrap_or(u32::MAX)).collect();
    fn root(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    let mut reader = csv::Reader::from_path(&links).map_err(err(&links))?;
    for rec in reader.records() {
        let rec = rec.map_err(err(&links))?;
        let (Some(a), Some(b)) = (
            rec.get(0).and_then(|a| ids.get(a)),
            rec.get(1).and_then(|b| ids.get(b)),
        ) else {
            continue;
        };
        let (ra, rb) = (root(&mut parent, *a), root(&mut parent, *b));
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
    let truth = (0..parent.len())
        .map(|i| root(&mut parent, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    Ok(LabelledSet {
        name: name.to_string(),
        contacts,
        truth,
        region: Some("AU".into()),
    })
}

/// The project's generator ([`crate::synth::generate`]), resolved with region TW as the CLI eval does.
pub fn project_generator(rows: usize, seed: u64) -> LabelledSet {
    let data = crate::synth::generate(seed, rows);
    let header: Vec<&str> = crate::synth::COLUMNS[..12].to_vec();
    LabelledSet::from_rows(
        &format!("project_{rows}"),
        &header,
        data.iter().map(|r| (&r.values[..], r.entity)),
        Some("TW"),
    )
}

/// The independent generator ([`crate::synth_indep::generate`]), resolved with region US.
pub fn independent_generator(rows: usize, seed: u64) -> LabelledSet {
    let data = crate::synth_indep::generate(seed, rows);
    let fields: Vec<_> = crate::synth_indep::HEADER
        .iter()
        .map(|h| guess(h))
        .collect();
    // Rows are consumed as they are read, so rows and contacts are not both
    // held in full at a million rows.
    let (contacts, truth): (Vec<Contact>, Vec<u32>) = data
        .into_par_iter()
        .map(|r| {
            let (c, _, _) = row_contact(&csv::StringRecord::from(r.values), &fields, Some("US"));
            (c, r.entity)
        })
        .unzip();
    LabelledSet {
        name: format!("indep_{rows}"),
        contacts,
        truth,
        region: Some("US".into()),
    }
}
