//! Survivorship: the golden record of two CRM contacts judged the same
//! person. Per field, a configurable rule picks the surviving value: the most
//! recent edit, the most complete value, or the value of the most trusted
//! source (each source's values are the last-synced snapshots of its links).
//! List fields are united, custom fields are united key by key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::merge::CRM_SOURCE;
use crate::model::LIST_FIELDS;

/// How one field's surviving value is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Survivorship {
    /// The value edited last (by the CRM's per-field source times).
    MostRecent,
    /// The fuller value: present over absent, then the longer text.
    MostComplete,
    /// The value held by the first listed source (`crm` names the CRM
    /// records themselves); falls back to the most recent.
    SourcePriority(Vec<String>),
}

/// Survivorship rules of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurvivorshipRules {
    /// Rule for fields without their own.
    pub default: Survivorship,
    /// Per-field rules.
    #[serde(default)]
    pub fields: BTreeMap<String, Survivorship>,
}

impl Default for SurvivorshipRules {
    fn default() -> Self {
        SurvivorshipRules {
            default: Survivorship::MostRecent,
            fields: BTreeMap::new(),
        }
    }
}

/// One of the two records being merged.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its fields.
    pub fields: &'a Map<String, Value>,
    /// Per field, the source time of the edit that set it.
    pub field_times: &'a BTreeMap<String, DateTime<Utc>>,
    /// (source name, last-synced snapshot) of each of its links.
    pub sources: &'a [(String, Map<String, Value>)],
}

/// The golden record and its per-field times.
#[derive(Debug, Clone, PartialEq)]
pub struct Golden {
    /// The fields.
    pub fields: Map<String, Value>,
    /// Per-field times (of the side each value came from).
    pub field_times: BTreeMap<String, DateTime<Utc>>,
    /// Fields whose value came from the loser.
    pub from_loser: Vec<String>,
}

fn empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

fn size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 1,
    }
}

/// Whether the loser's value of `key` wins under `rule`.
fn loser_wins(key: &str, rule: &Survivorship, s: Candidate<'_>, l: Candidate<'_>) -> bool {
    let (sv, lv) = (s.fields.get(key), l.fields.get(key));
    if empty(lv) {
        return false;
    }
    if empty(sv) {
        return true;
    }
    let recent = || match (s.field_times.get(key), l.field_times.get(key)) {
        (Some(st), Some(lt)) => lt > st,
        (None, Some(_)) => true,
        _ => false,
    };
    match rule {
        Survivorship::MostRecent => recent(),
        Survivorship::MostComplete => lv.map(size).unwrap_or(0) > sv.map(size).unwrap_or(0),
        Survivorship::SourcePriority(order) => {
            for source in order {
                if source == CRM_SOURCE {
                    return false;
                }
                let holds = |c: Candidate<'_>, v: Option<&Value>| {
                    c.sources
                        .iter()
                        .any(|(name, snap)| name == source && snap.get(key) == v)
                };
                if holds(s, sv) {
                    return false;
                }
                if holds(l, lv) {
                    return true;
                }
            }
            recent()
        }
    }
}

fn union(a: Option<&Value>, b: Option<&Value>) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for v in [a, b].into_iter().flatten() {
        match v {
            Value::Array(items) => {
                for i in items {
                    if !out.contains(i) {
                        out.push(i.clone());
                    }
                }
            }
            Value::Null => {}
            other => {
                if !out.contains(other) {
                    out.push(other.clone());
                }
            }
        }
    }
    Value::Array(out)
}

/// Builds the golden record of `survivor` and `loser`.
pub fn golden(survivor: Candidate<'_>, loser: Candidate<'_>, rules: &SurvivorshipRules) -> Golden {
    let mut keys: Vec<&String> = survivor.fields.keys().chain(loser.fields.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Golden {
        fields: Map::new(),
        field_times: survivor.field_times.clone(),
        from_loser: Vec::new(),
    };
    let rule_of = |k: &str| rules.fields.get(k).unwrap_or(&rules.default);
    for key in keys {
        let (sv, lv) = (survivor.fields.get(key), loser.fields.get(key));
        let value = if LIST_FIELDS.contains(&key.as_str()) {
            let u = union(sv, lv);
            if Some(&u) != sv {
                out.from_loser.push(key.clone());
                if let Some(t) = loser.field_times.get(key) {
                    let newer = out.field_times.get(key).is_none_or(|s| t > s);
                    if newer {
                        out.field_times.insert(key.clone(), *t);
                    }
                }
            }
            u
        } else if key == "custom" {
            let obj = |v: Option<&Value>| match v {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            let (sm, lm) = (obj(sv), obj(lv));
            let (st, lt) = (BTreeMap::new(), BTreeMap::new());
            let inner = golden(
                Candidate {
                    fields: &sm,
                    field_times: &st,
                    sources: &[],
                },
                Candidate {
                    fields: &lm,
                    field_times: &lt,
                    sources: &[],
                },
                &SurvivorshipRules {
                    default: Survivorship::MostComplete,
                    fields: BTreeMap::new(),
                },
            );
            if !inner.from_loser.is_empty() {
                out.from_loser.push(key.clone());
            }
            // A custom field both records hold with different values keeps
            // both (as a list, the survivor's first): custom fields carry
            // no survivorship rule that could say which one is right.
            let mut fields = inner.fields;
            for (k, l) in &lm {
                let Some(s) = sm.get(k) else { continue };
                if s == l || s.is_null() || l.is_null() {
                    continue;
                }
                let mut list: Vec<Value> = Vec::new();
                for v in [s, l] {
                    let items = match v {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    for item in items {
                        if !list.contains(&item) {
                            list.push(item);
                        }
                    }
                }
                fields.insert(k.clone(), Value::Array(list));
            }
            Value::Object(fields)
        } else if loser_wins(key, rule_of(key), survivor, loser) {
            out.from_loser.push(key.clone());
            match loser.field_times.get(key) {
                Some(t) => out.field_times.insert(key.clone(), *t),
                None => out.field_times.remove(key),
            };
            lv.cloned().unwrap_or(Value::Null)
        } else {
            sv.cloned().unwrap_or(Value::Null)
        };
        let drop = value.is_null() || (value.is_array() && empty(Some(&value)));
        if !drop {
            out.fields.insert(key.clone(), value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn most_recent_takes_the_later_edit_and_unites_lists() {
        let s = map(json!({"company": "Acme", "emails": ["a@x.tw"], "title": "CEO"}));
        let l = map(json!({"company": "Acme Ltd", "emails": ["b@x.tw"], "given_name": "大文"}));
        let st = BTreeMap::from([("company".to_string(), t(0)), ("title".to_string(), t(0))]);
        let lt = BTreeMap::from([("company".to_string(), t(10))]);
        let g = golden(
            Candidate {
                fields: &s,
                field_times: &st,
                sources: &[],
            },
            Candidate {
                fields: &l,
                field_times: &lt,
                sources: &[],
            },
            &SurvivorshipRules::default(),
        );
        assert_eq!(g.fields["company"], json!("Acme Ltd"));
        assert_eq!(g.fields["emails"], json!(["a@x.tw", "b@x.tw"]));
        assert_eq!(g.fields["given_name"], json!("大文"), "gaps are filled");
        assert_eq!(g.fields["title"], json!("CEO"));
        assert_eq!(g.field_times["company"], t(10));
    }

    #[test]
    fn most_complete_and_source_priority() {
        let s = map(json!({"company": "Acme", "title": "Buyer"}));
        let l = map(json!({"company": "Acme Trading Ltd", "title": "Head Buyer"}));
        let none = BTreeMap::new();
        let s_src = vec![("erp".to_string(), map(json!({"title": "Buyer"})))];
        let l_src = vec![("shop".to_string(), map(json!({"title": "Head Buyer"})))];
        let rules = SurvivorshipRules {
            default: Survivorship::MostComplete,
            fields: BTreeMap::from([(
                "title".to_string(),
                Survivorship::SourcePriority(vec!["erp".into(), "shop".into()]),
            )]),
        };
        let g = golden(
            Candidate {
                fields: &s,
                field_times: &none,
                sources: &s_src,
            },
            Candidate {
                fields: &l,
                field_times: &none,
                sources: &l_src,
            },
            &rules,
        );
        assert_eq!(g.fields["company"], json!("Acme Trading Ltd"));
        assert_eq!(
            g.fields["title"],
            json!("Buyer"),
            "the ERP is trusted first"
        );
    }
}
