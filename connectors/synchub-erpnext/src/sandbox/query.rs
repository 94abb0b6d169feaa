//! The list semantics of `frappe.client.get_list` as the sandbox serves
//! them: `filters` (a list of `[field, op, value]` or
//! `[child doctype, field, op, value]`, or a dict), `or_filters`,
//! `order_by`, `fields` and the limits.

use std::cmp::Ordering;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

/// One parsed filter.
#[derive(Debug, Clone)]
pub struct Filter {
    /// A child DocType the condition applies to (any of its rows).
    pub child: Option<String>,
    /// The column.
    pub field: String,
    /// The operator, lower case.
    pub op: String,
    /// The operand.
    pub value: Value,
}

/// Parses `filters` / `or_filters`; `doctype` is the listed DocType (a
/// 4-element filter naming it is a plain filter).
pub fn parse_filters(v: &Value, doctype: &str) -> Result<Vec<Filter>, String> {
    let mut out = Vec::new();
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                let parts = item
                    .as_array()
                    .ok_or_else(|| format!("a filter is not a list: {item}"))?;
                let (child, rest) = match parts.len() {
                    3 => (None, &parts[..]),
                    4 | 5 => {
                        let dt = parts[0].as_str().unwrap_or_default().to_string();
                        ((dt != doctype).then_some(dt), &parts[1..4])
                    }
                    _ => return Err(format!("a filter has {} parts: {item}", parts.len())),
                };
                out.push(Filter {
                    child,
                    field: rest[0].as_str().unwrap_or_default().to_string(),
                    op: rest[1].as_str().unwrap_or("=").to_lowercase(),
                    value: rest[2].clone(),
                });
            }
        }
        Value::Object(m) => {
            for (field, value) in m {
                let (op, value) = match value {
                    Value::Array(a) if a.len() == 2 && a[0].is_string() => {
                        (a[0].as_str().unwrap_or("=").to_lowercase(), a[1].clone())
                    }
                    other => ("=".to_string(), other.clone()),
                };
                out.push(Filter {
                    child: None,
                    field: field.clone(),
                    op,
                    value,
                });
            }
        }
        other => return Err(format!("filters must be a list or a dict: {other}")),
    }
    Ok(out)
}

fn as_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()
}

/// Compares two column values as MariaDB would for these columns: numbers
/// as numbers, datetimes as datetimes, everything else as text.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Number(x), Value::String(s)) | (Value::String(s), Value::Number(x)) => {
            let y: Option<f64> = s.parse().ok();
            let o = x.as_f64().partial_cmp(&y).unwrap_or(Ordering::Equal);
            if matches!(a, Value::Number(_)) {
                o
            } else {
                o.reverse()
            }
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => {
            let (x, y) = (text(a), text(b));
            match (as_time(&x), as_time(&y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => x.cmp(&y),
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn like(value: &str, pattern: &str) -> bool {
    // `%` any run, `_` one character; case-insensitive as MariaDB's collation.
    fn go(v: &[char], p: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('%') => (0..=v.len()).any(|i| go(&v[i..], &p[1..])),
            Some('_') => !v.is_empty() && go(&v[1..], &p[1..]),
            Some(c) => v.first().is_some_and(|x| x == c) && go(&v[1..], &p[1..]),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&v, &p)
}

fn test(row: &Map<String, Value>, f: &Filter) -> bool {
    let v = row.get(&f.field).cloned().unwrap_or(Value::Null);
    let list = || -> Vec<Value> {
        match &f.value {
            Value::Array(a) => a.clone(),
            Value::String(s) => s
                .split(',')
                .map(|x| Value::String(x.trim().into()))
                .collect(),
            other => vec![other.clone()],
        }
    };
    match f.op.as_str() {
        "=" => compare(&v, &f.value) == Ordering::Equal,
        "!=" => compare(&v, &f.value) != Ordering::Equal,
        ">" => compare(&v, &f.value) == Ordering::Greater,
        "<" => compare(&v, &f.value) == Ordering::Less,
        ">=" => compare(&v, &f.value) != Ordering::Less,
        "<=" => compare(&v, &f.value) != Ordering::Greater,
        "like" => like(&text(&v), &text(&f.value)),
        "not like" => !like(&text(&v), &text(&f.value)),
        "in" => list().iter().any(|x| compare(&v, x) == Ordering::Equal),
        "not in" => !list().iter().any(|x| compare(&v, x) == Ordering::Equal),
        "between" => {
            let l = list();
            l.len() == 2
                && compare(&v, &l[0]) != Ordering::Less
                && compare(&v, &l[1]) != Ordering::Greater
        }
        "is" => {
            let set = !matches!(&v, Value::Null) && !text(&v).is_empty();
            if text(&f.value) == "set" {
                set
            } else {
                !set
            }
        }
        _ => false,
    }
}

/// True when `doc` passes `f` (a child filter: any row of that DocType).
pub fn matches(doc: &Map<String, Value>, f: &Filter) -> bool {
    match &f.child {
        None => test(doc, f),
        Some(child) => doc.values().any(|v| {
            v.as_array().is_some_and(|rows| {
                rows.iter().filter_map(Value::as_object).any(|r| {
                    r.get("doctype").and_then(Value::as_str) == Some(child.as_str()) && test(r, f)
                })
            })
        }),
    }
}

/// Parses `modified asc, name asc` (default direction: desc, as MariaDB's
/// `ORDER BY x` is asc but Frappe's default sort is `modified desc`).
pub fn parse_order(s: &str) -> Vec<(String, bool)> {
    s.split(',')
        .filter_map(|part| {
            let mut words = part.split_whitespace();
            let field = words.next()?.trim_matches('`').to_string();
            let field = field.rsplit('.').next().unwrap_or(&field).to_string();
            let desc = words.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
            Some((field, desc))
        })
        .collect()
}

/// Sorts by the parsed order.
pub fn sort(rows: &mut [&Map<String, Value>], order: &[(String, bool)]) {
    rows.sort_by(|a, b| {
        for (field, desc) in order {
            let o = compare(
                a.get(field).unwrap_or(&Value::Null),
                b.get(field).unwrap_or(&Value::Null),
            );
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
}

/// The requested columns of a row: `*` is every column of the main table
/// (no child tables, no `doctype`); a missing column is null.
pub fn project(doc: &Map<String, Value>, fields: &[String]) -> Value {
    let mut out = Map::new();
    for f in fields {
        if f == "*" {
            for (k, v) in doc {
                if !v.is_array() && k != "doctype" {
                    out.insert(k.clone(), v.clone());
                }
            }
        } else {
            let name = f.trim_matches('`');
            out.insert(
                name.to_string(),
                doc.get(name).cloned().unwrap_or(Value::Null),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn datetimes_compare_as_times() {
        assert_eq!(
            compare(
                &json!("2024-06-01 10:15:42"),
                &json!("2024-06-01 10:15:42.000000")
            ),
            Ordering::Equal
        );
        assert!(like("陳大文-CUST", "%cust"));
        let f = parse_filters(
            &json!({"disabled": 0, "modified": [">", "2024-01-01"]}),
            "Customer",
        )
        .expect("filters");
        assert_eq!(f.len(), 2);
    }
}
