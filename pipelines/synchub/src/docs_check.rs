//! The documentation cannot drift from the code. These tests fail, naming
//! the file, the section and the key, when:
//!
//! * a key of a pipeline type (`PipelineConfig`, `ConnectionConfig`,
//!   `MergeConfig`, `ScheduleConfig`, `QuotaConfig`) or a value of its enums
//!   (directions, object kinds, merge and delete policies), or a CRM model
//!   field a `[merge]` rule can name, is missing from its section of
//!   `docs/config.md`;
//! * a default the reference states (merge, shopify, woocommerce) is not
//!   the one the code applies;
//! * a connector kind this build registers has no ``## Connector `kind` ``
//!   section there, or a key of its `config` table is missing from it;
//! * a webhook topic the Shopify or WooCommerce guide lists is not one the
//!   connector's classifier syncs;
//! * a GraphQL operation the Shopify connector sends is not named in the
//!   guide's access-scope section (or one named there is never sent);
//! * a pipeline example in the docs does not load as `synchub run` loads it;
//! * the table of the one mapping vocabulary names a field or alias that
//!   the csv map or a `migrate` mapping file refuses, or misses one the csv
//!   crate declares.
//!
//! The keys are read from the types themselves, without a new derive: each
//! config type refuses unknown keys (`#[serde(deny_unknown_fields)]`), and
//! serde's refusal lists every key it knows ("unknown field `__probe__`,
//! expected one of `a`, `b`, …"). Enum values are read the same way from
//! "unknown variant" errors, connector keys through the registry.
//!
//! Run alone: `cargo nextest run -p synchub -E 'test(docs_check)'`.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use synchub_core::merge::FieldPolicy;
use synchub_core::ObjectKind;
use synchub_engine::config::{
    ConnectionConfig, DeletePolicy, Direction, MergeConfig, PipelineConfig, ScheduleConfig,
};

use crate::registry;

const CONFIG_MD: &str = include_str!("../../../docs/config.md");
const CONFIG_MD_PATH: &str = "docs/config.md";
const SHOPIFY_MD: &str = include_str!("../../../docs/connectors/shopify.md");
const SHOPIFY_MD_PATH: &str = "docs/connectors/shopify.md";
const SHOPIFY_WEBHOOK_RS: &str = include_str!("../../../connectors/synchub-shopify/src/webhook.rs");
const SHOPIFY_WEBHOOK_RS_PATH: &str = "connectors/synchub-shopify/src/webhook.rs";
const SHOPIFY_QUERIES_RS: &str = include_str!("../../../connectors/synchub-shopify/src/queries.rs");
const SHOPIFY_QUERIES_RS_PATH: &str = "connectors/synchub-shopify/src/queries.rs";
const WOO_MD: &str = include_str!("../../../docs/connectors/woocommerce.md");
const WOO_MD_PATH: &str = "docs/connectors/woocommerce.md";
const CSV_MD: &str = include_str!("../../../docs/connectors/csv.md");

pub(crate) const PROBE: &str = "__probe__";

/// The names serde lists after "expected" in an unknown-field or
/// unknown-variant error: "one of `a`, `b`", "`a` or `b`", "`a`".
pub(crate) fn expected_names(message: &str, what: &str) -> Result<Vec<String>, String> {
    let marker = format!("unknown {what} `{PROBE}`");
    let Some(at) = message.find(&marker) else {
        return Err(format!(
            "the error does not refuse `{PROBE}` as an unknown {what} (is \
             `#[serde(deny_unknown_fields)]` missing?): {message}"
        ));
    };
    let rest = &message[at + marker.len()..];
    if rest.contains("there are no fields") || rest.contains("there are no variants") {
        return Ok(Vec::new());
    }
    let Some(exp) = rest.find("expected") else {
        return Err(format!("no `expected` list in: {message}"));
    };
    let list = &rest[exp..];
    // stop at the end of serde's sentence (serde_path_to_error and anyhow
    // may append context after it)
    let list = list.split(" at line ").next().unwrap_or(list);
    let names: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(format!("an empty `expected` list in: {message}"));
    }
    Ok(names)
}

/// The keys of a struct that refuses unknown keys.
fn struct_keys<T: DeserializeOwned>(type_name: &str) -> Vec<String> {
    let err = match serde_json::from_value::<T>(json!({ PROBE: 1 })) {
        Ok(_) => panic!("{type_name} accepted the unknown key `{PROBE}`"),
        Err(e) => e.to_string(),
    };
    expected_names(&err, "field").unwrap_or_else(|e| panic!("{type_name}: {e}"))
}

/// The values of a unit-variant enum written as a string.
fn enum_values<T: DeserializeOwned>(type_name: &str) -> Vec<String> {
    let err = match serde_json::from_value::<T>(Value::String(PROBE.into())) {
        Ok(_) => panic!("{type_name} accepted the value `{PROBE}`"),
        Err(e) => e.to_string(),
    };
    expected_names(&err, "variant").unwrap_or_else(|e| panic!("{type_name}: {e}"))
}

/// The text of the `## ` section whose heading contains `marker`, up to the
/// next `## ` heading; `None` when no heading has it.
pub(crate) fn section<'a>(doc: &'a str, marker: &str) -> Option<&'a str> {
    let mut start = None;
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        let is_heading = line.starts_with("## ");
        match start {
            None if is_heading && line.contains(marker) => start = Some(offset),
            Some(s) if is_heading => return Some(&doc[s..offset]),
            _ => {}
        }
        offset += line.len();
    }
    start.map(|s| &doc[s..])
}

/// Every name of `names` missing from `text` as `` `name` ``, as one
/// problem line each.
pub(crate) fn missing(names: &[String], text: &str, what: &str, file: &str) -> Vec<String> {
    names
        .iter()
        .filter(|n| !text.contains(&format!("`{n}`")))
        .map(|n| format!("{what}: `{n}` is not documented in {file}"))
        .collect()
}

pub(crate) fn report(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} documentation problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The heading marker of a connector kind's section in docs/config.md.
fn kind_marker(kind: &str) -> String {
    format!("Connector `{kind}`")
}

/// The pipeline file's own types: each has a section named after it.
#[test]
fn docs_check_every_pipeline_key_is_documented() {
    let types: [(&str, Vec<String>); 5] = [
        (
            "PipelineConfig",
            struct_keys::<PipelineConfig>("PipelineConfig"),
        ),
        (
            "ConnectionConfig",
            struct_keys::<ConnectionConfig>("ConnectionConfig"),
        ),
        ("MergeConfig", struct_keys::<MergeConfig>("MergeConfig")),
        (
            "ScheduleConfig",
            struct_keys::<ScheduleConfig>("ScheduleConfig"),
        ),
        (
            "QuotaConfig",
            struct_keys::<synchub_http::QuotaConfig>("QuotaConfig"),
        ),
    ];
    let mut problems = Vec::new();
    for (type_name, keys) in &types {
        assert!(!keys.is_empty(), "{type_name}: no keys read");
        let marker = format!("`{type_name}`");
        match section(CONFIG_MD, &marker) {
            None => problems.push(format!(
                "{type_name}: {CONFIG_MD_PATH} has no `## ` section whose heading names {marker}"
            )),
            Some(text) => problems.extend(missing(
                keys,
                text,
                &format!("{type_name} key"),
                &format!("{CONFIG_MD_PATH} (section {marker})"),
            )),
        }
    }
    report(problems);
}

/// The values of the enums a pipeline file names: directions, object
/// kinds, merge policies, delete policies.
#[test]
fn docs_check_every_pipeline_value_is_documented() {
    let enums: [(&str, Vec<String>, &str); 4] = [
        (
            "Direction",
            enum_values::<Direction>("Direction"),
            "`ConnectionConfig`",
        ),
        (
            "ObjectKind",
            enum_values::<ObjectKind>("ObjectKind"),
            "`ConnectionConfig`",
        ),
        (
            "FieldPolicy",
            enum_values::<FieldPolicy>("FieldPolicy"),
            "`MergeConfig`",
        ),
        (
            "DeletePolicy",
            enum_values::<DeletePolicy>("DeletePolicy"),
            "`[deletes]`",
        ),
    ];
    let mut problems = Vec::new();
    for (type_name, values, marker) in &enums {
        assert!(!values.is_empty(), "{type_name}: no values read");
        match section(CONFIG_MD, marker) {
            None => problems.push(format!(
                "{type_name}: {CONFIG_MD_PATH} has no `## ` section whose heading names {marker}"
            )),
            Some(text) => problems.extend(missing(
                values,
                text,
                &format!("{type_name} value"),
                &format!("{CONFIG_MD_PATH} (section {marker})"),
            )),
        }
    }
    // `[deletes]` is keyed by object kind
    if let Some(text) = section(CONFIG_MD, "`[deletes]`") {
        problems.extend(missing(
            &enum_values::<ObjectKind>("ObjectKind"),
            text,
            "[deletes] key",
            &format!("{CONFIG_MD_PATH} (section `[deletes]`)"),
        ));
    }
    // `[merge] fields` names fields of the CRM model: every one is listed
    if let Some(text) = section(CONFIG_MD, "`MergeConfig`") {
        let fields: Vec<String> = synchub_engine::config::model_fields()
            .into_iter()
            .filter(|f| *f != "custom")
            .map(str::to_string)
            .collect();
        assert!(fields.len() > 20, "model fields not read: {fields:?}");
        problems.extend(missing(
            &fields,
            text,
            "CRM model field ([merge] fields)",
            &format!("{CONFIG_MD_PATH} (section `MergeConfig`)"),
        ));
    }
    report(problems);
}

/// The keys of one connector kind's `config` table, read from the error
/// the registry gives for an unknown key.
pub(crate) fn connector_keys(kind: &str) -> Result<Vec<String>, String> {
    let cfg = ConnectionConfig {
        name: "probe".into(),
        kind: kind.into(),
        direction: Direction::Pull,
        objects: Vec::new(),
        region: None,
        config: json!({ PROBE: 1 }),
    };
    match registry::build_with(0, &cfg, &synchub_http::Deps::new("probe", ".")) {
        Ok(_) => Err(format!(
            "connector `{kind}` accepted the unknown config key `{PROBE}`"
        )),
        Err(e) => expected_names(&format!("{e:#}"), "field")
            .map_err(|m| format!("connector `{kind}`: {m}")),
    }
}

#[test]
fn docs_check_every_connector_kind_and_key_is_documented() {
    let kinds = registry::kinds();
    assert!(
        kinds.len() >= 3,
        "the registry lists only {kinds:?}: csv, shopify and woocommerce are expected"
    );
    let mut problems = Vec::new();
    for kind in kinds {
        let marker = kind_marker(kind);
        let Some(text) = section(CONFIG_MD, &marker) else {
            problems.push(format!(
                "connector `{kind}`: {CONFIG_MD_PATH} has no section for it: add a heading \
                 `## {marker}` listing every key of its `config` table"
            ));
            continue;
        };
        match connector_keys(kind) {
            Err(e) => problems.push(e),
            Ok(keys) => problems.extend(missing(
                &keys,
                text,
                &format!("connector `{kind}` config key"),
                &format!("{CONFIG_MD_PATH} (section `## {marker}`)"),
            )),
        }
    }
    report(problems);
}

/// The topics listed in the rows of the table under the `## ` heading that
/// contains "Webhook topics": the backticked names in the first cell of each
/// row below the header.
pub(crate) fn documented_topics(doc: &str) -> Vec<String> {
    let Some(text) = section(doc, "Webhook topics") else {
        return Vec::new();
    };
    let mut topics = Vec::new();
    let mut in_body = false;
    for line in text.lines() {
        if !line.starts_with('|') {
            in_body = false;
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or_default().trim();
        if first.starts_with('-') {
            in_body = true;
            continue;
        }
        if in_body {
            topics.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    topics
}

/// Whether the classifier source routes `topic` to a stream: its resource
/// (`customers` in `customers/update`) is a `Some("…")` match arm, and it
/// does not end with a suffix the arm excludes (`!topic.ends_with("redact")`).
fn classifier_handles(source: &str, topic: &str) -> bool {
    let Some((resource, _)) = topic.split_once('/') else {
        return false;
    };
    if !source.contains(&format!("Some(\"{resource}\")")) {
        return false;
    }
    let excluded: Vec<&str> = source
        .split("!topic.ends_with(\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    !excluded.iter().any(|suffix| topic.ends_with(suffix))
}

#[test]
fn docs_check_shopify_webhook_topics_are_handled() {
    let topics = documented_topics(SHOPIFY_MD);
    assert!(
        topics.len() >= 4,
        "{SHOPIFY_MD_PATH}: the table under `## Webhook topics` lists {topics:?}; \
         the customer and order topics are expected"
    );
    let problems: Vec<String> = topics
        .iter()
        .filter(|t| !classifier_handles(SHOPIFY_WEBHOOK_RS, t))
        .map(|t| {
            format!(
                "{SHOPIFY_MD_PATH}: webhook topic `{t}` is not one the classifier in \
                 {SHOPIFY_WEBHOOK_RS_PATH} syncs"
            )
        })
        .collect();
    report(problems);
}

/// HMAC-SHA256 of `body` under `key`, in base64: how Shopify and
/// WooCommerce sign a delivery (RFC 2104 over `sha2`).
fn signature(key: &[u8], body: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(body)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(outer)
}

const WEBHOOK_SECRET: &str = "docs-check-secret";

/// What the daemon does with a signed delivery of `topic` to a connection
/// of `kind`, through the same registry calls as `POST /webhooks/{name}`
/// (handler, header check, streamed signature check, classification):
/// `Ok(true)` when it syncs a stream, `Ok(false)` when it does nothing.
async fn daemon_syncs(kind: &str, topic: &str, key: &[u8]) -> Result<bool, String> {
    let (config, topic_header, signature_header, id_header) = match kind {
        "shopify" => (
            json!({"shop": "example-tw", "access_token": "shpat_docs",
                   "webhook_secrets": [WEBHOOK_SECRET]}),
            "x-shopify-topic",
            "x-shopify-hmac-sha256",
            "x-shopify-webhook-id",
        ),
        "woocommerce" => (
            json!({"base_url": "https://shop.example.com.tw", "consumer_key": "ck_docs",
                   "consumer_secret": "cs_docs", "webhook_secret": WEBHOOK_SECRET}),
            "x-wc-webhook-topic",
            "x-wc-webhook-signature",
            "x-wc-webhook-delivery-id",
        ),
        other => return Err(format!("no webhook fixture for kind `{other}`")),
    };
    let cfg = ConnectionConfig {
        name: "docs".into(),
        kind: kind.into(),
        direction: Direction::TwoWay,
        objects: Vec::new(),
        region: None,
        config,
    };
    let handler = registry::webhook_handler(0, &cfg)
        .map_err(|e| format!("{kind}: {e:#}"))?
        .ok_or_else(|| format!("{kind}: the registry has no webhook handler"))?;
    let body = br#"{"id": 42}"#;
    let mut headers = axum::http::HeaderMap::new();
    let value = |v: &str| {
        axum::http::HeaderValue::from_str(v).map_err(|e| format!("header value `{v}`: {e}"))
    };
    headers.insert(topic_header, value(topic)?);
    headers.insert(signature_header, value(&signature(key, body))?);
    headers.insert(id_header, value(&format!("docs-{kind}-{topic}"))?);
    let mut verifier = handler.begin(&headers)?;
    verifier.update(body);
    let verified = verifier.finish(body)?;
    match handler.classify(&headers, body, &verified).await? {
        registry::Delivery::Sync { .. } => Ok(true),
        registry::Delivery::Nothing(_) => Ok(false),
    }
}

/// The topic check itself: the source grep agrees with what the daemon
/// does with a delivery (so a grep that matched nothing cannot pass).
#[tokio::test]
async fn docs_check_topic_grep_agrees_with_the_daemon() {
    let topics = [
        "customers/create",
        "customers/update",
        "customers/delete",
        "orders/create",
        "orders/updated",
        "orders/delete",
        "customers/redact",
        "customers/data_request",
        "shop/redact",
        "app/uninstalled",
        "products/update",
    ];
    for topic in topics {
        let synced = daemon_syncs("shopify", topic, WEBHOOK_SECRET.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{topic}: {e}"));
        assert_eq!(
            synced,
            classifier_handles(SHOPIFY_WEBHOOK_RS, topic),
            "{topic}: the daemon says synced = {synced}, the source grep disagrees"
        );
    }
    // and a delivery signed with another secret is refused, so the
    // signature computed here is the one the daemon checks
    let forged = daemon_syncs("shopify", "customers/update", b"another secret").await;
    assert!(forged.is_err(), "a forged delivery was taken: {forged:?}");
    let forged = daemon_syncs("woocommerce", "customer.updated", b"another secret").await;
    assert!(forged.is_err(), "a forged delivery was taken: {forged:?}");
}

/// Every topic the Shopify and WooCommerce guides tell people to subscribe
/// to makes the daemon sync a stream.
#[tokio::test]
async fn docs_check_documented_topics_are_synced_by_the_daemon() {
    let guides = [
        ("shopify", SHOPIFY_MD_PATH, SHOPIFY_MD),
        ("woocommerce", WOO_MD_PATH, WOO_MD),
    ];
    let mut problems = Vec::new();
    for (kind, path, doc) in guides {
        let topics = documented_topics(doc);
        if topics.len() < 4 {
            problems.push(format!(
                "{path}: the table under `## Webhook topics` lists {topics:?}; the customer and \
                 order topics are expected"
            ));
        }
        for topic in topics {
            match daemon_syncs(kind, &topic, WEBHOOK_SECRET.as_bytes()).await {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "{path}: webhook topic `{topic}` is verified but ignored by the daemon \
                     (the {kind} classifier does not sync it)"
                )),
                Err(e) => problems.push(format!("{path}: webhook topic `{topic}`: {e}")),
            }
        }
    }
    report(problems);
}

/// The GraphQL operations a text names: `query Name`, `mutation name`, and
/// bulk export roots `{ customers {`, each after `open` (`"` in Rust source,
/// a backtick in Markdown).
fn graphql_operations(text: &str, open: char) -> Vec<String> {
    let mut ops = Vec::new();
    for keyword in ["query ", "mutation "] {
        let marker = format!("{open}{keyword}");
        for (at, _) in text.match_indices(&marker) {
            let rest = &text[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                ops.push(format!("{keyword}{name}"));
            }
        }
    }
    let marker = format!("{open}{{ ");
    for (at, _) in text.match_indices(&marker) {
        let rest = &text[at + marker.len()..];
        let root: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        if !root.is_empty() && rest[root.len()..].starts_with(" {") {
            ops.push(format!("{{ {root} {{"));
        }
    }
    ops.sort();
    ops.dedup();
    ops
}

/// Every GraphQL operation the connector sends is named in the guide's
/// scope section (so a new one, e.g. on products, makes someone decide its
/// scope), and every operation the guide names exists.
#[test]
fn docs_check_shopify_scopes_cover_every_operation() {
    let sent = graphql_operations(SHOPIFY_QUERIES_RS, '"');
    assert!(
        sent.len() >= 9,
        "{SHOPIFY_QUERIES_RS_PATH}: only {sent:?} read"
    );
    let Some(scopes) = section(SHOPIFY_MD, "Create a custom app") else {
        panic!("{SHOPIFY_MD_PATH}: no `## ` section named \"Create a custom app\"");
    };
    let named = graphql_operations(scopes, '`');
    let mut problems: Vec<String> = sent
        .iter()
        .filter(|op| !named.contains(op))
        .map(|op| {
            format!(
                "{SHOPIFY_MD_PATH}: `{op}` (sent, {SHOPIFY_QUERIES_RS_PATH}) is not in the \
                 access-scope section: say which scope it needs"
            )
        })
        .collect();
    problems.extend(named.iter().filter(|op| !sent.contains(op)).map(|op| {
        format!("{SHOPIFY_MD_PATH}: `{op}` is named but {SHOPIFY_QUERIES_RS_PATH} never sends it")
    }));
    report(problems);
}

/// Whether the csv connector's column map takes `name`.
fn csv_map_takes(name: &str) -> bool {
    synchub_csv::ContactField::parse(name).is_some()
}

/// Whether a `migrate` mapping file takes `name` as the field of a column
/// of some object (contact, company or order).
fn migrate_map_takes(name: &str) -> bool {
    ["contact", "company", "order"].iter().any(|object| {
        let text = format!(
            "[[object]]\nsource = \"x.csv\"\nobject = \"{object}\"\nid = \"Id\"\n\
             [object.columns]\n\"Column\" = {name:?}\n"
        );
        synchub_legacy::Mapping::parse(&text, "docs_check").is_ok()
    })
}

/// The one mapping vocabulary: every name in the canonical and alias
/// columns of the table is taken by both parsers (the csv map and a migrate
/// mapping file), each alias means what its canonical name means, and the
/// table lists every canonical name and alias the csv crate declares.
#[test]
fn docs_check_mapping_vocabulary_is_taken_by_both_parsers() {
    let marker = "One mapping vocabulary";
    let Some(text) = section(CONFIG_MD, marker) else {
        panic!("{CONFIG_MD_PATH}: no `## ` section \"{marker}\"");
    };
    let mut problems = Vec::new();
    let mut canonical_names = Vec::new();
    let mut alias_names = Vec::new();
    let mut in_body = false;
    let is_field = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    };
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| is_field(t))
            .map(str::to_string)
            .collect()
    };
    // the first table of the section: canonical | aliases | model field | notes
    for line in text.lines() {
        if !line.starts_with('|') {
            if in_body {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        if cells.get(1).is_some_and(|c| c.trim().starts_with('-')) {
            in_body = true;
            continue;
        }
        if !in_body || cells.len() < 4 {
            continue;
        }
        let canonical = ticked(cells[1]);
        let aliases = ticked(cells[2]);
        let Some(name) = canonical.first() else {
            problems.push(format!(
                "{CONFIG_MD_PATH}: a vocabulary row names no field: {line}"
            ));
            continue;
        };
        for alias in &aliases {
            if synchub_csv::ContactField::parse(alias) != synchub_csv::ContactField::parse(name) {
                problems.push(format!(
                    "{CONFIG_MD_PATH}: `{alias}` is listed as an alias of `{name}`, but the csv \
                     map reads it as another field"
                ));
            }
        }
        for n in canonical.iter().chain(&aliases) {
            if !csv_map_takes(n) {
                problems.push(format!(
                    "{CONFIG_MD_PATH}: `{n}` is not taken by the csv map \
                     (connectors/synchub-csv/src/map.rs)"
                ));
            }
            if n != "id" && !migrate_map_takes(n) {
                problems.push(format!(
                    "{CONFIG_MD_PATH}: `{n}` is not taken by a migrate mapping file \
                     (connectors/synchub-legacy/src/mapping/field.rs)"
                ));
            }
        }
        canonical_names.push(name.clone());
        alias_names.extend(aliases);
    }
    assert!(
        canonical_names.len() >= 15,
        "only {canonical_names:?} read from the vocabulary table"
    );
    for name in synchub_csv::CANONICAL {
        if !canonical_names.iter().any(|n| n == name) {
            problems.push(format!(
                "{CONFIG_MD_PATH}: canonical field `{name}` is missing from the vocabulary table"
            ));
        }
    }
    for (alias, canonical) in synchub_csv::ALIASES {
        if !alias_names.iter().any(|n| n == alias) {
            problems.push(format!(
                "{CONFIG_MD_PATH}: deprecated alias `{alias}` (of `{canonical}`) is missing \
                 from the vocabulary table"
            ));
        }
    }
    // every name `synchub dedupe --map` documents is in the vocabulary
    for field in synchub_csv::FIELDS {
        if !canonical_names
            .iter()
            .chain(&alias_names)
            .any(|n| n == field)
        {
            problems.push(format!(
                "{CONFIG_MD_PATH}: csv map field `{field}` is missing from the vocabulary table"
            ));
        }
    }
    report(problems);
}

/// The *Default* cell of key `key`'s row in a reference table.
fn default_cell<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let head = format!("| `{key}` |");
    text.lines()
        .find(|l| l.starts_with(&head))
        .and_then(|l| l.split('|').nth(3))
        .map(str::trim)
}

/// The defaults docs/config.md states are the ones the code applies: each
/// config is built from its required keys alone and compared.
#[test]
fn docs_check_stated_defaults_are_the_code_defaults() {
    let shopify = synchub_shopify::ShopifyConfig::new("example-tw", "shpat_docs");
    let woo = synchub_woocommerce::WooConfig::new("https://shop.example.com.tw", "ck", "cs");
    let merge = MergeConfig::default().policy();
    let expected: Vec<(&str, &str, String)> = vec![
        ("`MergeConfig`", "default", "`\"newest\"`".into()),
        (
            "`MergeConfig`",
            "clock_skew_seconds",
            format!("`{}`", merge.clock_skew.num_seconds()),
        ),
        (
            "Connector `shopify`",
            "api_version",
            format!("`{:?}`", shopify.api_version),
        ),
        (
            "Connector `shopify`",
            "line_items_per_order",
            format!("`{}`", shopify.line_items_per_order),
        ),
        (
            "Connector `shopify`",
            "overlap_seconds",
            format!("`{}`", shopify.overlap_seconds),
        ),
        (
            "Connector `shopify`",
            "bulk_backfill",
            format!("`{}`", shopify.bulk_backfill),
        ),
        (
            "Connector `shopify`",
            "customers_page_size",
            format!("({})", shopify.customers_page()),
        ),
        (
            "Connector `shopify`",
            "orders_page_size",
            format!(
                "({} with {} line items)",
                shopify.orders_page(),
                shopify.line_items_per_order
            ),
        ),
        (
            "Connector `woocommerce`",
            "api_version",
            format!("`{:?}`", woo.api_version),
        ),
        (
            "Connector `woocommerce`",
            "per_page",
            format!("`{}`", woo.per_page),
        ),
        (
            "Connector `woocommerce`",
            "overlap_seconds",
            format!("`{}`", woo.overlap_seconds),
        ),
    ];
    assert_eq!(
        merge.default,
        FieldPolicy::Newest,
        "the merge default moved"
    );
    let mut problems = Vec::new();
    for (marker, key, value) in expected {
        let cell = section(CONFIG_MD, marker).and_then(|t| default_cell(t, key));
        match cell {
            Some(cell) if cell.contains(&value) => {}
            Some(cell) => problems.push(format!(
                "{CONFIG_MD_PATH} (section {marker}): `{key}` defaults to {value} in the code, \
                 the table says {cell}"
            )),
            None => problems.push(format!(
                "{CONFIG_MD_PATH} (section {marker}): no table row for `{key}`"
            )),
        }
    }
    report(problems);
}

#[test]
fn docs_check_reads_serde_lists_and_sections() {
    // the three shapes of serde's list
    let one = "unknown field `__probe__`, expected `every_seconds`";
    let two = "unknown field `__probe__`, expected `a` or `b`";
    let many =
        "key `x`: unknown field `__probe__`, expected one of `a`, `b`, `c` at line 1 column 2 `z`";
    assert_eq!(
        expected_names(one, "field"),
        Ok(vec!["every_seconds".into()])
    );
    assert_eq!(
        expected_names(two, "field"),
        Ok(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        expected_names(many, "field"),
        Ok(vec!["a".into(), "b".into(), "c".into()])
    );
    assert!(expected_names("missing field `shop`", "field").is_err());
    // a key documented in another section does not count
    let doc = "## Connector `a`\n`x`\n## Connector `b`\n`y`\n";
    assert_eq!(
        section(doc, "Connector `a`"),
        Some("## Connector `a`\n`x`\n")
    );
    assert_eq!(
        missing(
            &["y".into()],
            section(doc, "Connector `a`").unwrap_or(""),
            "k",
            "f"
        ),
        vec!["k: `y` is not documented in f".to_string()]
    );
    assert!(section(doc, "Connector `c`").is_none());
    // topics: body rows only, first cell only
    let doc = "## Webhook topics\n| Topic (`X-Header`) | Effect |\n|---|---|\n\
               | `a/b` | syncs `c/d` |\n| `e/f` | x |\n\nText `g/h`.\n## Next\n| `i/j` |\n";
    assert_eq!(
        documented_topics(doc),
        vec!["a/b".to_string(), "e/f".to_string()]
    );
    // GraphQL operations, in source and in Markdown
    let src =
        r#"const A: &str = "query Customers($first: Int!) { customers { x } }"; "{ orders { edges"#;
    assert_eq!(
        graphql_operations(src, '"'),
        vec!["query Customers".to_string(), "{ orders {".to_string()]
    );
    assert_eq!(
        graphql_operations("`mutation customerCreate`, `{ customers { … } }`", '`'),
        vec![
            "mutation customerCreate".to_string(),
            "{ customers {".to_string()
        ]
    );
    // the mapping probes can say no
    assert!(csv_map_takes("email") && !csv_map_takes("emial"));
    assert!(migrate_map_takes("emails") && !migrate_map_takes("emial"));
    // the real types are read
    assert!(struct_keys::<ScheduleConfig>("ScheduleConfig").contains(&"every_seconds".into()));
    assert!(enum_values::<DeletePolicy>("DeletePolicy").contains(&"archive".into()));
    let shopify = connector_keys("shopify").unwrap_or_default();
    assert!(shopify.contains(&"bulk_backfill".into()), "{shopify:?}");
}

/// The ```` ```toml ```` blocks of a Markdown file.
pub(crate) fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match current.as_mut() {
            None if line.trim_start().starts_with("```toml") => current = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(current.take());
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// `${NAME}` replaced by a plausible value, as the environment would.
fn fill_env(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        out.push_str(match name {
            n if n.ends_with("_URL") => "https://shop.example.com.tw",
            n if n.ends_with("_SHOP") => "example-tw",
            n if n.ends_with("_REALM_ID") => "9341452725831234",
            n if n.ends_with("_TENANT_ID") => "4a1b2c3d-0000-4000-8000-00000000beef",
            _ => "value-from-the-environment",
        });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Problems of one documented pipeline (or `[[connections]]` fragment):
/// it must load as `synchub run` loads a file.
pub(crate) fn example_problems(file: &str, n: usize, block: &str) -> Vec<String> {
    let text = if block.contains("version =") {
        fill_env(block)
    } else {
        format!("version = 1\nname = \"doc-example\"\n{}", fill_env(block))
    };
    let at = format!("{file}, toml block {}", n + 1);
    // loaded exactly as `synchub run` loads a file: parsed, validated and
    // every connection built (no IO)
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return vec![format!("{at}: cannot make a temporary folder: {e}")],
    };
    let path = dir.path().join("example.toml");
    if let Err(e) = std::fs::write(&path, &text) {
        return vec![format!("{at}: cannot write {}: {e}", path.display())];
    }
    match crate::pipeline::load(&path) {
        Ok(_) => Vec::new(),
        Err(e) => vec![format!("{at}: {e:#}")],
    }
}

/// Every TOML example in the docs is a pipeline this build accepts.
#[test]
fn docs_check_examples_are_valid_pipelines() {
    let files = [
        (CONFIG_MD_PATH, CONFIG_MD),
        (SHOPIFY_MD_PATH, SHOPIFY_MD),
        (WOO_MD_PATH, WOO_MD),
        ("docs/connectors/csv.md", CSV_MD),
    ];
    let mut problems = Vec::new();
    let mut seen = 0;
    for (file, doc) in files {
        for (n, block) in toml_blocks(doc).iter().enumerate() {
            // the `quota` snippet is a table of a connection, not a pipeline
            if !block.contains("[[connections]]") {
                continue;
            }
            seen += 1;
            problems.extend(example_problems(file, n, block));
        }
    }
    assert!(seen >= 4, "only {seen} pipeline examples found in the docs");
    report(problems);
}

#[test]
fn docs_check_example_checker_refuses_a_wrong_example() {
    let wrong = "[[connections]]\nname = \"c\"\nkind = \"csv\"\ndirection = \"push\"\n\
                 [connections.config]\npath = \"a.csv\"\n";
    let problems = example_problems("x.md", 0, wrong);
    assert!(
        problems.iter().any(|p| p.contains("cannot write")),
        "{problems:?}"
    );
    let typo = "[[connections]]\nname = \"c\"\nkind = \"csv\"\ndirection = \"pull\"\n\
                [connections.config]\npath = \"a.csv\"\npage_sise = 3\n";
    let problems = example_problems("x.md", 0, typo);
    assert!(
        problems.iter().any(|p| p.contains("page_sise")),
        "{problems:?}"
    );
    assert_eq!(
        fill_env("a ${WOO_URL}/x ${SHOPIFY_SHOP} ${T}"),
        "a https://shop.example.com.tw/x example-tw value-from-the-environment"
    );
}
