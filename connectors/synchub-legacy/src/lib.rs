//! Legacy-CRM sources for the one-shot migration (`synchub migrate KIND PATH_OR_URL`).
//!
//! A migration is a run of the engine with one of these connectors as the
//! source; the engine brings the identity map, dedup, dead letters,
//! per-page transactions and `--resume`. This crate reads the legacy data:
//!
//! - export files — `salesforce` (Data Export folder: `Account.csv`,
//!   `Contact.csv`, `Lead.csv`, `Opportunity.csv`), `hubspot` (contacts,
//!   companies, deals exports), `zoho`, `pipedrive`, and `csv` (any CSV with
//!   a TOML mapping file), in UTF-8 (with or without BOM), UTF-16, Big5 or
//!   GBK/GB18030, detected or forced;
//! - databases — `suitecrm` and `vtiger` through `mysql://…`, honouring
//!   soft-deleted rows, custom-field tables and SuiteCRM's separate e-mail
//!   tables.
//!
//! Mapping: contacts and leads → [`synchub_core::Contact`] (leads tagged
//! `lead`), accounts/companies/organisations → [`synchub_core::Company`],
//! opportunities/deals/potentials → [`synchub_core::Order`]: the model has no
//! deal, and an order is the one record with an amount, a currency, a status
//! and a customer, so the stage maps to `status` (`won`, `lost`, `open`, via
//! a value table) with the raw stage kept as `custom.stage`, the amount to
//! `total`, the close date to `placed_at` and the account to `customer`.
//! Every record's `external_id` is its legacy id; every column without a
//! mapping is kept under its own name in `custom`. Rows that cannot be
//! decoded or validated come back in [`synchub_core::Page::rejected`] with
//! their location (`Contact.csv row 17 (line 18)`: the 1-based data row,
//! header excluded, and the physical line) and the reason.

mod csvfile;
pub mod encoding;
mod error;
mod files;
pub mod mapping;
mod phone;
mod sample;
mod sql;
pub mod transform;

use std::path::PathBuf;

use synchub_core::Connector;

pub use encoding::EncodingChoice;
pub use error::{redact_url, LegacyError};
pub use mapping::Mapping;
pub use sample::write_sample_contacts_csv;

/// The migration kinds, as `synchub migrate KIND` spells them.
pub const KINDS: &[&str] = &[
    "salesforce",
    "hubspot",
    "zoho",
    "pipedrive",
    "csv",
    "suitecrm",
    "vtiger",
];

/// The kinds read from a database URL rather than files.
pub const DATABASE_KINDS: &[&str] = &["suitecrm", "vtiger"];

/// Default rows per page.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// Options of a legacy source (from the `migrate` command line).
#[derive(Debug, Clone)]
pub struct LegacyOptions {
    /// `--encoding`: how export files are encoded (databases ignore it).
    pub encoding: EncodingChoice,
    /// `--map`: a mapping file laid over the kind's built-in mapping (for
    /// `csv`, it replaces the built-in generic one).
    pub map_file: Option<PathBuf>,
    /// Rows per page (default 1000).
    pub page_size: usize,
    /// Region for phones without a country code (`TW`, `HK`, `CN`), overriding the mapping's.
    pub default_region: Option<String>,
    /// Drop soft-deleted rows instead of emitting them as deleted records.
    pub skip_deleted: bool,
}

impl Default for LegacyOptions {
    fn default() -> Self {
        LegacyOptions {
            encoding: EncodingChoice::Auto,
            map_file: None,
            page_size: DEFAULT_PAGE_SIZE,
            default_region: None,
            skip_deleted: false,
        }
    }
}

/// The mapping a kind uses: its built-in mapping with the `--map` file over it.
pub fn mapping_for(kind: &str, opts: &LegacyOptions) -> Result<Mapping, LegacyError> {
    let builtin = Mapping::builtin(kind)?;
    match &opts.map_file {
        None => Ok(builtin),
        Some(path) if kind == "csv" => Mapping::load(path),
        Some(path) => Ok(builtin.overlay(Mapping::load(path)?)),
    }
}

/// Builds the source connector for `kind` reading `path_or_url`.
///
/// Files are checked to exist and matched against the mapping here; a
/// database is not contacted until [`Connector::check`] or the first pull.
pub fn build(
    kind: &str,
    path_or_url: &str,
    opts: LegacyOptions,
) -> Result<Box<dyn Connector>, LegacyError> {
    let wanted = kind.trim().to_ascii_lowercase();
    let kind: &'static str = KINDS
        .iter()
        .copied()
        .find(|k| *k == wanted)
        .ok_or_else(|| LegacyError::UnknownKind {
            kind: kind.to_string(),
        })?;
    let mapping = mapping_for(kind, &opts)?;
    if DATABASE_KINDS.contains(&kind) {
        let source = sql::SqlSource::new(kind, path_or_url, &mapping, opts)?;
        return Ok(Box::new(source));
    }
    if path_or_url.contains("://") {
        return Err(LegacyError::Path {
            path: redact_url(path_or_url),
            message: format!("{kind} reads export files: pass a folder or a .csv file, not a URL"),
        });
    }
    let source = files::ExportSource::new(kind, std::path::Path::new(path_or_url), &mapping, opts)?;
    Ok(Box::new(files::ExportSourceHandle(std::sync::Arc::new(
        source,
    ))))
}
