//! One CSV export file read page by page from a saved position.
//!
//! The position is the byte offset in the text stream the CSV parser reads:
//! the file itself for ASCII-compatible encodings (so resuming is a seek),
//! the transcoded UTF-8 stream for UTF-16 files (resuming re-transcodes and
//! skips, still streaming). Rows are numbered from 1 after the header;
//! line numbers are physical lines, which differ when values hold line breaks.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::encoding::{self, Detected, EncodingChoice, FileEncoding, Utf16ToUtf8};
use crate::LegacyError;

/// How many leading bytes are used to detect the encoding.
const SAMPLE: u64 = 256 * 1024;

/// Where the next data row of a file starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CsvPos {
    /// Data rows already read (the next row is `row + 1`).
    pub row: u64,
    /// The physical line the next row starts on.
    pub line: u64,
    /// Byte offset of the next row in the text stream.
    pub offset: u64,
}

/// One data row: its numbers and its decoded values, or why it has none.
pub(crate) struct RawRow {
    /// 1-based data row number.
    pub row: u64,
    /// Physical line the row starts on.
    pub line: u64,
    /// The values, or the reason the row cannot be read.
    pub values: Result<Vec<String>, String>,
    /// The values decoded with replacement characters, for the dead letter.
    pub lossy: Vec<String>,
}

/// A CSV reader left open after a page, and the text offset it started at.
pub(crate) struct LiveReader {
    reader: csv::Reader<Box<dyn Read + Send>>,
    base: u64,
}

/// An opened CSV file: its encoding, header and first data position.
#[derive(Debug, Clone)]
pub(crate) struct CsvFile {
    path: PathBuf,
    /// The detected encoding.
    pub detected: Detected,
    /// The header, decoded.
    pub headers: Vec<String>,
    /// Where the first data row starts.
    pub start: CsvPos,
}

impl CsvFile {
    /// Opens `path`: detects the encoding and reads the header.
    pub(crate) fn open(path: &Path, choice: EncodingChoice) -> Result<CsvFile, LegacyError> {
        let io_err = |e: io::Error| LegacyError::Path {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut sample = Vec::new();
        file.take(SAMPLE).read_to_end(&mut sample).map_err(io_err)?;
        let detected = encoding::detect(&sample, choice, len <= SAMPLE);
        let mut this = CsvFile {
            path: path.to_path_buf(),
            detected,
            headers: Vec::new(),
            start: CsvPos {
                row: 0,
                line: 1,
                offset: 0,
            },
        };
        let base = this.text_start();
        let mut reader = this.reader(base)?;
        let mut record = csv::ByteRecord::new();
        let found = reader
            .read_byte_record(&mut record)
            .map_err(|e| this.csv_err(e))?;
        if !found {
            return Err(LegacyError::Path {
                path: path.display().to_string(),
                message: "the file is empty: expected a header row".into(),
            });
        }
        let enc = detected.encoding.field_encoding();
        for (i, field) in record.iter().enumerate() {
            let text = encoding::decode_field(enc, field).ok_or_else(|| LegacyError::Path {
                path: path.display().to_string(),
                message: format!(
                    "header column {} is not valid {}: pass --encoding to say how the file is encoded",
                    i + 1,
                    detected.encoding.name()
                ),
            })?;
            this.headers.push(text.trim().to_string());
        }
        let end = reader.position();
        this.start = CsvPos {
            row: 0,
            line: 2,
            offset: base + end.byte(),
        };
        Ok(this)
    }

    /// Offset of the text stream's first byte (after the BOM for ASCII encodings).
    fn text_start(&self) -> u64 {
        match self.detected.encoding {
            FileEncoding::Ascii(_) => self.detected.bom_len as u64,
            FileEncoding::Utf16Le | FileEncoding::Utf16Be => 0,
        }
    }

    fn csv_err(&self, e: csv::Error) -> LegacyError {
        LegacyError::Path {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// A CSV reader positioned at `offset` in the text stream.
    fn reader(&self, offset: u64) -> Result<csv::Reader<Box<dyn Read + Send>>, LegacyError> {
        let io_err = |e: io::Error| LegacyError::Path {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let mut file = File::open(&self.path).map_err(io_err)?;
        let stream: Box<dyn Read + Send> = match self.detected.encoding {
            FileEncoding::Ascii(_) => {
                file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
                Box::new(BufReader::with_capacity(256 * 1024, file))
            }
            FileEncoding::Utf16Le | FileEncoding::Utf16Be => {
                file.seek(SeekFrom::Start(self.detected.bom_len as u64))
                    .map_err(io_err)?;
                let big = self.detected.encoding == FileEncoding::Utf16Be;
                let mut text = Utf16ToUtf8::new(BufReader::new(file), big);
                io::copy(&mut (&mut text).take(offset), &mut io::sink()).map_err(io_err)?;
                Box::new(text)
            }
        };
        Ok(csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(stream))
    }

    /// Reads up to `max` rows from `from` (the first data row when `None`);
    /// returns the position after them and whether the file is finished.
    ///
    /// `live` keeps the open reader between pages: when the next page starts
    /// where the last one stopped, reading simply goes on (no seek, and no
    /// re-transcoding of UTF-16 files).
    pub(crate) fn read_page(
        &self,
        from: Option<CsvPos>,
        max: usize,
        out: &mut Vec<RawRow>,
        live: &mut Option<LiveReader>,
    ) -> Result<(CsvPos, bool), LegacyError> {
        let pos = from.unwrap_or(self.start);
        let mut current = match live.take() {
            Some(l) if l.base + l.reader.position().byte() == pos.offset => l,
            _ => LiveReader {
                reader: self.reader(pos.offset)?,
                base: pos.offset,
            },
        };
        let enc = self.detected.encoding.field_encoding();
        let mut record = csv::ByteRecord::new();
        let mut line = pos.line;
        let mut next = pos;
        for row in (pos.row + 1..).take(max) {
            let found = current
                .reader
                .read_byte_record(&mut record)
                .map_err(|e| self.csv_err(e))?;
            if !found {
                return Ok((next, true));
            }
            let values = self.decode(&record, enc);
            let lossy = match values {
                Ok(_) => Vec::new(),
                Err(_) => record
                    .iter()
                    .map(|f| enc.decode_without_bom_handling(f).0.into_owned())
                    .collect(),
            };
            out.push(RawRow {
                row,
                line,
                values,
                lossy,
            });
            // Line numbers are counted here: one line per record plus the
            // line breaks inside its quoted values.
            let embedded: usize = record
                .iter()
                .map(|f| f.iter().filter(|b| **b == b'\n').count())
                .sum();
            line += 1 + embedded as u64;
            next = CsvPos {
                row,
                line,
                offset: current.base + current.reader.position().byte(),
            };
        }
        *live = Some(current);
        Ok((next, false))
    }

    fn decode(
        &self,
        record: &csv::ByteRecord,
        enc: &'static encoding_rs::Encoding,
    ) -> Result<Vec<String>, String> {
        if record.len() != self.headers.len() {
            return Err(format!(
                "row has {} columns, the header has {}",
                record.len(),
                self.headers.len()
            ));
        }
        record
            .iter()
            .zip(&self.headers)
            .map(|(bytes, column)| {
                encoding::decode_field(enc, bytes)
                    .map(|s| s.into_owned())
                    .ok_or_else(|| {
                        let shown: Vec<String> =
                            bytes.iter().take(12).map(|b| format!("{b:02x}")).collect();
                        format!(
                            "column '{column}' is not valid {} (bytes {})",
                            self.detected.encoding.name(),
                            shown.join(" ")
                        )
                    })
            })
            .collect()
    }
}
