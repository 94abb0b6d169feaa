//! Mail header decoding: unfolding, RFC 2047 encoded words in any charset
//! encoding_rs knows (UTF-8, Big5, GBK/GB2312, Shift_JIS...), address lists,
//! dates, and a plain-text snippet from the first bytes of a body.

use base64::Engine;
use chrono::{DateTime, Utc};
use encoding_rs::Encoding;

/// Header fields as `(lower-case name, raw value)`, unfolded, in order.
pub fn parse_headers(raw: &[u8]) -> Vec<(String, String)> {
    let text = bytes_to_string(raw, None);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim_start());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

/// The first value of header `name` (lower case).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Bytes in `charset` (UTF-8 when unknown or absent) as text; raw 8-bit
/// headers that are not UTF-8 are read as Latin-1 rather than lost.
fn bytes_to_string(raw: &[u8], charset: Option<&str>) -> String {
    if let Some(enc) = charset.and_then(|c| Encoding::for_label(c.trim().as_bytes())) {
        return enc.decode_without_bom_handling(raw).0.into_owned();
    }
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => raw.iter().map(|b| char::from(*b)).collect(),
    }
}

/// One piece of a header value: plain text or a decoded encoded word.
enum Piece {
    Text(String),
    Word { charset: String, bytes: Vec<u8> },
}

/// Decodes RFC 2047 encoded words (`=?Big5?B?...?=`, `=?utf-8?Q?...?=`).
/// Whitespace between adjacent encoded words is dropped, and adjacent words
/// in the same charset are joined before decoding, so a multi-byte
/// character split across two words survives.
pub fn decode_words(value: &str) -> String {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let Some((charset, bytes, used)) = encoded_word(&rest[start..]) else {
            push_text(&mut pieces, &rest[..start + 2]);
            rest = &rest[start + 2..];
            continue;
        };
        let between = &rest[..start];
        let joins = between.trim().is_empty() && matches!(pieces.last(), Some(Piece::Word { .. }));
        if !joins {
            push_text(&mut pieces, between);
        }
        match pieces.last_mut() {
            Some(Piece::Word {
                charset: c,
                bytes: b,
            }) if joins && c.eq_ignore_ascii_case(&charset) => {
                b.extend_from_slice(&bytes);
            }
            _ => pieces.push(Piece::Word { charset, bytes }),
        }
        rest = &rest[start + used..];
    }
    push_text(&mut pieces, rest);
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(&t),
            Piece::Word { charset, bytes } => {
                out.push_str(&bytes_to_string(&bytes, Some(&charset)))
            }
        }
    }
    out
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    match pieces.last_mut() {
        Some(Piece::Text(t)) => t.push_str(text),
        _ => pieces.push(Piece::Text(text.to_string())),
    }
}

/// Parses `=?charset?enc?text?=` at the start of `s`: charset, bytes, length.
fn encoded_word(s: &str) -> Option<(String, Vec<u8>, usize)> {
    let body = s.strip_prefix("=?")?;
    let q1 = body.find('?')?;
    let charset = body[..q1].split('*').next()?.to_string(); // RFC 2231 language suffix
    let enc = body.get(q1 + 1..q1 + 2)?;
    if body.get(q1 + 2..q1 + 3)? != "?" {
        return None;
    }
    let text_start = q1 + 3;
    let end = body[text_start..].find("?=")? + text_start;
    let text = &body[text_start..end];
    if text.contains(' ') {
        return None;
    }
    let bytes = match enc {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text.trim_end_matches('='))
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim_end_matches('='))
            })
            .ok()?,
        "Q" | "q" => decode_q(text, true),
        _ => return None,
    };
    Some((charset, bytes, 2 + end + 2))
}

/// Quoted-printable (`_` is a space in RFC 2047's Q encoding).
fn decode_q(text: &str, underscore_is_space: bool) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' if underscore_is_space => out.push(b' '),
            b'=' => {
                if let Some(v) = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(v);
                    i += 3;
                    continue;
                }
                // A soft line break (quoted-printable bodies).
                if text[i + 1..].starts_with("\r\n") {
                    i += 3;
                    continue;
                }
                if text[i + 1..].starts_with('\n') {
                    i += 2;
                    continue;
                }
                out.push(b'=');
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// One address of an address header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Display name, decoded.
    pub name: Option<String>,
    /// The address, lower case.
    pub email: String,
}

/// Parses an address list (`"陳大文" <a@x>, b@y, Group: c@z;`).
pub fn parse_addresses(value: &str) -> Vec<Address> {
    let mut parts = Vec::new();
    let (mut depth_q, mut depth_a, mut depth_p) = (false, 0i32, 0i32);
    let mut cur = String::new();
    for c in value.chars() {
        match c {
            '"' => depth_q = !depth_q,
            '<' if !depth_q => depth_a += 1,
            '>' if !depth_q => depth_a -= 1,
            '(' if !depth_q => depth_p += 1,
            ')' if !depth_q => depth_p -= 1,
            ',' | ';' if !depth_q && depth_a <= 0 && depth_p <= 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            ':' if !depth_q && depth_a <= 0 && depth_p <= 0 && !cur.contains('@') => {
                // A group name: drop it.
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts.iter().filter_map(|p| parse_address(p)).collect()
}

fn parse_address(part: &str) -> Option<Address> {
    let part = part.trim();
    if part.is_empty() {
        return None;
    }
    let (name, email) = match (part.rfind('<'), part.rfind('>')) {
        (Some(l), Some(r)) if l < r => (part[..l].trim(), part[l + 1..r].trim()),
        _ => {
            // `a@x (Name)` or a bare address.
            match part.split_once('(') {
                Some((a, n)) => (n.trim_end_matches(')').trim(), a.trim()),
                None => ("", part),
            }
        }
    };
    if !email.contains('@') {
        return None;
    }
    let name = name.trim_matches('"').replace("\\\"", "\"");
    let name = decode_words(&name).trim().to_string();
    Some(Address {
        name: (!name.is_empty()).then_some(name),
        email: email.to_lowercase(),
    })
}

/// Parses an RFC 5322 date (`Tue, 14 Nov 2023 22:13:20 +0000 (UTC)`).
pub fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    let v = match value.find('(') {
        Some(i) => value[..i].trim(),
        None => value.trim(),
    };
    DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The message ids in a `References`/`In-Reply-To` value, in order.
pub fn message_ids(value: &str) -> Vec<String> {
    value
        .split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>').map(|(id, _)| format!("<{}>", id.trim())))
        .collect()
}

/// A content type's media type (lower case) and parameters.
fn content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';');
    let media = parts
        .next()
        .unwrap_or("text/plain")
        .trim()
        .to_ascii_lowercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect();
    (media, params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A plain-text snippet (at most `max` characters) from the first bytes of
/// a message body, given the message's `Content-Type` and
/// `Content-Transfer-Encoding`: walks into the first part of multiparts and
/// decodes base64 / quoted-printable and the charset. `None` when the first
/// part is not text.
pub fn snippet(body: &[u8], ctype: Option<&str>, cte: Option<&str>, max: usize) -> Option<String> {
    let (media, params) = content_type(ctype.unwrap_or("text/plain"));
    if media.starts_with("multipart/") {
        let boundary = param(&params, "boundary")?;
        let marker = format!("--{boundary}");
        let text = String::from_utf8_lossy(body);
        let start = text.find(&marker)? + marker.len();
        // Byte offset into `body` of the part (after the marker line).
        let part = &body[start.min(body.len())..];
        let split = find_blank_line(part)?;
        let headers = parse_headers(&part[..split]);
        let inner = &part[split..];
        let inner = match find_sub(inner, marker.as_bytes()) {
            Some(end) => &inner[..end],
            None => inner,
        };
        return snippet(
            inner,
            header(&headers, "content-type"),
            header(&headers, "content-transfer-encoding"),
            max,
        );
    }
    if !media.starts_with("text/") {
        return None;
    }
    let decoded = match cte.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
        Some("base64") => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let usable = clean.len() / 4 * 4;
            base64::engine::general_purpose::STANDARD
                .decode(&clean[..usable])
                .ok()?
        }
        Some("quoted-printable") => decode_q(&String::from_utf8_lossy(body), false),
        _ => body.to_vec(),
    };
    let text = bytes_to_string(&decoded, param(&params, "charset"));
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= max {
            break;
        }
    }
    let out: String = out.chars().take(max).collect();
    // A truncated fetch may end inside a character.
    let out = out.trim_end_matches('\u{fffd}').to_string();
    (!out.is_empty()).then_some(out)
}

fn find_blank_line(b: &[u8]) -> Option<usize> {
    find_sub(b, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| find_sub(b, b"\n\n").map(|i| i + 2))
}

fn find_sub(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn encoded_words_in_big5_gbk_and_utf8() {
        // 陳大文 in Big5 and 報價單 in GB2312, built here from the encoders.
        let big5 = encoding_rs::BIG5.encode("陳大文").0;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&big5);
        assert_eq!(decode_words(&format!("=?Big5?B?{b64}?=")), "陳大文");
        let gb = encoding_rs::GBK.encode("报价单").0;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&gb);
        assert_eq!(
            decode_words(&format!("Re: =?GB2312?B?{b64}?= 1")),
            "Re: 报价单 1"
        );
        assert_eq!(
            decode_words("=?utf-8?Q?caf=C3=A9_au?= =?utf-8?Q?_lait?= x"),
            "café au lait x"
        );
        // A character split across two adjacent words.
        let bytes = "訂單".as_bytes();
        let (a, b) = bytes.split_at(4);
        let e = base64::engine::general_purpose::STANDARD;
        let v = format!(
            "=?UTF-8?B?{}?=\r\n =?UTF-8?B?{}?=",
            e.encode(a),
            e.encode(b)
        );
        assert_eq!(decode_words(&v), "訂單");
        assert_eq!(decode_words("plain =?bogus"), "plain =?bogus");
    }

    #[test]
    fn address_lists() {
        let big5 =
            base64::engine::general_purpose::STANDARD.encode(encoding_rs::BIG5.encode("陳大文").0);
        let v = format!("=?Big5?B?{big5}?= <Chen@Example.COM>, \"Lee, Ann\" <ann@x.org>, bob@y.net (Bob), Team: c@z.io;");
        let got = parse_addresses(&v);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].name.as_deref(), Some("陳大文"));
        assert_eq!(got[0].email, "chen@example.com");
        assert_eq!(got[1].name.as_deref(), Some("Lee, Ann"));
        assert_eq!(got[2].name.as_deref(), Some("Bob"));
        assert_eq!(got[3].email, "c@z.io");
    }

    #[test]
    fn headers_dates_and_ids() {
        let raw = b"Subject: a\r\n b\r\nDate: Tue, 14 Nov 2023 22:13:20 +0800 (CST)\r\nReferences: <r1@x> <r2@x>\r\n\r\n";
        let h = parse_headers(raw);
        assert_eq!(header(&h, "subject"), Some("a b"));
        let d = parse_date(header(&h, "date").unwrap()).unwrap();
        assert_eq!(d.to_rfc3339(), "2023-11-14T14:13:20+00:00");
        assert_eq!(
            message_ids(header(&h, "references").unwrap()),
            vec!["<r1@x>", "<r2@x>"]
        );
        assert_eq!(parse_date("not a date"), None);
    }

    #[test]
    fn snippets_from_multipart_base64_and_qp() {
        let body = "您好，這是測試郵件。".repeat(3);
        let b64 = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
        let raw = format!("--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b1\r\nContent-Type: application/pdf\r\n\r\nxx\r\n--b1--\r\n");
        let s = snippet(
            raw.as_bytes(),
            Some("multipart/mixed; boundary=\"b1\""),
            None,
            12,
        )
        .unwrap();
        assert_eq!(s, "您好，這是測試郵件。您好");
        let s = snippet(
            b"Hello=2C\r\n  world=\r\n!",
            Some("text/plain"),
            Some("quoted-printable"),
            50,
        );
        assert_eq!(s.as_deref(), Some("Hello, world!"));
        assert_eq!(snippet(b"x", Some("image/png"), None, 10), None);
    }
}
