//! IMAP response syntax (RFC 3501 §9): reading one response, literals
//! included, and splitting it into tokens.

/// One token of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom or number (`FLAGS`, `123`, `\Seen`, `BODY[HEADER.FIELDS`).
    Atom(String),
    /// A quoted string or a literal, as bytes.
    Str(Vec<u8>),
    /// `NIL`.
    Nil,
    /// A parenthesised list.
    List(Vec<Token>),
}

impl Token {
    /// The atom's text, if this is an atom.
    pub fn atom(&self) -> Option<&str> {
        match self {
            Token::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// The token as a number.
    pub fn number(&self) -> Option<u64> {
        self.atom().and_then(|a| a.parse().ok())
    }

    /// The bytes of a string, or of an atom.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Token::Str(b) => Some(b),
            Token::Atom(a) => Some(a.as_bytes()),
            _ => None,
        }
    }

    /// The list inside, if this is one.
    pub fn list(&self) -> Option<&[Token]> {
        match self {
            Token::List(l) => Some(l),
            _ => None,
        }
    }
}

/// If `line` (ending in CRLF) announces a literal (`{123}` or `{123+}`),
/// its length.
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|b| *b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Splits a whole response (literals inline, as read) into tokens. Brackets
/// are kept inside atoms (`BODY[HEADER.FIELDS (A B)]` yields the atom
/// `BODY[HEADER.FIELDS`, a list, then the atom `]`), which is all the
/// interpretation needs.
pub fn tokenize(input: &[u8]) -> Result<Vec<Token>, String> {
    let mut pos = 0;
    let mut stack: Vec<Vec<Token>> = vec![Vec::new()];
    while pos < input.len() {
        let b = input[pos];
        match b {
            b' ' | b'\r' | b'\n' => pos += 1,
            b'(' => {
                stack.push(Vec::new());
                pos += 1;
            }
            b')' => {
                let done = stack.pop().ok_or("unbalanced `)`")?;
                stack
                    .last_mut()
                    .ok_or_else(|| "unbalanced `)`".to_string())?
                    .push(Token::List(done));
                pos += 1;
            }
            b'"' => {
                let mut out = Vec::new();
                pos += 1;
                loop {
                    let c = *input.get(pos).ok_or("unterminated quoted string")?;
                    pos += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            out.push(*input.get(pos).ok_or("unterminated quoted string")?);
                            pos += 1;
                        }
                        c => out.push(c),
                    }
                }
                push(&mut stack, Token::Str(out))?;
            }
            b'{' => {
                let close = input[pos..]
                    .iter()
                    .position(|c| *c == b'}')
                    .ok_or("unterminated literal length")?
                    + pos;
                let len: usize = std::str::from_utf8(&input[pos + 1..close])
                    .ok()
                    .map(|s| s.trim_end_matches('+'))
                    .and_then(|s| s.parse().ok())
                    .ok_or("bad literal length")?;
                let start = close + 3; // `}` CRLF
                let end = start + len;
                let body = input
                    .get(start..end)
                    .ok_or("literal shorter than announced")?;
                push(&mut stack, Token::Str(body.to_vec()))?;
                pos = end;
            }
            _ => {
                let start = pos;
                let mut depth = 0usize;
                while pos < input.len() {
                    let c = input[pos];
                    if c == b'[' {
                        depth += 1;
                    } else if c == b']' {
                        depth = depth.saturating_sub(1);
                    } else if depth == 0 && matches!(c, b' ' | b'(' | b')' | b'\r' | b'\n') {
                        break;
                    } else if depth > 0 && c == b'(' {
                        // `BODY[HEADER.FIELDS (` : the list follows as its own token.
                        break;
                    }
                    pos += 1;
                }
                let atom = String::from_utf8_lossy(&input[start..pos])
                    .trim_end()
                    .to_string();
                let tok = if atom.eq_ignore_ascii_case("NIL") {
                    Token::Nil
                } else {
                    Token::Atom(atom)
                };
                push(&mut stack, tok)?;
            }
        }
    }
    if stack.len() != 1 {
        return Err("unbalanced `(`".into());
    }
    Ok(stack.pop().unwrap_or_default())
}

fn push(stack: &mut [Vec<Token>], tok: Token) -> Result<(), String> {
    stack
        .last_mut()
        .ok_or_else(|| "unbalanced `)`".to_string())?
        .push(tok);
    Ok(())
}

/// Quotes `s` as an IMAP quoted string (or a literal-free atom-safe form).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A UID set (`1:5,9,12:14`) from sorted, distinct uids.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Parses a UID set (`1:5,9`) into uids; `*` is not accepted.
pub fn parse_uid_set(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        if let Some((a, b)) = part.split_once(':') {
            let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            out.extend(lo..=hi);
        } else {
            out.push(part.parse().ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn tokenizes_a_fetch_with_a_literal() {
        let raw = b"* 3 FETCH (UID 7 MODSEQ (12) FLAGS (\\Seen) BODY[HEADER.FIELDS (SUBJECT FROM)] {9}\r\nSubject: \r\n)\r\n";
        let toks = tokenize(raw).unwrap();
        assert_eq!(toks[0], Token::Atom("*".into()));
        assert_eq!(toks[1].number(), Some(3));
        let items = toks[3].list().unwrap();
        assert_eq!(items[0].atom(), Some("UID"));
        assert_eq!(items[1].number(), Some(7));
        assert_eq!(items[3].list().unwrap()[0].number(), Some(12));
        assert_eq!(items[5].list().unwrap()[0].atom(), Some("\\Seen"));
        assert_eq!(items[6].atom(), Some("BODY[HEADER.FIELDS"));
        assert_eq!(items[8].atom(), Some("]"));
        assert_eq!(items[9].bytes(), Some(&b"Subject: "[..]));
    }

    #[test]
    fn literal_lengths_and_quoting() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {42}\r\n"), Some(42));
        assert_eq!(literal_len(b"* OK done\r\n"), None);
        assert_eq!(literal_len(b"A1 OK {x}\r\n"), None);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        let toks = tokenize(br#"* LIST () "/" "a\"b""#).unwrap();
        assert_eq!(toks[4], Token::Str(b"a\"b".to_vec()));
    }

    #[test]
    fn tokenizes_vanished_and_select_codes() {
        let v = tokenize(b"VANISHED (EARLIER) 3:4,7\r\n").unwrap();
        assert_eq!(v[1].list().unwrap()[0].atom(), Some("EARLIER"));
        assert_eq!(parse_uid_set(v[2].atom().unwrap()), Some(vec![3, 4, 7]));
        let ok = tokenize(b"OK [UIDVALIDITY 1795348115] UIDs valid\r\n").unwrap();
        assert_eq!(ok[1].atom(), Some("[UIDVALIDITY 1795348115]"));
        let flags = tokenize(b"OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.\r\n").unwrap();
        assert_eq!(flags[0].atom(), Some("OK"));
        assert!(tokenize(b"(unbalanced").is_err());
        assert!(tokenize(b"x {10}\r\nshort").is_err());
    }

    #[test]
    fn uid_sets_round_trip() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(parse_uid_set("1:3,5,8:7"), Some(vec![1, 2, 3, 5, 7, 8]));
        assert_eq!(parse_uid_set("x"), None);
    }
}
