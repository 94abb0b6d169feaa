//! A CSV file of contacts as a synchub source.
//!
//! Columns are mapped to model fields with a column map (`"E-mail" =
//! "email"`); columns without a mapping are kept as custom fields. A row
//! that cannot be read is rejected with its row number.
//!
//! The cursor is the byte offset and row number after the last row served,
//! with a fingerprint of the file as it was read: its size, modification
//! time and the SHA-256 of the consumed prefix. A resumed run seeks straight
//! to where it stopped when the prefix is unchanged (rows appended after it
//! are read as new); when the file changed under its cursor (an edit of a
//! row already read, even one of the same length) it is read again from the
//! start, loudly: the engine's snapshots make unchanged rows no-ops and the
//! edited ones updates. A byte offset into a changed file is never trusted.
//!
//! Within one pass over the file, a row whose id an earlier row already
//! carries is rejected naming both rows: applying it would silently
//! overwrite the first person.

mod factory;
mod fingerprint;
mod map;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use synchub_core::connector::ObjectSpec;
use synchub_core::{Connector, ConnectorError, Cursor, ObjectKind, Page, Rejected, RemoteRecord};

pub use factory::{CsvFactory, CsvKind};
use fingerprint::{FileStat, Pass, Recorder, StoredCursor};
pub use map::{deprecated_alias, ContactField, ALIASES, CANONICAL, FIELDS};

/// The longest value of a column that feeds an index (the id column, an
/// email or a phone): the store refuses longer ones (a PostgreSQL b-tree
/// entry holds about 2.7 kB), so the row is rejected here, with its row
/// number and column, instead of failing its whole page.
pub const MAX_INDEXED_BYTES: usize = 1024;

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
    /// ISO 3166 region used to read dates written day/month or with a
    /// 民國 year (`74/05/06` in `TW` is 1985-05-06) when the row's own
    /// country column does not say; without either, an ambiguous date is
    /// refused with its row named.
    #[serde(default)]
    pub date_region: Option<String>,
    /// The file's encoding: `utf-8` (the default), `big5`, `gbk` (also
    /// `gb18030`), `shift_jis`, `windows-1252`, or `auto` (UTF-8 when the
    /// start of the file is valid UTF-8, else whichever of Big5 and GBK
    /// decodes it without error, Big5 on a tie). A field that does not
    /// decode rejects its row, naming it.
    #[serde(default)]
    pub encoding: Option<String>,
}

/// A built CSV source.
#[derive(Debug, Clone)]
pub struct CsvSource {
    path: PathBuf,
    id_column: Option<String>,
    map: BTreeMap<String, ContactField>,
    delimiter: u8,
    page_size: usize,
    date_region: Option<String>,
    /// `None`: UTF-8; else the encoding fields are decoded from.
    encoding: EncodingSetting,
    /// The pass over the file this instance is serving (ids seen, hash of
    /// the consumed prefix), so a run's next page need not re-hash it.
    pass: Arc<Mutex<Option<Pass>>>,
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
        let date_region = match cfg.date_region.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) if r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(r.to_ascii_uppercase())
            }
            Some(r) => {
                return Err(ConnectorError::Config(format!(
                    "date_region `{r}` is not a 2-letter ISO 3166 code (e.g. TW, HK, CN)"
                )))
            }
        };
        let encoding = EncodingSetting::parse(cfg.encoding.as_deref())?;
        Ok(CsvSource {
            path,
            encoding,
            id_column: cfg.id_column,
            map,
            delimiter,
            page_size: cfg.page_size.unwrap_or(1000).max(1),
            date_region,
            pass: Arc::default(),
        })
    }

    fn io_err(&self, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn headers(&self) -> Result<Vec<String>, ConnectorError> {
        let file = File::open(&self.path).map_err(|e| self.io_err(e))?;
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .from_reader(BufReader::new(file));
        let raw = rdr
            .byte_headers()
            .map_err(|e| self.io_err(format!("header row: {e}")))?
            .clone();
        let encoding = self.encoding_of_file()?;
        let headers: Vec<String> = decode_record(encoding, &raw)
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
        Ok(headers)
    }

    /// The encoding fields are decoded from (`auto` looks at the file's start).
    fn encoding_of_file(&self) -> Result<&'static encoding_rs::Encoding, ConnectorError> {
        match self.encoding {
            EncodingSetting::Fixed(e) => Ok(e),
            EncodingSetting::Auto => {
                use std::io::Read;
                let mut sample = Vec::new();
                File::open(&self.path)
                    .and_then(|f| f.take(256 * 1024).read_to_end(&mut sample))
                    .map_err(|e| self.io_err(e))?;
                Ok(sniff(&sample))
            }
        }
    }

    fn reader<R: std::io::Read>(&self, from: R, has_headers: bool) -> csv::Reader<R> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .has_headers(has_headers)
            .from_reader(from)
    }

    /// The pass to continue from `from`: this instance's own when the
    /// cursor is the one it handed out and the file is as it saw it; else
    /// one rebuilt from the file's prefix when that prefix is unchanged;
    /// else (the file changed under its cursor) a new pass from row 1.
    /// `Err(page)` when nothing can have changed and nothing is left.
    fn pass_for(
        &self,
        from: Option<&Cursor>,
        stat: FileStat,
        headers: &[String],
    ) -> Result<Result<Pass, Page>, ConnectorError> {
        let Some(cursor) = from else {
            return Ok(Ok(Pass::new(stat)));
        };
        let Some(stored) = StoredCursor::parse(cursor) else {
            tracing::warn!(path = %self.path.display(), "the stored cursor carries no fingerprint of the file (written by an older synchub): reading the file again from the start");
            return Ok(Ok(Pass::new(stat)));
        };
        if let Ok(mut cached) = self.pass.lock() {
            if let Some(p) = cached.take() {
                if p.continues(&stored, stat) {
                    return Ok(Ok(p));
                }
            }
        }
        if stored.stat == stat && stored.offset == stat.size {
            // Untouched since the last read, and read to the end.
            return Ok(Err(Page {
                next: Some(cursor.clone()),
                done: true,
                ..Page::default()
            }));
        }
        let rebuilt = if stored.offset <= stat.size {
            self.rebuild(&stored, stat, headers)?
        } else {
            None
        };
        Ok(Ok(match rebuilt {
            Some(p) => p,
            None => {
                tracing::warn!(
                    path = %self.path.display(),
                    rows_read = stored.row,
                    "the file changed under its cursor (rows already read were edited, removed or \
                     moved): reading it again from the start; unchanged rows change nothing"
                );
                Pass::new(stat)
            }
        }))
    }

    /// Hashes the first `stored.offset` bytes and collects their row ids;
    /// `None` when the hash differs from the cursor's.
    fn rebuild(
        &self,
        stored: &StoredCursor,
        stat: FileStat,
        headers: &[String],
    ) -> Result<Option<Pass>, ConnectorError> {
        use std::io::Read;
        let file = File::open(&self.path).map_err(|e| self.io_err(e))?;
        let mut hashing = fingerprint::Hashing::new(BufReader::new(file).take(stored.offset));
        let mut pass = Pass::new(stat);
        {
            let encoding = self.encoding_of_file()?;
            let mut rdr = self.reader(&mut hashing, true);
            let mut raw = csv::ByteRecord::new();
            let mut row_no = 0;
            loop {
                match rdr.read_byte_record(&mut raw) {
                    Ok(false) => break,
                    Ok(true) => {
                        row_no += 1;
                        let id = decode_record(encoding, &raw)
                            .ok()
                            .and_then(|record| self.row_id(headers, &record));
                        if let Some(id) = id {
                            pass.ids.entry(id).or_insert(row_no);
                        }
                    }
                    Err(_) => row_no += 1,
                }
            }
        }
        // Whatever the parser left unread still belongs to the prefix.
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| self.io_err(e))?;
        let (hasher, read) = hashing.finish();
        if read != stored.offset {
            return Ok(None);
        }
        pass.advance_to(hasher, stored.offset, stored.row);
        Ok((pass.hash == stored.prefix_sha256).then_some(pass))
    }

    fn read_page(&self, from: Option<&Cursor>) -> Result<Page, ConnectorError> {
        let headers = self.headers()?;
        let stat = FileStat::of(&self.path).map_err(|e| self.io_err(e))?;
        let mut pass = match self.pass_for(from, stat, &headers)? {
            Ok(p) => p,
            Err(nothing_new) => return Ok(nothing_new),
        };
        let mut file = File::open(&self.path).map_err(|e| self.io_err(e))?;
        file.seek(SeekFrom::Start(pass.offset))
            .map_err(|e| self.io_err(e))?;
        let mut recorder = Recorder::new(file);
        let mut page = Page::default();
        let mut row_no = pass.row;
        let consumed = {
            let encoding = self.encoding_of_file()?;
            let mut rdr = self.reader(&mut recorder, pass.offset == 0);
            let mut raw = csv::ByteRecord::new();
            let mut served = 0;
            loop {
                if served == self.page_size {
                    break;
                }
                match rdr.read_byte_record(&mut raw) {
                    Ok(false) => {
                        page.done = true;
                        break;
                    }
                    Ok(true) => {
                        row_no += 1;
                        served += 1;
                        match decode_record(encoding, &raw) {
                            Ok(record) => {
                                self.map_row(&headers, &record, row_no, &mut pass, &mut page)
                            }
                            Err(e) => page.rejected.push(Rejected {
                                external_id: None,
                                location: Some(format!("{} row {row_no}", self.path.display())),
                                reason: format!("unreadable row: {e}"),
                                raw: json!(String::from_utf8_lossy(raw.as_slice())),
                            }),
                        }
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
            rdr.position().byte()
        };
        pass.consume(recorder.bytes(consumed), row_no);
        page.next = Some(pass.cursor());
        if let Ok(mut cached) = self.pass.lock() {
            *cached = Some(pass);
        }
        Ok(page)
    }

    /// The id of a well-formed row with a non-empty id column.
    fn row_id(&self, headers: &[String], row: &csv::StringRecord) -> Option<String> {
        let c = self.id_column.as_ref()?;
        if row.len() != headers.len() {
            return None;
        }
        let i = headers.iter().position(|h| h == c)?;
        let id = row.get(i)?.trim();
        (!id.is_empty()).then(|| id.to_string())
    }

    fn map_row(
        &self,
        headers: &[String],
        row: &csv::StringRecord,
        row_no: u64,
        pass: &mut Pass,
        page: &mut Page,
    ) {
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
        if let Some(reason) = self.oversized(headers, row) {
            page.rejected.push(Rejected {
                external_id: (external_id.len() <= MAX_INDEXED_BYTES).then_some(external_id),
                location: Some(location),
                reason,
                raw: serde_json::Value::Object(raw),
            });
            return;
        }
        if self.id_column.is_some() {
            if let Some(first) = pass.ids.get(&external_id) {
                page.rejected.push(Rejected {
                    reason: format!(
                        "duplicate id `{external_id}` (column `{}`): row {first} has it too; this \
                         later row is not applied",
                        self.id_column.as_deref().unwrap_or_default()
                    ),
                    external_id: Some(external_id),
                    location: Some(location),
                    raw: serde_json::Value::Object(raw),
                });
                return;
            }
            pass.ids.insert(external_id.clone(), row_no);
        }
        match map::to_contact(
            headers,
            row,
            &self.map,
            self.id_column.as_deref(),
            self.date_region.as_deref(),
        ) {
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

impl CsvSource {
    /// Why a row cannot be stored: a value of the id column or of a column
    /// mapped to an email or a phone longer than an index takes.
    fn oversized(&self, headers: &[String], row: &csv::StringRecord) -> Option<String> {
        headers.iter().zip(row.iter()).find_map(|(h, v)| {
            let indexed = self.id_column.as_deref() == Some(h.as_str())
                || matches!(
                    self.map.get(h),
                    Some(ContactField::Email | ContactField::Phone | ContactField::Id)
                );
            let len = v.trim().len();
            (indexed && len > MAX_INDEXED_BYTES).then(|| {
                format!(
                    "column `{h}`: a value of {len} bytes is longer than the {MAX_INDEXED_BYTES} \
                     bytes an indexed field may take"
                )
            })
        })
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

/// The `encoding` setting of a CSV source.
#[derive(Debug, Clone, Copy)]
enum EncodingSetting {
    Fixed(&'static encoding_rs::Encoding),
    Auto,
}

impl EncodingSetting {
    fn parse(name: Option<&str>) -> Result<EncodingSetting, ConnectorError> {
        let name = name.map(|n| n.trim().to_ascii_lowercase());
        match name.as_deref() {
            None | Some("") | Some("utf-8") | Some("utf8") => {
                Ok(EncodingSetting::Fixed(encoding_rs::UTF_8))
            }
            Some("auto") => Ok(EncodingSetting::Auto),
            Some(other) => match encoding_rs::Encoding::for_label(other.as_bytes()) {
                Some(e) if e.is_ascii_compatible() && e.output_encoding() == e => {
                    Ok(EncodingSetting::Fixed(e))
                }
                Some(_) => Err(ConnectorError::Config(format!(
                    "encoding `{other}` is not ASCII-compatible (UTF-16?): convert the file to \
                     UTF-8 first, or import it with `synchub migrate csv`, which reads UTF-16"
                ))),
                None => Err(ConnectorError::Config(format!(
                    "encoding `{other}` is unknown; use utf-8, big5, gbk, gb18030, shift_jis, \
                     windows-1252 or auto"
                ))),
            },
        }
    }
}

/// UTF-8 when the sample is valid UTF-8 (a sample cut inside a character
/// still counts), else whichever of Big5 and GBK decodes it with fewer
/// errors, Big5 on a tie.
fn sniff(sample: &[u8]) -> &'static encoding_rs::Encoding {
    let valid = match std::str::from_utf8(sample) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > sample.len(),
    };
    if valid {
        return encoding_rs::UTF_8;
    }
    let errors = |enc: &'static encoding_rs::Encoding| {
        let (text, _, _) = enc.decode(sample);
        text.chars().filter(|c| *c == '\u{fffd}').count()
    };
    if errors(encoding_rs::GBK) < errors(encoding_rs::BIG5) {
        encoding_rs::GBK
    } else {
        encoding_rs::BIG5
    }
}

/// Decodes every field of a row; a field that does not decode is an error
/// naming its column number and the encoding.
fn decode_record(
    encoding: &'static encoding_rs::Encoding,
    raw: &csv::ByteRecord,
) -> Result<csv::StringRecord, String> {
    let mut out = csv::StringRecord::new();
    for (i, field) in raw.iter().enumerate() {
        let text = if encoding == encoding_rs::UTF_8 {
            std::str::from_utf8(field)
                .map(std::borrow::Cow::Borrowed)
                .map_err(|_| {
                    format!(
                        "field {} is not valid UTF-8 (set `encoding`, e.g. big5 or auto)",
                        i + 1
                    )
                })?
        } else {
            encoding
                .decode_without_bom_handling_and_without_replacement(field)
                .ok_or_else(|| format!("field {} is not valid {}", i + 1, encoding.name()))?
        };
        out.push_field(&text);
    }
    Ok(out)
}
