//! Character encodings of legacy exports: detection, strict per-field
//! decoding, and a UTF-16 → UTF-8 transcoding reader.
//!
//! CSV is split on raw bytes for every ASCII-compatible encoding (UTF-8,
//! Big5, GBK/GB18030): no trail byte of Big5 or GBK can be `"`, `,`, CR or
//! LF, so the CSV structure is found before decoding, and each field is then
//! decoded *without replacement*: a field that is not valid in the file's
//! encoding rejects its row instead of turning into `�`. UTF-16 files are
//! transcoded to UTF-8 first; a malformed UTF-16 sequence becomes the byte
//! `0xFF`, which is never valid UTF-8, so the row is rejected the same way.

use std::borrow::Cow;
use std::io::{self, Read};
use std::str::FromStr;

use encoding_rs::{Decoder, DecoderResult, Encoding, BIG5, GB18030, UTF_16BE, UTF_16LE, UTF_8};

/// How the caller asks for a file's encoding (`--encoding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EncodingChoice {
    /// Detect: byte-order mark, UTF-16 heuristics, UTF-8 validity, then chardetng.
    #[default]
    Auto,
    /// UTF-8 (a BOM is skipped when present).
    Utf8,
    /// Big5 (decoded as Big5-HKSCS, the superset used in Taiwan and Hong Kong).
    Big5,
    /// GBK, decoded as its superset GB18030.
    Gbk,
    /// UTF-16; the byte order comes from the BOM or the NUL-byte pattern (LE when unsure).
    Utf16,
}

impl EncodingChoice {
    /// The accepted spellings, for error messages.
    pub const NAMES: &'static str = "auto, utf-8, big5, gbk (gb18030) or utf-16";
}

impl FromStr for EncodingChoice {
    type Err = crate::LegacyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "" | "auto" => Ok(EncodingChoice::Auto),
            "utf-8" | "utf8" | "utf-8-sig" => Ok(EncodingChoice::Utf8),
            "big5" | "big5-hkscs" | "cp950" => Ok(EncodingChoice::Big5),
            "gbk" | "gb2312" | "gb18030" | "cp936" => Ok(EncodingChoice::Gbk),
            "utf-16" | "utf16" | "utf-16le" | "utf-16be" | "ucs-2" => Ok(EncodingChoice::Utf16),
            other => Err(crate::LegacyError::Encoding {
                value: other.to_string(),
            }),
        }
    }
}

/// The resolved encoding of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEncoding {
    /// An ASCII-compatible encoding: CSV is split on the raw bytes.
    Ascii(&'static Encoding),
    /// UTF-16 little endian: transcoded to UTF-8 before CSV parsing.
    Utf16Le,
    /// UTF-16 big endian: transcoded to UTF-8 before CSV parsing.
    Utf16Be,
}

impl FileEncoding {
    /// A short name for reports (`utf-8`, `big5`, `gb18030`, `utf-16le`).
    pub fn name(self) -> String {
        match self {
            FileEncoding::Ascii(e) => e.name().to_ascii_lowercase(),
            FileEncoding::Utf16Le => "utf-16le".into(),
            FileEncoding::Utf16Be => "utf-16be".into(),
        }
    }

    /// The encoding fields are decoded with after CSV splitting.
    pub(crate) fn field_encoding(self) -> &'static Encoding {
        match self {
            FileEncoding::Ascii(e) => e,
            FileEncoding::Utf16Le | FileEncoding::Utf16Be => UTF_8,
        }
    }
}

/// The result of detection: the encoding and the length of the BOM to skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    /// The encoding of the text after the BOM.
    pub encoding: FileEncoding,
    /// Bytes of byte-order mark at the start of the file (0, 2 or 3).
    pub bom_len: usize,
}

/// Decides the encoding of a file from its first bytes (`sample`; pass
/// `whole = true` when the sample is the entire file).
pub fn detect(sample: &[u8], choice: EncodingChoice, whole: bool) -> Detected {
    let bom = Encoding::for_bom(sample);
    let with_bom = |encoding: FileEncoding, bom_len| Detected { encoding, bom_len };
    match choice {
        EncodingChoice::Utf8 => {
            let bom_len = if bom.map(|(e, _)| e) == Some(UTF_8) {
                3
            } else {
                0
            };
            return with_bom(FileEncoding::Ascii(UTF_8), bom_len);
        }
        EncodingChoice::Big5 => return with_bom(FileEncoding::Ascii(BIG5), 0),
        EncodingChoice::Gbk => return with_bom(FileEncoding::Ascii(GB18030), 0),
        EncodingChoice::Utf16 => {
            return match bom {
                Some((e, 2)) if e == UTF_16BE => with_bom(FileEncoding::Utf16Be, 2),
                Some((e, 2)) if e == UTF_16LE => with_bom(FileEncoding::Utf16Le, 2),
                _ => with_bom(utf16_order(sample).unwrap_or(FileEncoding::Utf16Le), 0),
            };
        }
        EncodingChoice::Auto => {}
    }
    if let Some((e, len)) = bom {
        let encoding = if e == UTF_16LE {
            FileEncoding::Utf16Le
        } else if e == UTF_16BE {
            FileEncoding::Utf16Be
        } else {
            FileEncoding::Ascii(UTF_8)
        };
        return with_bom(encoding, len);
    }
    if let Some(order) = utf16_order(sample) {
        return with_bom(order, 0);
    }
    match std::str::from_utf8(sample) {
        Ok(_) => return with_bom(FileEncoding::Ascii(UTF_8), 0),
        // Only a multi-byte sequence cut at the end of the sample.
        Err(e) if e.error_len().is_none() && !whole => {
            return with_bom(FileEncoding::Ascii(UTF_8), 0)
        }
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(sample, whole);
    let guess = detector.guess(None, false);
    let encoding = if guess == encoding_rs::GBK || guess == GB18030 {
        GB18030
    } else {
        guess
    };
    with_bom(FileEncoding::Ascii(encoding), 0)
}

/// Decides the encoding from a whole file read as a stream: valid UTF-8 to
/// the last byte, else chardetng fed with every byte (a guess from the
/// first pages alone misses Big5 rows that start after 300 KB of ASCII).
pub fn detect_whole<R: Read>(mut reader: R) -> io::Result<Detected> {
    let mut detector = chardetng::EncodingDetector::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut carry: Vec<u8> = Vec::new();
    let mut utf8 = true;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        detector.feed(chunk, false);
        if utf8 {
            carry.extend_from_slice(chunk);
            match std::str::from_utf8(&carry) {
                Ok(_) => carry.clear(),
                // A sequence cut at the chunk's end: keep its bytes.
                Err(e) if e.error_len().is_none() => {
                    let rest = carry.split_off(e.valid_up_to());
                    carry = rest;
                }
                Err(_) => utf8 = false,
            }
        }
    }
    detector.feed(&[], true);
    if utf8 && carry.is_empty() {
        return Ok(Detected {
            encoding: FileEncoding::Ascii(UTF_8),
            bom_len: 0,
        });
    }
    let guess = detector.guess(None, false);
    let encoding = if guess == encoding_rs::GBK || guess == GB18030 {
        GB18030
    } else {
        guess
    };
    Ok(Detected {
        encoding: FileEncoding::Ascii(encoding),
        bom_len: 0,
    })
}

/// Files that are certainly not text exports, by their first bytes.
pub fn binary_signature(sample: &[u8]) -> Option<String> {
    let known: [(&[u8], &str); 5] = [
        (b"PK\x03\x04", "a ZIP archive or an Excel .xlsx workbook: pass a .zip export as it is, save a workbook as CSV"),
        (b"\xD0\xCF\x11\xE0", "an old Excel .xls workbook: save it as CSV"),
        (b"%PDF", "a PDF document"),
        (b"\x1F\x8B", "a gzip archive: unpack it first"),
        (b"SQLite format 3", "a SQLite database"),
    ];
    known
        .iter()
        .find(|(magic, _)| sample.starts_with(magic))
        .map(|(_, what)| (*what).to_string())
}

/// Binary data: control bytes other than tab, CR, LF and form feed make up
/// more than 1 % of the sample (text exports have none).
pub fn control_bytes(sample: &[u8]) -> Option<String> {
    let controls = sample
        .iter()
        .filter(|b| matches!(**b, 0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F))
        .count();
    (controls > 0 && controls * 100 > sample.len()).then(|| {
        format!(
            "binary data: {controls} control bytes in the first {} bytes",
            sample.len()
        )
    })
}

/// A character that shows a value was decoded with the wrong encoding:
/// U+FFFD, or (from a legacy CJK decoder, which maps unassigned codes
/// there) a private-use character.
pub fn suspicious_char(text: &str, encoding: &'static Encoding) -> Option<char> {
    let legacy = encoding != UTF_8;
    text.chars()
        .find(|c| *c == '\u{FFFD}' || (legacy && ('\u{E000}'..='\u{F8FF}').contains(c)))
}

/// UTF-16 without a BOM: CSV text is mostly ASCII, so every other byte is
/// NUL. NULs at odd offsets mean little endian, at even offsets big endian.
fn utf16_order(sample: &[u8]) -> Option<FileEncoding> {
    let pairs = sample.len() / 2;
    if pairs < 2 {
        return None;
    }
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in sample.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    // At least 30 % of the code units are ASCII and the other half is clean.
    if odd * 10 >= pairs * 3 && even * 20 < pairs {
        Some(FileEncoding::Utf16Le)
    } else if even * 10 >= pairs * 3 && odd * 20 < pairs {
        Some(FileEncoding::Utf16Be)
    } else {
        None
    }
}

/// Decodes one field strictly: `None` when the bytes are not valid in `encoding`.
pub fn decode_field<'a>(encoding: &'static Encoding, bytes: &'a [u8]) -> Option<Cow<'a, str>> {
    if encoding == UTF_8 {
        std::str::from_utf8(bytes).ok().map(Cow::Borrowed)
    } else {
        encoding.decode_without_bom_handling_and_without_replacement(bytes)
    }
}

/// Encodes UTF-8 text into `encoding` (for generating test files); `None` when
/// a character has no mapping in that encoding.
pub fn encode_text(text: &str, encoding: FileEncoding) -> Option<Vec<u8>> {
    match encoding {
        FileEncoding::Ascii(e) => {
            let (bytes, _, unmappable) = e.encode(text);
            (!unmappable).then(|| bytes.into_owned())
        }
        FileEncoding::Utf16Le => Some(text.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        FileEncoding::Utf16Be => Some(text.encode_utf16().flat_map(u16::to_be_bytes).collect()),
    }
}

/// Marker written for a malformed UTF-16 sequence; never valid in UTF-8.
const MALFORMED_MARK: u8 = 0xFF;

/// A reader that turns UTF-16 into UTF-8 as it streams, marking malformed
/// sequences with `0xFF` instead of replacing them.
pub(crate) struct Utf16ToUtf8<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    finished: bool,
}

impl<R: Read> Utf16ToUtf8<R> {
    /// Wraps `inner`, positioned after any BOM.
    pub(crate) fn new(inner: R, big_endian: bool) -> Self {
        let encoding = if big_endian { UTF_16BE } else { UTF_16LE };
        Utf16ToUtf8 {
            inner,
            decoder: encoding.new_decoder_without_bom_handling(),
            input: vec![0; 32 * 1024],
            in_start: 0,
            in_end: 0,
            eof: false,
            output: vec![0; 64 * 1024],
            out_start: 0,
            out_end: 0,
            finished: false,
        }
    }
}

impl<R: Read> Read for Utf16ToUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            if self.in_start == self.in_end && !self.eof {
                let n = self.inner.read(&mut self.input)?;
                self.in_start = 0;
                self.in_end = n;
                self.eof = n == 0;
            }
            let room = self.output.len() - 1;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_start..self.in_end],
                &mut self.output[..room],
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            match result {
                DecoderResult::InputEmpty => self.finished = self.eof,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    self.output[self.out_end] = MALFORMED_MARK;
                    self.out_end += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Id,姓名,電話\n1,陳大文,0912-345-678\n2,歐陽娜娜,+852 9123 4567\n";

    #[test]
    fn detects_each_encoding_from_its_bytes() {
        for (encoding, expected) in [
            (FileEncoding::Ascii(BIG5), "big5"),
            (FileEncoding::Ascii(GB18030), "gb18030"),
            (FileEncoding::Utf16Le, "utf-16le"),
            (FileEncoding::Utf16Be, "utf-16be"),
            (FileEncoding::Ascii(UTF_8), "utf-8"),
        ] {
            let bytes = encode_text(&TEXT.repeat(20), encoding).expect("encodable");
            let got = detect(&bytes, EncodingChoice::Auto, true);
            assert_eq!(got.encoding.name(), expected);
            assert_eq!(got.bom_len, 0);
        }
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(TEXT.as_bytes());
        assert_eq!(detect(&bom, EncodingChoice::Auto, true).bom_len, 3);
    }

    #[test]
    fn strict_decoding_refuses_bad_bytes() {
        assert_eq!(decode_field(BIG5, &[0xB3, 0xAF]).as_deref(), Some("陳"));
        assert!(decode_field(BIG5, &[0xB3]).is_none());
        assert!(decode_field(UTF_8, &[0xE9, 0x99]).is_none());
    }

    #[test]
    fn utf16_reader_marks_lone_surrogates() {
        let mut bytes = encode_text("a,b\n", FileEncoding::Utf16Le).expect("encodable");
        bytes.extend_from_slice(&[0x00, 0xD8, b'x', 0]); // lone high surrogate, then "x"
        let mut out = Vec::new();
        Utf16ToUtf8::new(&bytes[..], false)
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(&out[..4], b"a,b\n");
        assert!(out.contains(&MALFORMED_MARK));
        assert!(out.ends_with(b"x"));
    }
}
