//! Helpers shared by the integration tests.

use std::collections::HashSet;

use serde_json::Value;
use synchub_core::model::Contact;
use synchub_core::{Change, ChangeOp, Record, RemoteRecord};
use synchub_shopify::sandbox::{SandboxHandle, FIRST_CUSTOMER_ID};
use synchub_shopify::ShopifyConnector;

/// A connector for the sandbox, with the quota opened up for tests.
pub fn connector(shop: &SandboxHandle) -> ShopifyConnector {
    let mut cfg = shop.config();
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
    ShopifyConnector::new(cfg).expect("valid config")
}

/// [`connector`] with bulk operations off: backfills read pages.
pub fn paged_connector(shop: &SandboxHandle) -> ShopifyConnector {
    let mut cfg = shop.config();
    cfg.quota = Some(synchub_http::QuotaConfig::per_second(10_000, 10_000));
    cfg.bulk_backfill = false;
    ShopifyConnector::new(cfg).expect("valid config")
}

/// The GID of seed customer `i`.
pub fn gid(i: u64) -> String {
    format!("gid://shopify/Customer/{}", FIRST_CUSTOMER_ID + i)
}

/// Pulls until `done`; returns the records, the last cursor and the page count.
pub use synchub_testkit::harness::pull_all;

/// Distinct external ids.
pub fn distinct(records: &[RemoteRecord]) -> usize {
    records
        .iter()
        .map(|r| r.external_id.as_str())
        .collect::<HashSet<_>>()
        .len()
}

/// A contact change.
pub fn change(op: ChangeOp, external_id: Option<String>, contact: Contact) -> Change {
    Change {
        crm_id: format!("crm-{}", external_id.clone().unwrap_or_default()),
        op,
        external_id,
        base_version: None,
        record: Record::Contact(contact),
        idempotency_key: "k".into(),
        base: None,
    }
}

/// Header pairs as a map.
pub fn header_map(pairs: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in pairs {
        let name = http::HeaderName::try_from(k.as_str()).expect("name");
        map.insert(name, v.parse().expect("value"));
    }
    map
}

/// A fixture with the `_`-prefixed metadata keys removed.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    strip_meta(v)
}

/// Removes keys starting with `_` (test-author metadata), recursively.
pub fn strip_meta(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !k.starts_with('_') || k == "__parentId")
                .map(|(k, v)| (k, strip_meta(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_meta).collect()),
        other => other,
    }
}

/// The key structure of a JSON value: object keys recursively, arrays by
/// the union of their elements' structures, scalars as a type-free leaf.
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => {
            let mut merged = serde_json::Map::new();
            let mut any_object = false;
            for item in items {
                if let Value::Object(m) = shape(item) {
                    any_object = true;
                    for (k, v) in m {
                        // a null in one element and an object in another: keep the object
                        if !v.is_null() || !merged.contains_key(&k) {
                            merged.insert(k, v);
                        }
                    }
                }
            }
            if any_object {
                Value::Array(vec![Value::Object(merged)])
            } else {
                Value::Array(vec![])
            }
        }
        _ => Value::Null,
    }
}

/// Keys of `expected`'s shape missing from `actual`'s, as dotted paths.
pub fn missing_keys(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => missing_keys(ev, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(ev), Some(av)) = (e.first(), a.first()) {
                missing_keys(ev, av, &format!("{path}[]"), out);
            }
        }
        // a nullable object null on one side: nothing to compare
        _ => {}
    }
}
