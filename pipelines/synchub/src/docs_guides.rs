//! The connector guides (`docs/connectors/<kind>.md`) cannot drift from the
//! code. These tests fail, naming the guide and the key, when:
//!
//! * a connector kind this build registers has no guide;
//! * a key in a guide's *Every key* table (or its `oauth` table) is not a
//!   key of that connector's config type, or a key of the type is missing
//!   from the table (read from serde's refusal of an unknown key, as in
//!   [`crate::docs_check`]);
//! * the webhook topics the Shopify or WooCommerce guide lists are not
//!   exactly the ones `synchub check --register-webhooks` registers (that
//!   the daemon syncs each is checked by `docs_check`);
//! * the Shopify guide names an access scope `synchub check` does not
//!   know, or leaves out one it asks for;
//! * a pipeline example in a guide does not load as `synchub run` loads it.
//!
//! Run alone: `cargo nextest run -p synchub -E 'test(docs_guides)'`.

use std::collections::BTreeSet;

use serde_json::json;
use synchub_engine::config::{ConnectionConfig, Direction};

use crate::docs_check::{
    connector_keys, documented_topics, example_problems, expected_names, report, toml_blocks, PROBE,
};
use crate::registry;

/// Every guide: kind, path, text.
const GUIDES: &[(&str, &str, &str)] = &[
    (
        "erpnext",
        "docs/connectors/erpnext.md",
        include_str!("../../../docs/connectors/erpnext.md"),
    ),
    (
        "csv",
        "docs/connectors/csv.md",
        include_str!("../../../docs/connectors/csv.md"),
    ),
    (
        "shopify",
        "docs/connectors/shopify.md",
        include_str!("../../../docs/connectors/shopify.md"),
    ),
    (
        "woocommerce",
        "docs/connectors/woocommerce.md",
        include_str!("../../../docs/connectors/woocommerce.md"),
    ),
    (
        "gmail",
        "docs/connectors/gmail.md",
        include_str!("../../../docs/connectors/gmail.md"),
    ),
    (
        "outlook",
        "docs/connectors/outlook.md",
        include_str!("../../../docs/connectors/outlook.md"),
    ),
    (
        "imap",
        "docs/connectors/imap.md",
        include_str!("../../../docs/connectors/imap.md"),
    ),
    (
        "quickbooks",
        "docs/connectors/quickbooks.md",
        include_str!("../../../docs/connectors/quickbooks.md"),
    ),
    (
        "xero",
        "docs/connectors/xero.md",
        include_str!("../../../docs/connectors/xero.md"),
    ),
    (
        "odoo",
        "docs/connectors/odoo.md",
        include_str!("../../../docs/connectors/odoo.md"),
    ),
    (
        "tryton",
        "docs/connectors/tryton.md",
        include_str!("../../../docs/connectors/tryton.md"),
    ),
];

/// Kinds whose config has an `oauth` sign-in table the guide documents.
const OAUTH_KINDS: &[&str] = &["gmail", "outlook", "quickbooks", "xero"];

/// The first backticked name of the first cell of each body row of the
/// first table after the line containing `marker` (a heading such as
/// "Every key", or "The `oauth` table").
fn table_keys(doc: &str, marker: &str) -> Option<Vec<String>> {
    let mut lines = doc.lines().skip_while(|l| !l.contains(marker));
    lines.next()?;
    let mut keys = Vec::new();
    let mut started = false;
    let mut in_body = false;
    for line in lines {
        if !line.starts_with('|') {
            if started {
                break;
            }
            // another heading before any table: no table for this marker
            if line.starts_with('#') {
                return None;
            }
            continue;
        }
        started = true;
        let first = line.split('|').nth(1).unwrap_or_default().trim();
        if first.starts_with('-') {
            in_body = true;
            continue;
        }
        if in_body {
            if let Some(key) = first.split('`').nth(1) {
                keys.push(key.to_string());
            }
        }
    }
    started.then_some(keys)
}

/// The keys of a connector's `oauth` table, from serde's refusal of an
/// unknown key in it.
fn oauth_keys(kind: &str) -> Result<Vec<String>, String> {
    let cfg = ConnectionConfig {
        name: "probe".into(),
        kind: kind.into(),
        direction: Direction::Pull,
        objects: Vec::new(),
        region: None,
        config: json!({"oauth": { PROBE: 1 }}),
    };
    match registry::build_with(0, &cfg, &synchub_http::Deps::new("probe", ".")) {
        Ok(_) => Err(format!("{kind}: the oauth table accepted `{PROBE}`")),
        Err(e) => expected_names(&format!("{e:#}"), "field").map_err(|m| format!("{kind}: {m}")),
    }
}

/// Both directions of a key comparison, as problem lines.
fn compare(documented: &[String], code: &[String], path: &str, table: &str) -> Vec<String> {
    let doc: BTreeSet<&String> = documented.iter().collect();
    let code_set: BTreeSet<&String> = code.iter().collect();
    let mut problems: Vec<String> = doc
        .difference(&code_set)
        .map(|k| format!("{path}: `{k}` in the {table} is not a key the code accepts"))
        .collect();
    problems.extend(
        code_set
            .difference(&doc)
            .map(|k| format!("{path}: key `{k}` is missing from the {table}")),
    );
    problems
}

#[test]
fn docs_guides_every_connector_kind_has_a_guide() {
    let problems: Vec<String> = registry::kinds()
        .into_iter()
        .filter(|kind| !GUIDES.iter().any(|(k, _, _)| k == kind))
        .map(|kind| {
            format!(
                "connector `{kind}` has no guide: write docs/connectors/{kind}.md and add it to \
                 GUIDES in pipelines/synchub/src/docs_guides.rs"
            )
        })
        .collect();
    report(problems);
}

#[test]
fn docs_guides_every_key_a_guide_lists_exists_and_none_is_missing() {
    let mut problems = Vec::new();
    for (kind, path, doc) in GUIDES {
        let Some(documented) = table_keys(doc, "Every key") else {
            problems.push(format!("{path}: no table under an `Every key` heading"));
            continue;
        };
        match connector_keys(kind) {
            Ok(code) => problems.extend(compare(&documented, &code, path, "`Every key` table")),
            Err(e) => problems.push(e),
        }
        if OAUTH_KINDS.contains(kind) {
            let Some(documented) = table_keys(doc, "The `oauth` table") else {
                problems.push(format!("{path}: no table after \"The `oauth` table\""));
                continue;
            };
            match oauth_keys(kind) {
                Ok(code) => problems.extend(compare(&documented, &code, path, "`oauth` table")),
                Err(e) => problems.push(e),
            }
        }
    }
    report(problems);
}

#[test]
fn docs_guides_shop_topics_are_the_ones_registered() {
    let shops = [
        ("shopify", crate::webhook_register::SHOPIFY_TOPICS),
        ("woocommerce", crate::webhook_register::WOO_TOPICS),
    ];
    let mut problems = Vec::new();
    for (kind, registered) in shops {
        let Some((_, path, doc)) = GUIDES.iter().find(|(k, _, _)| *k == kind) else {
            problems.push(format!("no {kind} guide"));
            continue;
        };
        let documented: Vec<String> = documented_topics(doc);
        let code: Vec<String> = registered.iter().map(|(t, _)| t.to_string()).collect();
        problems.extend(compare(
            &documented,
            &code,
            path,
            "webhook topic table (src/webhook_register.rs registers these)",
        ));
    }
    report(problems);
}

#[test]
fn docs_guides_shopify_scopes_are_the_ones_checked() {
    let Some((_, path, doc)) = GUIDES.iter().find(|(k, _, _)| *k == "shopify") else {
        panic!("no shopify guide");
    };
    // every scope-looking name anywhere in the guide
    let named: BTreeSet<String> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| {
            (t.starts_with("read_") || t.starts_with("write_"))
                && t.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_string)
        .collect();
    let table = table_keys(doc, "### Access scopes").unwrap_or_default();
    let known: Vec<String> = crate::scopes::SHOPIFY_SCOPES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut problems = compare(&table, &known, path, "access-scope table");
    problems.extend(
        named
            .iter()
            .filter(|n| !known.contains(n))
            .map(|n| format!("{path}: scope `{n}` is named but `synchub check` does not know it")),
    );
    report(problems);
}

#[test]
fn docs_guides_examples_are_valid_pipelines() {
    let mut problems = Vec::new();
    let mut seen = 0;
    for (kind, path, doc) in GUIDES {
        let blocks = toml_blocks(doc);
        let examples: Vec<(usize, &String)> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.contains("[[connections]]"))
            .collect();
        if examples.is_empty() {
            problems.push(format!(
                "{path}: no pipeline example (a ```toml block with [[connections]])"
            ));
        }
        for (n, block) in examples {
            if !block.contains(&format!("kind = \"{kind}\"")) {
                problems.push(format!(
                    "{path}: toml block {} is not a `{kind}` connection",
                    n + 1
                ));
            }
            seen += 1;
            problems.extend(example_problems(path, n, block));
        }
    }
    assert!(seen >= GUIDES.len(), "only {seen} examples read");
    report(problems);
}

#[test]
fn docs_guides_readers_can_say_no() {
    let doc = "## Every key\n\n| Key | Default |\n|---|---|\n| `a` | x |\n| `b` (`c`) | y |\n\n\
               The `oauth` table:\n\n| Key |\n|---|\n| `d` |\n## Next\n| `e` |\n";
    assert_eq!(
        table_keys(doc, "Every key"),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(
        table_keys(doc, "The `oauth` table"),
        Some(vec!["d".to_string()])
    );
    assert_eq!(table_keys(doc, "Nowhere"), None);
    let problems = compare(
        &["a".into(), "x".into()],
        &["a".into(), "y".into()],
        "f",
        "t",
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    // the probes read the real types
    let gmail = oauth_keys("gmail").unwrap_or_default();
    assert!(gmail.contains(&"redirect_uri".to_string()), "{gmail:?}");
    assert!(oauth_keys("shopify").is_err());
}
