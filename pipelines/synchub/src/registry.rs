//! The connector registry: one explicit line per connector kind.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use synchub_core::{Connector, ObjectKind, RemoteRecord};
use synchub_engine::config::ConnectionConfig;

/// Connector kinds this build knows.
pub const KINDS: &[&str] = &["csv", "shopify", "woocommerce"];

/// Builds the connector of one `[[connections]]` entry (no IO).
pub fn build(
    index: usize,
    cfg: &ConnectionConfig,
    base_dir: &Path,
) -> anyhow::Result<Arc<dyn Connector>> {
    let key = format!("connections[{index}].config");
    match cfg.kind.as_str() {
        "csv" => {
            let parsed: synchub_csv::CsvConfig = parse(&key, cfg)?;
            check_csv_map(&key, &parsed)?;
            let source = synchub_csv::CsvSource::build(parsed, Some(base_dir))
                .map_err(|e| anyhow!("key `{key}`: {e}"))?;
            Ok(Arc::new(source))
        }
        "shopify" => Ok(Arc::new(shopify(&key, cfg)?.named(&cfg.name))),
        "woocommerce" => Ok(Arc::new(woocommerce(&key, cfg)?)),
        other => {
            let hint = synchub_engine::config::did_you_mean(other, KINDS)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            bail!(
                "key `connections[{index}].kind`: unknown connector `{other}`; {hint}this build has: {}",
                KINDS.join(", ")
            )
        }
    }
}

/// Every CSV column must map to a field of the model (the CSV connector
/// checks too; this adds the suggestion).
fn check_csv_map(key: &str, cfg: &synchub_csv::CsvConfig) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (column, field) in &cfg.map {
        if synchub_csv::ContactField::parse(field).is_none() {
            let hint = match synchub_engine::config::did_you_mean(field, synchub_csv::FIELDS) {
                Some(f) => format!("did you mean `{f}`?"),
                None => format!("expected one of {}", synchub_csv::FIELDS.join(", ")),
            };
            problems.push(format!(
                "key `{key}.map.\"{column}\"`: unknown field `{field}`; {hint}"
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// The connector-specific settings of a connection, strictly typed.
fn parse<T: serde::de::DeserializeOwned>(key: &str, cfg: &ConnectionConfig) -> anyhow::Result<T> {
    serde_path_to_error::deserialize(cfg.config.clone())
        .map_err(|e| anyhow!("key `{key}.{}`: {}", e.path(), e.inner()))
}

fn shopify(key: &str, cfg: &ConnectionConfig) -> anyhow::Result<synchub_shopify::ShopifyConnector> {
    synchub_shopify::ShopifyConnector::new(parse(key, cfg)?)
        .map_err(|e| anyhow!("key `{key}`: {e}"))
}

fn woocommerce(
    key: &str,
    cfg: &ConnectionConfig,
) -> anyhow::Result<synchub_woocommerce::WooConnector> {
    synchub_woocommerce::WooConnector::new(parse(key, cfg)?)
        .map_err(|e| anyhow!("key `{key}`: {e}"))
}

/// Verifies and classifies the webhooks of one connection.
pub enum WebhookHandler {
    Shopify(synchub_shopify::ShopifyConnector),
    Woo(synchub_woocommerce::WooConnector),
}

/// What a verified delivery asks for.
pub enum Delivery {
    /// Sync this stream; a delete topic carries the deleted record.
    Sync {
        object: ObjectKind,
        deleted: Option<Box<RemoteRecord>>,
    },
    /// Nothing to do: `duplicate`, `ping` or `ignored`.
    Nothing(&'static str),
}

/// The webhook handler of a connection, for kinds that send webhooks.
pub fn webhook_handler(
    index: usize,
    cfg: &ConnectionConfig,
) -> anyhow::Result<Option<WebhookHandler>> {
    let key = format!("connections[{index}].config");
    Ok(match cfg.kind.as_str() {
        "shopify" => Some(WebhookHandler::Shopify(shopify(&key, cfg)?)),
        "woocommerce" => Some(WebhookHandler::Woo(woocommerce(&key, cfg)?)),
        _ => None,
    })
}

impl WebhookHandler {
    /// Verifies (first), de-duplicates and classifies a delivery; the error
    /// says why it was refused.
    pub async fn handle(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Delivery, String> {
        match self {
            WebhookHandler::Shopify(c) => {
                use synchub_shopify::WebhookOutcome as O;
                match c
                    .handle_webhook(headers, body)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    O::Sync {
                        object, deleted, ..
                    } => Ok(Delivery::Sync { object, deleted }),
                    O::Duplicate => Ok(Delivery::Nothing("duplicate")),
                    O::Ignored { .. } => Ok(Delivery::Nothing("ignored")),
                }
            }
            WebhookHandler::Woo(c) => {
                use synchub_woocommerce::WebhookOutcome as O;
                match c
                    .handle_webhook(headers, body)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    O::Sync {
                        object, deleted, ..
                    } => Ok(Delivery::Sync { object, deleted }),
                    O::Duplicate => Ok(Delivery::Nothing("duplicate")),
                    O::Ping => Ok(Delivery::Nothing("ping")),
                    O::Ignored { .. } => Ok(Delivery::Nothing("ignored")),
                }
            }
        }
    }
}
