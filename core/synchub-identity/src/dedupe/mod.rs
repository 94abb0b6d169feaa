//! `synchub dedupe`: CSV files in, `source,source_id,cluster_id` out. Every
//! input row appears exactly once in the output; rows that cannot be read
//! are reported with file and row number and kept as their own cluster.

pub mod columns;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::Serialize;
use synchub_core::model::{Address, Contact};

use self::columns::{parse_map_entry, resolve as resolve_columns, ColumnField};
use crate::matcher::prepare::Prepared;
use crate::matcher::{resolve_prepared, Decision, MatchConfig};
use crate::normalize::date::parse_birth_date;

/// What can stop a dedupe run. Row-level problems are not errors: they are
/// listed in [`DedupeSummary::bad_rows`].
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    /// No `--input` given.
    #[error("no input files: pass at least one --input FILE.csv")]
    NoInputs,
    /// More `--source` labels than inputs.
    #[error("{labels} --source labels for {inputs} --input files")]
    TooManySources {
        /// Labels given.
        labels: usize,
        /// Inputs given.
        inputs: usize,
    },
    /// A `--map` entry is not `COLUMN=FIELD`.
    #[error("bad --map entry {0:?}: expected COLUMN=FIELD")]
    BadMap(String),
    /// A `--map` field is not a known field.
    #[error("unknown field {0:?} in --map: use one of id, first_name, last_name, full_name, email, phone, company, address_line1, address_line2, city, postal_code, region, country, birth_date")]
    UnknownField(String),
    /// A mapped column is not in a file's header.
    #[error("{file}: no column {column:?} (named in --map)")]
    MissingColumn {
        /// The file.
        file: PathBuf,
        /// The column.
        column: String,
    },
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeInput {
    /// CSV path.
    pub path: PathBuf,
    /// Source label; default: the file stem.
    pub source: Option<String>,
}

/// Options of a dedupe run, as the CLI collects them.
#[derive(Debug, Clone, Default)]
pub struct DedupeOptions {
    /// Input files in order.
    pub inputs: Vec<DedupeInput>,
    /// `COLUMN=FIELD` entries; empty = guess from headers.
    pub map: Vec<String>,
    /// Default region for phones (`--region CC`).
    pub region: Option<String>,
    /// Output CSV path.
    pub output: PathBuf,
    /// Matcher tuning (`default_region` is taken from `region`).
    pub config: MatchConfig,
}

/// A row that could not be read as a contact, or had an unreadable value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// The file.
    pub file: PathBuf,
    /// 1-based data row number (the header is row 0).
    pub row: u64,
    /// What was wrong.
    pub reason: String,
}

/// What a dedupe run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DedupeSummary {
    /// Rows read (and written).
    pub rows: usize,
    /// Distinct clusters written.
    pub clusters: usize,
    /// Rows that share a cluster with at least one other row.
    pub rows_in_merged_clusters: usize,
    /// Candidate pairs scored.
    pub candidate_pairs: usize,
    /// Pairs in the review band.
    pub review_pairs: usize,
    /// Rows that were unreadable or had unreadable values.
    pub bad_rows: Vec<BadRow>,
    /// The fitted matcher parameters, thresholds and review-band estimate.
    pub matcher: Option<crate::matcher::report::MatchReport>,
}

struct RowMeta {
    source: usize,
    source_id: String,
}

/// Run dedupe on CSV files and write the cluster file.
pub fn dedupe_csv(opts: &DedupeOptions) -> Result<DedupeSummary, DedupeError> {
    if opts.inputs.is_empty() {
        return Err(DedupeError::NoInputs);
    }
    let map = opts
        .map
        .iter()
        .map(|m| parse_map_entry(m))
        .collect::<Result<Vec<_>, _>>()?;
    let region = opts.region.as_deref().map(str::to_ascii_uppercase);
    let mut metas: Vec<RowMeta> = Vec::new();
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut bad_rows = Vec::new();
    let mut sources = Vec::new();
    for (s, input) in opts.inputs.iter().enumerate() {
        sources.push(source_label(input));
        let (rows, fields) = read_rows(&input.path, &map, &mut bad_rows)?;
        let parsed: Vec<(Prepared, String, Option<String>)> = rows
            .par_iter()
            .map(|(row_no, rec)| {
                let (contact, id, problem) = row_contact(rec, &fields, region.as_deref());
                (
                    Prepared::new(&contact, region.as_deref()),
                    id.unwrap_or_else(|| row_no.to_string()),
                    problem,
                )
            })
            .collect();
        for ((p, id, problem), (row_no, _)) in parsed.into_iter().zip(&rows) {
            if let Some(reason) = problem {
                bad_rows.push(BadRow {
                    file: input.path.clone(),
                    row: *row_no,
                    reason,
                });
            }
            metas.push(RowMeta {
                source: s,
                source_id: id,
            });
            prepared.push(p);
        }
    }
    let mut cfg = opts.config.clone();
    cfg.default_region = region;
    let resolution = resolve_prepared(&prepared, &cfg);
    drop(prepared);
    let matcher = Some(resolution.report());
    let review_pairs = resolution
        .pairs
        .iter()
        .filter(|p| resolution.decision(p.score) == Decision::Review)
        .count();
    let (cluster_ids, clusters, merged) = number_clusters(&resolution.labels);
    write_output(&opts.output, &sources, &metas, &cluster_ids)?;
    bad_rows.sort_by(|a, b| (&a.file, a.row).cmp(&(&b.file, b.row)));
    Ok(DedupeSummary {
        rows: metas.len(),
        clusters,
        rows_in_merged_clusters: merged,
        candidate_pairs: resolution.candidate_pairs,
        review_pairs,
        bad_rows,
        matcher,
    })
}

fn source_label(input: &DedupeInput) -> String {
    input.source.clone().unwrap_or_else(|| {
        input.path.file_stem().map_or_else(
            || input.path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    })
}

type Rows = Vec<(u64, csv::StringRecord)>;

/// Read every data row. Rows that fail to parse (bad UTF-8, broken quoting)
/// are reported and kept as empty records so they still get a cluster.
fn read_rows(
    path: &Path,
    map: &[(String, ColumnField)],
    bad: &mut Vec<BadRow>,
) -> Result<(Rows, Vec<Option<ColumnField>>), DedupeError> {
    let err = |source| DedupeError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(err)?;
    let headers = reader.headers().map_err(err)?.clone();
    let fields = resolve_columns(&headers, map, path)?;
    let mut rows = Vec::new();
    let mut raw = csv::ByteRecord::new();
    let mut row_no = 0u64;
    loop {
        row_no += 1;
        match reader.read_byte_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {
                let rec = match csv::StringRecord::from_byte_record(raw.clone()) {
                    Ok(r) => r,
                    Err(_) => {
                        bad.push(BadRow {
                            file: path.to_path_buf(),
                            row: row_no,
                            reason: "not valid UTF-8".into(),
                        });
                        csv::StringRecord::from_byte_record_lossy(raw.clone())
                    }
                };
                if rec.len() != headers.len() {
                    let reason = format!("{} fields, header has {}", rec.len(), headers.len());
                    bad.push(BadRow {
                        file: path.to_path_buf(),
                        row: row_no,
                        reason,
                    });
                }
                rows.push((row_no, rec));
            }
            Err(e) if e.is_io_error() => return Err(err(e)),
            Err(e) => {
                bad.push(BadRow {
                    file: path.to_path_buf(),
                    row: row_no,
                    reason: e.to_string(),
                });
                rows.push((row_no, csv::StringRecord::new()));
            }
        }
    }
    Ok((rows, fields))
}

/// Build a contact from a row whose columns feed `fields`; returns it, the
/// id column, and a problem if any. Birth dates are read with the row's own
/// country (else `default_region`) deciding `DD/MM` against `MM/DD`.
pub fn row_contact(
    rec: &csv::StringRecord,
    fields: &[Option<ColumnField>],
    default_region: Option<&str>,
) -> (Contact, Option<String>, Option<String>) {
    let mut c = Contact::default();
    let mut addr = Address::default();
    let mut id = None;
    let mut problem = None;
    let mut birth_date = None;
    let set = |slot: &mut Option<String>, v: &str| {
        if slot.is_none() {
            *slot = Some(v.to_string());
        }
    };
    for (value, field) in rec.iter().zip(fields) {
        let v = value.trim();
        let Some(field) = field.filter(|_| !v.is_empty()) else {
            continue;
        };
        match field {
            ColumnField::Id => set(&mut id, v),
            ColumnField::FirstName => set(&mut c.given_name, v),
            ColumnField::LastName => set(&mut c.family_name, v),
            ColumnField::FullName => set(&mut c.full_name, v),
            ColumnField::Email => c.emails.extend(
                v.split([';', ','])
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty()),
            ),
            ColumnField::Phone => c.phones.extend(
                v.split([';', '/'])
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty()),
            ),
            ColumnField::Company => set(&mut c.company, v),
            ColumnField::AddressLine1 => set(&mut addr.line1, v),
            ColumnField::AddressLine2 => set(&mut addr.line2, v),
            ColumnField::City => set(&mut addr.city, v),
            ColumnField::PostalCode => set(&mut addr.postal_code, v),
            ColumnField::Region => set(&mut addr.region, v),
            ColumnField::Country => set(&mut addr.country, v),
            ColumnField::BirthDate => set(&mut birth_date, v),
        }
    }
    if !addr.is_empty() {
        c.addresses.push(addr);
    }
    if let Some(v) = birth_date {
        let region = crate::keys::contact_region(&c, default_region);
        match parse_birth_date(&v, region.as_deref()) {
            Some(d) => c.birth_date = Some(d),
            None => problem = Some(format!("unreadable birth_date {v:?} (ignored)")),
        }
    }
    if problem.is_none() && c == Contact::default() {
        problem = Some("no name, email, phone or address (kept as its own cluster)".into());
    }
    (c, id, problem)
}

/// Parse a birth date without a region: see [`parse_birth_date`].
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    parse_birth_date(s, None)
}

/// Sequential cluster numbers in order of first appearance; also the number
/// of clusters and of rows in clusters of two or more.
fn number_clusters(labels: &[u32]) -> (Vec<u32>, usize, usize) {
    let mut number = vec![u32::MAX; labels.len()];
    let mut size = vec![0u32; labels.len()];
    let mut next = 0u32;
    let mut ids = Vec::with_capacity(labels.len());
    for l in labels {
        let l = *l as usize;
        if number[l] == u32::MAX {
            next += 1;
            number[l] = next;
        }
        size[l] += 1;
        ids.push(number[l]);
    }
    let merged = labels.iter().filter(|l| size[**l as usize] > 1).count();
    (ids, next as usize, merged)
}

fn write_output(
    path: &Path,
    sources: &[String],
    metas: &[RowMeta],
    ids: &[u32],
) -> Result<(), DedupeError> {
    let err = |source| DedupeError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record(["source", "source_id", "cluster_id"])
        .map_err(err)?;
    for (m, id) in metas.iter().zip(ids) {
        let cluster = id.to_string();
        w.write_record([
            sources[m.source].as_str(),
            m.source_id.as_str(),
            cluster.as_str(),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|e| err(e.into()))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
