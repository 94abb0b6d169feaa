//! Three-way field merge: base (the last snapshot both sides agreed on),
//! local (the CRM now) and remote (what just arrived).
//!
//! Edits to different fields both apply. List fields merge as sets (an
//! addition on one side and a removal on the other both survive). Edits to
//! the same scalar field follow the field's [`FieldPolicy`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::LIST_FIELDS;

pub mod survivorship;

/// Name of the CRM side in source-priority lists.
pub const CRM_SOURCE: &str = "crm";

/// How a same-field conflict is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldPolicy {
    /// The side with the later change time wins; when a side has no time or
    /// the two are closer than the skew guard, the conflict goes to review.
    Newest,
    /// The CRM value wins.
    CrmWins,
    /// The remote value wins.
    RemoteWins,
    /// The first source in the list wins (`crm` names the CRM side).
    Priority(Vec<String>),
    /// Keep the CRM value and record a conflict for a person to resolve.
    Manual,
}

/// The merge policy of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePolicy {
    /// Policy for fields without their own.
    pub default: FieldPolicy,
    /// Per-field policies.
    pub fields: BTreeMap<String, FieldPolicy>,
    /// Two change times closer than this are treated as simultaneous.
    pub clock_skew: Duration,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            default: FieldPolicy::Newest,
            fields: BTreeMap::new(),
            clock_skew: Duration::seconds(5),
        }
    }
}

impl MergePolicy {
    /// The policy of one field.
    pub fn for_field(&self, field: &str) -> &FieldPolicy {
        self.fields.get(field).unwrap_or(&self.default)
    }
}

/// One side of a merge.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The fields.
    pub fields: &'a Map<String, Value>,
    /// When this side last changed (its own clock).
    pub changed_at: Option<DateTime<Utc>>,
    /// Per field, when this side last changed it; fields not listed fall back
    /// to `changed_at`. The CRM keeps these (a record-level time would let
    /// an unrelated later edit win a field it never touched).
    pub field_times: Option<&'a BTreeMap<String, DateTime<Utc>>>,
    /// Source name for priority lists.
    pub source: &'a str,
}

impl Side<'_> {
    /// When this side last changed `field`.
    pub fn time_of(&self, field: &str) -> Option<DateTime<Utc>> {
        self.field_times
            .and_then(|m| m.get(field).copied())
            .or(self.changed_at)
    }
}

/// A same-field conflict a person must decide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldConflict {
    /// The field.
    pub field: String,
    /// Last agreed value.
    pub base: Value,
    /// The CRM value (kept for now).
    pub local: Value,
    /// The remote value.
    pub remote: Value,
}

/// The outcome of a merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merged fields: the CRM's new value.
    pub fields: Map<String, Value>,
    /// Conflicts recorded for review.
    pub conflicts: Vec<FieldConflict>,
    /// Fields where a policy chose one side over the other.
    pub decided: Vec<String>,
}

impl Merged {
    /// The merge changed the CRM side.
    pub fn changes_local(&self, local: &Map<String, Value>) -> bool {
        &self.fields != local
    }

    /// The remote side differs from the merge and needs a write.
    pub fn changes_remote(&self, remote: &Map<String, Value>) -> bool {
        &self.fields != remote
    }
}

/// Merges `local` and `remote` against `base` (`None`: the two were never in
/// step, e.g. a record just matched to an existing contact).
pub fn merge3(
    base: Option<&Map<String, Value>>,
    local: Side<'_>,
    remote: Side<'_>,
    policy: &MergePolicy,
) -> Merged {
    let mut keys: Vec<&String> = local.fields.keys().chain(remote.fields.keys()).collect();
    if let Some(b) = base {
        keys.extend(b.keys());
    }
    keys.sort();
    keys.dedup();

    let mut out = Merged {
        fields: Map::new(),
        conflicts: Vec::new(),
        decided: Vec::new(),
    };
    for key in keys {
        let l = local.fields.get(key);
        let r = remote.fields.get(key);
        let b = base.and_then(|b| b.get(key));
        let value = if l == r {
            l.cloned()
        } else if base.is_some() && l == b {
            r.cloned()
        } else if base.is_some() && r == b {
            l.cloned()
        } else if base.is_none() && (l.is_none() || r.is_none()) {
            // Never in step: each side fills what the other lacks.
            l.or(r).cloned()
        } else if LIST_FIELDS.contains(&key.as_str()) {
            Some(merge_sets(b, l, r))
        } else if key == "custom" {
            Some(merge_nested(key, b, l, r, local, remote, policy, &mut out))
        } else {
            decide(key, b, l, r, local, remote, policy, &mut out)
        };
        if let Some(v) = value {
            if !v.is_null() {
                out.fields.insert(key.clone(), v);
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn decide(
    key: &str,
    b: Option<&Value>,
    l: Option<&Value>,
    r: Option<&Value>,
    local: Side<'_>,
    remote: Side<'_>,
    policy: &MergePolicy,
    out: &mut Merged,
) -> Option<Value> {
    let take_local = match policy.for_field(key) {
        FieldPolicy::CrmWins => Some(true),
        FieldPolicy::RemoteWins => Some(false),
        FieldPolicy::Manual => None,
        FieldPolicy::Newest => match (local.time_of(key), remote.time_of(key)) {
            (Some(lt), Some(rt)) if (lt - rt).abs() > policy.clock_skew => Some(lt > rt),
            _ => None,
        },
        FieldPolicy::Priority(order) => {
            let rank = |s: &str| order.iter().position(|o| o == s).unwrap_or(usize::MAX);
            let (lr, rr) = (rank(local.source), rank(remote.source));
            if lr == rr {
                None
            } else {
                Some(lr < rr)
            }
        }
    };
    match take_local {
        Some(true) => {
            out.decided.push(key.to_string());
            l.cloned()
        }
        Some(false) => {
            out.decided.push(key.to_string());
            r.cloned()
        }
        None => {
            out.conflicts.push(FieldConflict {
                field: key.to_string(),
                base: b.cloned().unwrap_or(Value::Null),
                local: l.cloned().unwrap_or(Value::Null),
                remote: r.cloned().unwrap_or(Value::Null),
            });
            l.cloned()
        }
    }
}

/// Custom fields merge key by key; conflicts are named `custom.<key>`.
#[allow(clippy::too_many_arguments)]
fn merge_nested(
    key: &str,
    b: Option<&Value>,
    l: Option<&Value>,
    r: Option<&Value>,
    local: Side<'_>,
    remote: Side<'_>,
    policy: &MergePolicy,
    out: &mut Merged,
) -> Value {
    let empty = Map::new();
    let obj = |v: Option<&Value>| match v {
        Some(Value::Object(m)) => m.clone(),
        _ => empty.clone(),
    };
    let (bm, lm, rm) = (obj(b), obj(l), obj(r));
    let inner = merge3(
        b.map(|_| &bm),
        Side {
            fields: &lm,
            changed_at: local.time_of(key),
            field_times: None,
            source: local.source,
        },
        Side {
            fields: &rm,
            changed_at: remote.time_of(key),
            field_times: None,
            source: remote.source,
        },
        policy,
    );
    for mut c in inner.conflicts {
        c.field = format!("{key}.{}", c.field);
        out.conflicts.push(c);
    }
    out.decided
        .extend(inner.decided.into_iter().map(|d| format!("{key}.{d}")));
    Value::Object(inner.fields)
}

fn as_list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    }
}

/// Set merge: start from the base, apply both sides' additions and removals.
/// Order follows local, then remote additions.
fn merge_sets(b: Option<&Value>, l: Option<&Value>, r: Option<&Value>) -> Value {
    let base = as_list(b);
    let local = as_list(l);
    let remote = as_list(r);
    let removed = |side: &[Value]| -> Vec<Value> {
        base.iter().filter(|x| !side.contains(x)).cloned().collect()
    };
    let removed_l = removed(&local);
    let removed_r = removed(&remote);
    // Remote additions, in remote order. One that replaces an item the
    // remote removed takes that item's place (a changed primary phone stays
    // first); the others go last.
    let mut added_r: Vec<&Value> = remote
        .iter()
        .filter(|x| !base.contains(x) && !local.contains(x))
        .collect();
    let mut out: Vec<Value> = Vec::new();
    for item in &local {
        if removed_r.contains(item) && !added_r.is_empty() {
            let replacement = added_r.remove(0);
            if !out.contains(replacement) {
                out.push(replacement.clone());
            }
            continue;
        }
        if removed_l.contains(item) || removed_r.contains(item) || out.contains(item) {
            continue;
        }
        out.push(item.clone());
    }
    for item in added_r {
        if !removed_l.contains(item) && !out.contains(item) {
            out.push(item.clone());
        }
    }
    Value::Array(out)
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

    fn side<'a>(fields: &'a Map<String, Value>, source: &'a str) -> Side<'a> {
        Side {
            fields,
            changed_at: None,
            field_times: None,
            source,
        }
    }

    #[test]
    fn edits_to_different_fields_both_apply() {
        let base = map(json!({"given_name": "Ann", "company": "Acme"}));
        let local = map(json!({"given_name": "Anne", "company": "Acme"}));
        let remote = map(json!({"given_name": "Ann", "company": "Acme Ltd"}));
        let m = merge3(
            Some(&base),
            side(&local, "crm"),
            side(&remote, "shop"),
            &MergePolicy::default(),
        );
        assert_eq!(
            m.fields,
            map(json!({"given_name": "Anne", "company": "Acme Ltd"}))
        );
        assert!(m.conflicts.is_empty());
    }

    #[test]
    fn set_merge_keeps_an_addition_and_a_removal() {
        let base = map(json!({"emails": ["a@x.tw", "b@x.tw"]}));
        let local = map(json!({"emails": ["a@x.tw", "b@x.tw", "c@x.tw"]}));
        let remote = map(json!({"emails": ["b@x.tw"]}));
        let m = merge3(
            Some(&base),
            side(&local, "crm"),
            side(&remote, "shop"),
            &MergePolicy::default(),
        );
        assert_eq!(m.fields, map(json!({"emails": ["b@x.tw", "c@x.tw"]})));
    }

    #[test]
    fn a_replaced_list_item_keeps_its_place() {
        // The shop replaced the mobile; the CRM also holds a landline.
        let base = map(json!({"phones": ["+886912000001"]}));
        let local = map(json!({"phones": ["+886912000001", "+886227208889"]}));
        let remote = map(json!({"phones": ["+886912999999"]}));
        let m = merge3(
            Some(&base),
            side(&local, "crm"),
            side(&remote, "shop"),
            &MergePolicy::default(),
        );
        assert_eq!(
            m.fields["phones"],
            json!(["+886912999999", "+886227208889"]),
            "the new number takes the old one's place, first"
        );
    }

    #[test]
    fn manual_keeps_local_and_records_the_conflict() {
        let base = map(json!({"company": "Acme"}));
        let local = map(json!({"company": "Acme Taiwan"}));
        let remote = map(json!({"company": "Acme HK"}));
        let policy = MergePolicy {
            default: FieldPolicy::Manual,
            ..MergePolicy::default()
        };
        let m = merge3(
            Some(&base),
            side(&local, "crm"),
            side(&remote, "shop"),
            &policy,
        );
        assert_eq!(m.fields, local);
        assert_eq!(m.conflicts.len(), 1);
        assert_eq!(m.conflicts[0].remote, json!("Acme HK"));
    }

    #[test]
    fn newest_respects_clock_skew_guard() {
        let base = map(json!({"title": "A"}));
        let local = map(json!({"title": "L"}));
        let remote = map(json!({"title": "R"}));
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        let policy = MergePolicy::default();
        let mk = |lt: i64, rt: i64| {
            merge3(
                Some(&base),
                Side {
                    fields: &local,
                    changed_at: Some(t0 + Duration::seconds(lt)),
                    field_times: None,
                    source: "crm",
                },
                Side {
                    fields: &remote,
                    changed_at: Some(t0 + Duration::seconds(rt)),
                    field_times: None,
                    source: "shop",
                },
                &policy,
            )
        };
        assert_eq!(mk(0, 60).fields["title"], json!("R"));
        assert_eq!(mk(60, 0).fields["title"], json!("L"));
        let close = mk(0, 2);
        assert_eq!(close.fields["title"], json!("L"));
        assert_eq!(
            close.conflicts.len(),
            1,
            "within skew: review, never a silent loss"
        );
    }

    #[test]
    fn priority_list_picks_the_first_source() {
        let base = map(json!({"title": "A"}));
        let local = map(json!({"title": "L"}));
        let remote = map(json!({"title": "R"}));
        let policy = MergePolicy {
            default: FieldPolicy::Priority(vec!["erp".into(), "crm".into()]),
            ..MergePolicy::default()
        };
        let m = merge3(
            Some(&base),
            side(&local, "crm"),
            side(&remote, "erp"),
            &policy,
        );
        assert_eq!(m.fields["title"], json!("R"));
        let m = merge3(
            Some(&base),
            side(&local, "crm"),
            side(&remote, "shop"),
            &policy,
        );
        assert_eq!(m.fields["title"], json!("L"));
    }

    #[test]
    fn never_in_step_fills_gaps_from_both_sides() {
        let local = map(json!({"given_name": "大文", "emails": ["a@x.hk"]}));
        let remote = map(json!({"phones": ["+85291234567"], "emails": ["a@x.hk", "b@x.hk"]}));
        let m = merge3(
            None,
            side(&local, "crm"),
            side(&remote, "shop"),
            &MergePolicy::default(),
        );
        assert_eq!(m.fields["phones"], json!(["+85291234567"]));
        assert_eq!(m.fields["emails"], json!(["a@x.hk", "b@x.hk"]));
        assert_eq!(m.fields["given_name"], json!("大文"));
    }

    #[test]
    fn custom_fields_merge_key_by_key() {
        let base = map(json!({"custom": {"tier": "gold", "note": "a"}}));
        let local = map(json!({"custom": {"tier": "platinum", "note": "a"}}));
        let remote = map(json!({"custom": {"tier": "gold", "note": "b"}}));
        let m = merge3(
            Some(&base),
            side(&local, "crm"),
            side(&remote, "s"),
            &MergePolicy::default(),
        );
        assert_eq!(
            m.fields,
            map(json!({"custom": {"tier": "platinum", "note": "b"}}))
        );
        assert!(m.conflicts.is_empty());
    }

    #[test]
    fn merge_is_idempotent() {
        let base = map(json!({"company": "Acme", "tags": ["a"]}));
        let local = map(json!({"company": "Acme", "tags": ["a", "b"]}));
        let remote = map(json!({"company": "Beta", "tags": ["a"]}));
        let p = MergePolicy::default();
        let m1 = merge3(Some(&base), side(&local, "crm"), side(&remote, "s"), &p);
        let m2 = merge3(
            Some(&remote),
            side(&m1.fields, "crm"),
            side(&remote, "s"),
            &p,
        );
        assert_eq!(m1.fields, m2.fields);
    }
}
