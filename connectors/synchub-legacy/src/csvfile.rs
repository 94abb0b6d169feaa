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
    /// The field separator (sniffed from the header: `,`, `;`, tab or `|`).
    pub delimiter: u8,
    /// Length of the text stream (the file after its BOM; for UTF-16, the
    /// transcoded UTF-8), to recognise the last row.
    text_len: u64,
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
        let not_text = |why: String| LegacyError::Path {
            path: path.display().to_string(),
            message: format!("this is not a CSV/text export ({why}); export the data as CSV"),
        };
        if let Some(why) = encoding::binary_signature(&sample) {
            return Err(not_text(why));
        }
        let mut detected = encoding::detect(&sample, choice, len <= SAMPLE);
        let utf16 = matches!(
            detected.encoding,
            FileEncoding::Utf16Le | FileEncoding::Utf16Be
        );
        if !utf16 {
            if let Some(why) = encoding::control_bytes(&sample[detected.bom_len..]) {
                return Err(not_text(why));
            }
        }
        // The first 256 KB may be plain ASCII with Big5 further on: decide
        // on the whole file (one streaming pass) unless a BOM or --encoding
        // settled it.
        if choice == EncodingChoice::Auto && !utf16 && detected.bom_len == 0 && len > SAMPLE {
            let file = File::open(path).map_err(io_err)?;
            detected = encoding::detect_whole(BufReader::new(file)).map_err(io_err)?;
        }
        let text_len = if utf16 {
            let mut file = File::open(path).map_err(io_err)?;
            file.seek(SeekFrom::Start(detected.bom_len as u64))
                .map_err(io_err)?;
            let big = detected.encoding == FileEncoding::Utf16Be;
            io::copy(
                &mut Utf16ToUtf8::new(BufReader::new(file), big),
                &mut io::sink(),
            )
            .map_err(io_err)?
        } else {
            len.saturating_sub(detected.bom_len as u64)
        };
        let delimiter = if utf16 {
            let start = detected.bom_len.min(sample.len());
            let mut text = Vec::new();
            let big = detected.encoding == FileEncoding::Utf16Be;
            // An odd cut at the end of the sample is only a partial last unit.
            let _ = Utf16ToUtf8::new(&sample[start..], big).read_to_end(&mut text);
            sniff_delimiter(&text)
        } else {
            sniff_delimiter(&sample[detected.bom_len.min(sample.len())..])
        };
        let mut this = CsvFile {
            path: path.to_path_buf(),
            detected,
            headers: Vec::new(),
            start: CsvPos {
                row: 0,
                line: 1,
                offset: 0,
            },
            delimiter,
            text_len: text_len + if utf16 { 0 } else { detected.bom_len as u64 },
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
            if text
                .chars()
                .any(|c| c == '\u{FFFD}' || (c.is_control() && c != '\t'))
            {
                return Err(not_text(format!(
                    "header column {} has control or replacement characters",
                    i + 1
                )));
            }
            this.headers
                .push(text.trim().trim_start_matches('\u{FEFF}').to_string());
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
            .delimiter(self.delimiter)
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
            let end = current.base + current.reader.position().byte();
            let mut values = self.decode(&record, enc);
            // The last row: a file cut off inside a quoted value parses as
            // one short value running to the end; it is not a row.
            if end >= self.text_len && self.ends_in_quote(next.offset)? {
                values = Err(
                    "the file ends inside a quoted value: it was cut off (truncated) in this row"
                        .into(),
                );
            }
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
                let shown = || {
                    let shown: Vec<String> =
                        bytes.iter().take(12).map(|b| format!("{b:02x}")).collect();
                    shown.join(" ")
                };
                let text = encoding::decode_field(enc, bytes).ok_or_else(|| {
                    format!(
                        "column '{column}' is not valid {} (bytes {})",
                        self.detected.encoding.name(),
                        shown()
                    )
                })?;
                if let Some(c) = encoding::suspicious_char(&text, enc) {
                    return Err(format!(
                        "column '{column}' read as {} gives U+{:04X}, a replacement or private-use character (bytes {}): the file is probably in another encoding; try --encoding auto",
                        self.detected.encoding.name(),
                        u32::from(c),
                        shown()
                    ));
                }
                Ok(text.into_owned())
            })
            .collect()
    }

    /// Whether the text from `offset` to the end leaves a quoted value open.
    fn ends_in_quote(&self, offset: u64) -> Result<bool, LegacyError> {
        let io_err = |e: io::Error| LegacyError::Path {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let mut file = File::open(&self.path).map_err(io_err)?;
        let mut tail = Vec::new();
        match self.detected.encoding {
            FileEncoding::Ascii(_) => {
                file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
                file.read_to_end(&mut tail).map_err(io_err)?;
            }
            FileEncoding::Utf16Le | FileEncoding::Utf16Be => {
                file.seek(SeekFrom::Start(self.detected.bom_len as u64))
                    .map_err(io_err)?;
                let big = self.detected.encoding == FileEncoding::Utf16Be;
                let mut text = Utf16ToUtf8::new(BufReader::new(file), big);
                io::copy(&mut (&mut text).take(offset), &mut io::sink()).map_err(io_err)?;
                text.read_to_end(&mut tail).map_err(io_err)?;
            }
        }
        Ok(open_quote_at_end(&tail, self.delimiter))
    }
}

/// Runs CSV quoting over `text`: true when it ends inside a quoted value.
fn open_quote_at_end(text: &[u8], delimiter: u8) -> bool {
    let mut quoted = false;
    let mut field_start = true;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if quoted {
            if b == b'"' {
                if text.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if b == b'"' && field_start {
            quoted = true;
            field_start = false;
        } else {
            field_start = b == delimiter || b == b'\n' || b == b'\r';
        }
        i += 1;
    }
    quoted
}

/// The separator of the header line: the most frequent of `,` `;` tab `|`
/// outside quotes (a comma when none appears).
fn sniff_delimiter(text: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in text {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = candidates.iter().position(|c| *c == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let mut best = 0;
    for i in 1..candidates.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    candidates[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_sniffed_outside_quotes() {
        assert_eq!(sniff_delimiter(b"Id,Name,Email\n1;2;3;4;5\n"), b',');
        assert_eq!(sniff_delimiter(b"\"Id\";\"Last, First\";\"Email\"\n"), b';');
        assert_eq!(sniff_delimiter(b"Id\tName\tEmail\n"), b'\t');
        assert_eq!(sniff_delimiter(b"Id\n"), b',');
    }

    #[test]
    fn an_open_quote_at_the_end_is_found() {
        assert!(open_quote_at_end(b"1,\"zh_", b','));
        assert!(!open_quote_at_end(b"1,\"zh_TW\"\n", b','));
        assert!(!open_quote_at_end(b"1,\"say \"\"hi\"\"\",x", b','));
        assert!(open_quote_at_end(b"1,\"a\nb", b','));
        assert!(!open_quote_at_end(b"1,5\" disk,x", b','));
    }
}
