//! A small GraphQL document reader: the operation's kind and its selection
//! tree, with each field's arguments resolved against the variables. Enough
//! to price a query by Shopify's cost rules ([`crate::cost`]) and, in the
//! sandbox, to price what a client sends. Fragments are not supported (the
//! connector sends none); inline fragments are read as plain selections.

use serde_json::{Map, Value};

/// Whether the document is a query or a mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// `query` (or the shorthand `{ … }`).
    Query,
    /// `mutation`.
    Mutation,
}

/// One selected field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The schema field name (not the alias).
    pub name: String,
    /// Arguments with variables substituted.
    pub args: Map<String, Value>,
    /// The sub-selection; empty for a leaf.
    pub selection: Vec<Field>,
}

/// A parsed operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Query or mutation.
    pub kind: OperationKind,
    /// The root selection.
    pub selection: Vec<Field>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("graphql document: {0}")]
pub struct ParseError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Var(String),
    Str(String),
    Num(String),
    Punct(char),
    Spread,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err(ParseError("unterminated string".into()));
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if c == '.' {
            if chars.get(i..i + 3) == Some(&['.', '.', '.']) {
                out.push(Tok::Spread);
                i += 3;
            } else {
                return Err(ParseError("stray `.`".into()));
            }
        } else if c == '$' {
            let start = i + 1;
            i = start;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Var(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '-' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || ".eE+-".contains(chars[i])) {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if "{}()[]:!=@".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            return Err(ParseError(format!("unexpected character `{c}`")));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    vars: &'a Map<String, Value>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        match self.next() {
            Some(Tok::Punct(p)) if p == c => Ok(()),
            other => Err(ParseError(format!("expected `{c}`, found {other:?}"))),
        }
    }

    fn is(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    /// Skips a balanced `( … )` (variable definitions).
    fn skip_parens(&mut self) -> Result<(), ParseError> {
        let mut depth = 0usize;
        loop {
            match self.next() {
                Some(Tok::Punct('(')) => depth += 1,
                Some(Tok::Punct(')')) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err(ParseError("unbalanced parentheses".into())),
            }
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.next() {
            Some(Tok::Var(v)) => Ok(self.vars.get(&v).cloned().unwrap_or(Value::Null)),
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Num(n)) => Ok(n
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .map_err(|_| ParseError(format!("bad number `{n}`")))?),
            Some(Tok::Name(n)) => Ok(match n.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::String(n),
            }),
            Some(Tok::Punct('[')) => {
                let mut items = Vec::new();
                while !self.is(']') {
                    items.push(self.value()?);
                }
                self.expect(']')?;
                Ok(Value::Array(items))
            }
            Some(Tok::Punct('{')) => {
                let mut obj = Map::new();
                while !self.is('}') {
                    let Some(Tok::Name(k)) = self.next() else {
                        return Err(ParseError("expected an object key".into()));
                    };
                    self.expect(':')?;
                    obj.insert(k, self.value()?);
                }
                self.expect('}')?;
                Ok(Value::Object(obj))
            }
            other => Err(ParseError(format!("expected a value, found {other:?}"))),
        }
    }

    fn selection(&mut self) -> Result<Vec<Field>, ParseError> {
        self.expect('{')?;
        let mut fields = Vec::new();
        while !self.is('}') {
            if self.peek() == Some(&Tok::Spread) {
                self.next();
                // `... on Type { … }`: read its fields as if selected here
                if self.peek() == Some(&Tok::Name("on".into())) {
                    self.next();
                    self.next();
                }
                if !self.is('{') {
                    return Err(ParseError("named fragments are not supported".into()));
                }
                fields.extend(self.selection()?);
                continue;
            }
            let Some(Tok::Name(mut name)) = self.next() else {
                return Err(ParseError("expected a field name".into()));
            };
            if self.is(':') {
                self.next();
                match self.next() {
                    Some(Tok::Name(real)) => name = real,
                    other => return Err(ParseError(format!("bad alias target {other:?}"))),
                }
            }
            let mut args = Map::new();
            if self.is('(') {
                self.next();
                while !self.is(')') {
                    let Some(Tok::Name(arg)) = self.next() else {
                        return Err(ParseError(format!("bad argument of `{name}`")));
                    };
                    self.expect(':')?;
                    args.insert(arg, self.value()?);
                }
                self.expect(')')?;
            }
            while self.is('@') {
                self.next();
                self.next();
                if self.is('(') {
                    self.skip_parens()?;
                }
            }
            let selection = if self.is('{') {
                self.selection()?
            } else {
                Vec::new()
            };
            fields.push(Field {
                name,
                args,
                selection,
            });
        }
        self.expect('}')?;
        Ok(fields)
    }
}

/// Reads the (single) operation of `text` with `vars` substituted.
pub fn parse(text: &str, vars: &Map<String, Value>) -> Result<Operation, ParseError> {
    let mut p = Parser {
        toks: tokenize(text)?,
        pos: 0,
        vars,
    };
    let kind = match p.peek() {
        Some(Tok::Name(n)) if n == "mutation" => OperationKind::Mutation,
        Some(Tok::Name(n)) if n == "query" => OperationKind::Query,
        Some(Tok::Punct('{')) => OperationKind::Query,
        other => {
            return Err(ParseError(format!(
                "expected an operation, found {other:?}"
            )))
        }
    };
    if !p.is('{') {
        p.next();
        if let Some(Tok::Name(_)) = p.peek() {
            p.next();
        }
        if p.is('(') {
            p.skip_parens()?;
        }
    }
    let selection = p.selection()?;
    Ok(Operation { kind, selection })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fields_arguments_and_variables() {
        let vars = json!({"first": 7, "q": "updated_at:>='x, y'"});
        let op = parse(
            r#"query Q($first: Int!, $q: String) { a: customers(first: $first, query: $q, sortKey: UPDATED_AT) {
                 pageInfo { hasNextPage } nodes { id amountSpent { amount } } } }"#,
            vars.as_object().expect("object"),
        )
        .expect("parse");
        assert_eq!(op.kind, OperationKind::Query);
        let c = &op.selection[0];
        assert_eq!(c.name, "customers");
        assert_eq!(c.args["first"], 7);
        assert_eq!(c.args["query"], "updated_at:>='x, y'");
        assert_eq!(c.args["sortKey"], "UPDATED_AT");
        assert_eq!(c.selection[1].selection[1].name, "amountSpent");
        let m = parse(
            "mutation m($i: X!) { customerUpdate(input: $i) { customer { id } } }",
            &Map::new(),
        )
        .expect("parse");
        assert_eq!(m.kind, OperationKind::Mutation);
        assert!(parse("{ a { b }", &Map::new()).is_err());
    }
}
