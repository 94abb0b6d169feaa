//! A CSV file of contacts as a synchub source.
//!
//! Columns are mapped to model fields with a column map (`"E-mail" =
//! "email"`); columns without a mapping are kept as custom fields. The
//! cursor is the byte offset and row number after the last row served, so a
//! resumed run seeks straight to where it stopped and pages are identical on
//! every run. A row that cannot be read is rejected with its row number.

mod map;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use synchub_core::connector::ObjectSpec;
use synchub_core::{Connector, ConnectorError, Cursor, ObjectKind, Page, Rejected, RemoteRecord};

pub use map::{ContactField, FIELDS};

/// Settings of a CSV source, as written in a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// The file; relative paths are resolved against the pipeline file's folder.
    pub path: PathBuf,
    /// Column holding the record id; the 1-based row number when absent.
    #[serde(default)]
    pub id_column: Option<String>,
    /// Column name → model field (see [`FIELDS`]).
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Rows per page (default 1000).
    #[serde(default)]
    pub page_size: Option<usize>,
}

/// A built CSV source.
#[derive(Debug, Clone)]
pub struct CsvSource {
    path: PathBuf,
    id_column: Option<String>,
    map: BTreeMap<String, ContactField>,
    delimiter: u8,
    page_size: usize,
}

impl CsvSource {
    /// Validates the config (no IO). `base` is the pipeline file's folder.
    pub fn build(
        cfg: CsvConfig,
        base: Option<&std::path::Path>,
    ) -> Result<CsvSource, ConnectorError> {
        let mut map = BTreeMap::new();
        for (column, field) in &cfg.map {
            let f = ContactField::parse(field).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "map.\"{column}\": unknown field `{field}`; expected one of {}",
                    FIELDS.join(", ")
                ))
            })?;
            map.insert(column.clone(), f);
        }
        let delimiter = match cfg.delimiter {
            None => b',',
            Some(c) if c.is_ascii() => c as u8,
            Some(c) => {
                return Err(ConnectorError::Config(format!(
                    "delimiter `{c}` must be one ASCII character"
                )))
            }
        };
        let path = match base {
            Some(b) if cfg.path.is_relative() => b.join(&cfg.path),
            _ => cfg.path.clone(),
        };
        Ok(CsvSource {
            path,
            id_column: cfg.id_column,
            map,
            delimiter,
            page_size: cfg.page_size.unwrap_or(1000).max(1),
        })
    }

    fn io_err(&self, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn read_page(&self, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let file = File::open(&self.path).map_err(|e| self.io_err(e))?;
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .from_reader(BufReader::new(file));
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| self.io_err(format!("header row: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        if headers.iter().all(String::is_empty) {
            return Err(
                self.io_err("the file is empty: a header row naming the columns is expected")
            );
        }
        if let Some(idc) = &self.id_column {
            if !headers.contains(idc) {
                return Err(ConnectorError::Config(format!(
                    "id_column `{idc}` is not a column of {} (columns: {})",
                    self.path.display(),
                    headers.join(", ")
                )));
            }
        }
        for column in self.map.keys() {
            if !headers.contains(column) {
                return Err(ConnectorError::Config(format!(
                    "map: column `{column}` is not in {} (columns: {})",
                    self.path.display(),
                    headers.join(", ")
                )));
            }
        }
        let offset = from
            .and_then(|c| c.0.get("offset"))
            .and_then(|v| v.as_u64());
        let mut row_no = from
            .and_then(|c| c.0.get("row"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if let Some(offset) = offset {
            let mut pos = csv::Position::new();
            pos.set_byte(offset).set_line(row_no + 1).set_record(row_no);
            rdr.seek(pos).map_err(|e| self.io_err(e))?;
        }
        let mut page = Page::default();
        let mut record = csv::StringRecord::new();
        let mut served = 0;
        loop {
            if served == self.page_size {
                break;
            }
            match rdr.read_record(&mut record) {
                Ok(false) => {
                    page.done = true;
                    break;
                }
                Ok(true) => {
                    row_no += 1;
                    served += 1;
                    self.map_row(&headers, &record, row_no, &mut page);
                }
                Err(e) => {
                    row_no += 1;
                    served += 1;
                    page.rejected.push(Rejected {
                        external_id: None,
                        location: Some(format!("{} row {row_no}", self.path.display())),
                        reason: format!("unreadable row: {e}"),
                        raw: json!(null),
                    });
                }
            }
        }
        let offset = rdr.position().byte();
        page.next = Some(Cursor(json!({ "offset": offset, "row": row_no })));
        Ok(page)
    }

    fn map_row(&self, headers: &[String], row: &csv::StringRecord, row_no: u64, page: &mut Page) {
        let raw: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(row.iter())
            .map(|(h, v)| (h.clone(), json!(v)))
            .collect();
        let location = format!("{} row {row_no}", self.path.display());
        if row.len() != headers.len() {
            page.rejected.push(Rejected {
                external_id: None,
                location: Some(location),
                reason: format!(
                    "row has {} fields, the header has {}",
                    row.len(),
                    headers.len()
                ),
                raw: serde_json::Value::Object(raw),
            });
            return;
        }
        let external_id = match &self.id_column {
            Some(c) => raw
                .get(c)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .trim()
                .to_string(),
            None => row_no.to_string(),
        };
        if external_id.is_empty() {
            page.rejected.push(Rejected {
                external_id: None,
                location: Some(location),
                reason: "the id column is empty".into(),
                raw: serde_json::Value::Object(raw),
            });
            return;
        }
        match map::to_contact(headers, row, &self.map, self.id_column.as_deref()) {
            Ok(contact) => page.records.push(RemoteRecord {
                external_id,
                version: None,
                updated_at: None,
                deleted: false,
                record: Some(synchub_core::Record::Contact(contact)),
                raw: serde_json::Value::Object(raw),
            }),
            Err(reason) => page.rejected.push(Rejected {
                external_id: Some(external_id),
                location: Some(location),
                reason,
                raw: serde_json::Value::Object(raw),
            }),
        }
    }
}

#[async_trait]
impl Connector for CsvSource {
    fn kind(&self) -> &'static str {
        "csv"
    }

    fn objects(&self) -> Vec<ObjectSpec> {
        vec![ObjectSpec {
            kind: ObjectKind::Contact,
            can_read: true,
            incremental: true,
            can_write: false,
        }]
    }

    async fn check(&self) -> Result<(), ConnectorError> {
        File::open(&self.path)
            .map(|_| ())
            .map_err(|e| self.io_err(e))
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: Option<&Cursor>,
    ) -> Result<Page, ConnectorError> {
        if object != ObjectKind::Contact {
            return Err(ConnectorError::Unsupported(format!(
                "csv reads contacts, not {object}"
            )));
        }
        let this = self.clone();
        let from = from.cloned();
        tokio::task::spawn_blocking(move || this.read_page(from.as_ref()))
            .await
            .map_err(|e| ConnectorError::Io {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?
    }
}
