//! The subset of the QuickBooks query language the sandbox serves:
//! `select * | count(*) from E [where C (and C)*] [orderby F [asc|desc]]
//! [startposition N] [maxresults N]`, conditions `F op V` with
//! `= < > <= >= like` and `F in (V, …)`; keywords case-insensitive, string
//! literals in single quotes with `\'`. `OR` is refused as Intuit does
//! (code 4000, QueryParserError); `MAXRESULTS` above 1000 likewise.

use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::Value;

/// A comparison operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `like` (`%` wildcard only)
    Like,
    /// `in (…)`
    In,
}

/// One condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// Dotted field path, e.g. `MetaData.LastUpdatedTime`.
    pub field: String,
    /// Operator.
    pub op: Op,
    /// Literal(s).
    pub values: Vec<Value>,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `count(*)`.
    pub count: bool,
    /// Entity name as written.
    pub entity: String,
    /// Conditions joined by AND.
    pub conds: Vec<Cond>,
    /// Order field and descending flag.
    pub order: Option<(String, bool)>,
    /// 1-based start.
    pub start: usize,
    /// Page size.
    pub max: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Sym(String),
}

fn lex(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        if let Some(n) = cs.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if "<>=".contains(c) {
            let mut s = c.to_string();
            if cs.get(i + 1) == Some(&'=') {
                s.push('=');
                i += 1;
            }
            out.push(Tok::Sym(s));
            i += 1;
        } else if "(),*".contains(c) {
            out.push(Tok::Sym(c.to_string()));
            i += 1;
        } else {
            let mut s = String::new();
            while let Some(ch) = cs.get(i) {
                if ch.is_whitespace() || "<>=(),*'".contains(*ch) {
                    break;
                }
                s.push(*ch);
                i += 1;
            }
            out.push(Tok::Word(s));
        }
    }
    Ok(out)
}

fn literal(t: Option<Tok>) -> Result<Value, String> {
    match t {
        Some(Tok::Str(s)) => Ok(Value::String(s)),
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        Some(Tok::Word(w)) => w
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("expected a literal, found `{w}`")),
        other => Err(format!("expected a literal, found {other:?}")),
    }
}

/// Parses a query.
pub fn parse(q: &str) -> Result<Query, String> {
    let mut toks = lex(q)?.into_iter().peekable();
    let kw =
        |t: &Option<Tok>, k: &str| matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k));
    if !kw(&toks.next(), "select") {
        return Err("a query starts with SELECT".into());
    }
    let count = match toks.next() {
        Some(Tok::Sym(s)) if s == "*" => false,
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("count") => {
            let rest: Vec<Tok> = toks.by_ref().take(3).collect();
            if rest
                != [
                    Tok::Sym("(".into()),
                    Tok::Sym("*".into()),
                    Tok::Sym(")".into()),
                ]
            {
                return Err("expected count(*)".into());
            }
            true
        }
        other => {
            return Err(format!(
                "only `select *` and `select count(*)` are supported, found {other:?}"
            ))
        }
    };
    if !kw(&toks.next(), "from") {
        return Err("expected FROM".into());
    }
    let entity = match toks.next() {
        Some(Tok::Word(w)) => w,
        other => return Err(format!("expected an entity name, found {other:?}")),
    };
    let mut query = Query {
        count,
        entity,
        conds: Vec::new(),
        order: None,
        start: 1,
        max: 100,
    };
    while let Some(t) = toks.next() {
        let Tok::Word(w) = t else {
            return Err(format!("unexpected {t:?}"));
        };
        match w.to_ascii_lowercase().as_str() {
            "where" | "and" => {
                let field = match toks.next() {
                    Some(Tok::Word(f)) => f,
                    other => return Err(format!("expected a field, found {other:?}")),
                };
                let op = match toks.next() {
                    Some(Tok::Sym(s)) => match s.as_str() {
                        "=" => Op::Eq,
                        "<" => Op::Lt,
                        ">" => Op::Gt,
                        "<=" => Op::Le,
                        ">=" => Op::Ge,
                        _ => return Err(format!("unknown operator `{s}`")),
                    },
                    Some(Tok::Word(s)) if s.eq_ignore_ascii_case("like") => Op::Like,
                    Some(Tok::Word(s)) if s.eq_ignore_ascii_case("in") => Op::In,
                    other => return Err(format!("expected an operator, found {other:?}")),
                };
                let values = if op == Op::In {
                    if toks.next() != Some(Tok::Sym("(".into())) {
                        return Err("expected `(` after IN".into());
                    }
                    let mut vs = Vec::new();
                    loop {
                        vs.push(literal(toks.next())?);
                        match toks.next() {
                            Some(Tok::Sym(s)) if s == "," => continue,
                            Some(Tok::Sym(s)) if s == ")" => break,
                            other => return Err(format!("expected `,` or `)`, found {other:?}")),
                        }
                    }
                    vs
                } else {
                    vec![literal(toks.next())?]
                };
                query.conds.push(Cond { field, op, values });
            }
            "or" => return Err("OR is not supported: use AND or IN".into()),
            "orderby" => {
                let f = match toks.next() {
                    Some(Tok::Word(f)) => f,
                    other => return Err(format!("expected an order field, found {other:?}")),
                };
                let mut desc = false;
                if let Some(Tok::Word(d)) = toks.peek() {
                    if d.eq_ignore_ascii_case("desc") || d.eq_ignore_ascii_case("asc") {
                        desc = d.eq_ignore_ascii_case("desc");
                        toks.next();
                    }
                }
                query.order = Some((f, desc));
            }
            "startposition" | "maxresults" => {
                let n: usize = match toks.next() {
                    Some(Tok::Word(n)) => n.parse().map_err(|_| format!("bad number `{n}`"))?,
                    other => return Err(format!("expected a number, found {other:?}")),
                };
                if w.eq_ignore_ascii_case("startposition") {
                    if n == 0 {
                        return Err("STARTPOSITION is 1-based".into());
                    }
                    query.start = n;
                } else {
                    if n == 0 || n > 1000 {
                        return Err("MAXRESULTS must be between 1 and 1000".into());
                    }
                    query.max = n;
                }
            }
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    Ok(query)
}

/// The value at a dotted path (case-insensitive keys); an object such as
/// `PrimaryEmailAddr` compares by its `Address` (or `value`).
pub fn field<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in path.split('.') {
        let map = cur.as_object()?;
        cur = map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(part))
            .map(|(_, v)| v)?;
    }
    if let Some(m) = cur.as_object() {
        return m.get("Address").or_else(|| m.get("value"));
    }
    Some(cur)
}

/// Compares two values: times as instants, numbers as numbers, else text.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => {
            match (
                DateTime::parse_from_rfc3339(x),
                DateTime::parse_from_rfc3339(y),
            ) {
                (Ok(p), Ok(q)) => Some(p.cmp(&q)),
                _ => Some(x.cmp(y)),
            }
        }
        (Value::String(x), Value::Number(_)) => compare(
            &x.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)?,
            b,
        ),
        _ => None,
    }
}

fn like(text: &str, pattern: &str) -> bool {
    let t = text.to_lowercase();
    let p = pattern.to_lowercase();
    let parts: Vec<&str> = p.split('%').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return t == p;
    }
    let Some(mut rest) = t.strip_prefix(first) else {
        return false;
    };
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// True when `obj` meets every condition.
pub fn matches(obj: &Value, conds: &[Cond]) -> bool {
    conds.iter().all(|c| {
        let Some(v) = field(obj, &c.field) else {
            return false;
        };
        let first = &c.values[0];
        match c.op {
            Op::Eq => compare(v, first) == Some(Ordering::Equal),
            Op::Lt => compare(v, first) == Some(Ordering::Less),
            Op::Gt => compare(v, first) == Some(Ordering::Greater),
            Op::Le => matches!(compare(v, first), Some(Ordering::Less | Ordering::Equal)),
            Op::Ge => matches!(compare(v, first), Some(Ordering::Greater | Ordering::Equal)),
            Op::In => c
                .values
                .iter()
                .any(|x| compare(v, x) == Some(Ordering::Equal)),
            Op::Like => match (v.as_str(), first.as_str()) {
                (Some(t), Some(p)) => like(t, p),
                _ => false,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_documented_example() {
        let q = parse("select * from Customer where MetaData.LastUpdatedTime > '2024-01-01T00:00:00-08:00' orderby MetaData.LastUpdatedTime startposition 1 maxresults 1000").expect("parse");
        assert_eq!(q.entity, "Customer");
        assert_eq!(q.conds.len(), 1);
        assert_eq!(q.max, 1000);
        assert!(parse("select * from Customer where Id = '1' or Id = '2'").is_err());
        assert!(parse("select * from Customer maxresults 1001").is_err());
        assert!(parse("SELECT COUNT(*) FROM Invoice").expect("count").count);
    }

    #[test]
    fn conditions_compare_times_lists_and_escapes() {
        let c = json!({"DisplayName": "Amy's Bird", "Active": false, "MetaData": {"LastUpdatedTime": "2015-07-01T10:14:15-07:00"}, "PrimaryEmailAddr": {"Address": "a@b.c"}});
        let q = parse(r"select * from Customer where DisplayName = 'Amy\'s Bird' and Active IN (true, false) and Metadata.LastUpdatedTime >= '2015-07-01T17:14:15Z' and PrimaryEmailAddr = 'a@b.c'").expect("parse");
        assert!(matches(&c, &q.conds));
        let q = parse("select * from Customer where DisplayName like 'amy%'").expect("parse");
        assert!(matches(&c, &q.conds));
        let q =
            parse("select * from Customer where MetaData.LastUpdatedTime > '2015-07-01T17:14:15Z'")
                .expect("parse");
        assert!(!matches(&c, &q.conds));
    }
}
