//! Just enough GraphQL to serve the connector's documents: the root field
//! of the operation and the literal or `$variable` arguments of a field.
//! The sandbox does not honour selection sets: it answers with the fields
//! the connector selects (see `render.rs`).

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The first field inside the operation's selection set.
pub fn root_field(query: &str) -> Option<String> {
    let body = &query[query.find('{')? + 1..];
    let name: String = body
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The arguments of the first occurrence of `field(...)`, resolved against
/// the variables. Enum values come back as strings.
pub fn field_args(query: &str, field: &str, vars: &Map<String, Value>) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    let pattern = format!("{field}(");
    // skip the operation header (`mutation customerUpdate($input: …)`)
    let body = query.find('{').map_or(query, |i| &query[i..]);
    let Some(start) = body.find(&pattern) else {
        return out;
    };
    let rest = &body[start + pattern.len()..];
    for (name, raw) in split_args(rest) {
        let value = if let Some(var) = raw.strip_prefix('$') {
            vars.get(var).cloned().unwrap_or(Value::Null)
        } else if let Some(s) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Value::String(s.replace("\\\"", "\"").replace("\\\\", "\\"))
        } else if let Ok(n) = raw.parse::<i64>() {
            Value::from(n)
        } else if raw == "null" {
            Value::Null
        } else {
            Value::String(raw.to_string())
        };
        out.insert(name, value);
    }
    out
}

/// Splits `a: 1, b: "x, y", c: $v) { ...` into name/raw-value pairs up to the
/// closing parenthesis.
fn split_args(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for c in text.chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                current.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' | '}' if depth > 0 => {
                depth -= 1;
                current.push(c);
            }
            ')' => break,
            ',' | '\n' if depth == 0 => {
                push_pair(&mut pairs, &current);
                current.clear();
            }
            _ => current.push(c),
        }
    }
    push_pair(&mut pairs, &current);
    pairs
}

fn push_pair(pairs: &mut Vec<(String, String)>, text: &str) {
    if let Some((name, value)) = text.split_once(':') {
        let name = name.trim();
        if !name.is_empty() {
            pairs.push((name.to_string(), value.trim().to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_root_field_and_arguments() {
        let q = r#"query Customers($first: Int!, $after: String, $q: String) {
            customers(first: $first, after: $after, query: $q, sortKey: UPDATED_AT) {
              nodes { id lineItems(first: 7) { nodes { id } } } } }"#;
        let vars = json!({"first": 250, "q": "updated_at:>'2024-01-01T00:00:00Z'"});
        let vars = vars.as_object().expect("object");
        assert_eq!(root_field(q).as_deref(), Some("customers"));
        let args = field_args(q, "customers", vars);
        assert_eq!(args["first"], 250);
        assert_eq!(args["after"], Value::Null);
        assert_eq!(args["sortKey"], "UPDATED_AT");
        assert_eq!(args["query"], "updated_at:>'2024-01-01T00:00:00Z'");
        assert_eq!(field_args(q, "lineItems", vars)["first"], 7);
        let literal = r#"{ orders(first: 3, query: "updated_at:>='2024-01-01T00:00:00Z', x") { nodes { id } } }"#;
        let args = field_args(literal, "orders", &Map::new());
        assert_eq!(args["query"], "updated_at:>='2024-01-01T00:00:00Z', x");
        assert_eq!(
            root_field("mutation M($i: CustomerInput!) { customerUpdate(input: $i) { x } }")
                .as_deref(),
            Some("customerUpdate")
        );
    }
}
