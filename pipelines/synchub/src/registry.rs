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

/// A delivery whose headers passed and whose body is verified as it
/// arrives: feed every chunk to [`update`](Self::update), then
/// [`finish`](Self::finish) with the whole body.
pub enum Verifier {
    /// Signed: one HMAC per candidate secret, fed as the body streams.
    Signed(synchub_http::webhook::PendingDelivery),
    /// Unsigned, short enough to be WooCommerce's activation ping.
    WooPing,
}

/// A delivery whose body matched its signature (or is the unsigned ping).
pub struct Verified {
    /// `None` for the ping.
    delivery: Option<synchub_http::webhook::Delivery>,
    content_id: String,
}

impl Verified {
    /// The id the delivery is de-duplicated by: the provider's delivery
    /// header, or the body hash without one.
    pub fn delivery_id(&self) -> &str {
        self.delivery
            .as_ref()
            .map_or(self.content_id.as_str(), |d| d.id.as_str())
    }

    /// The SHA-256 of the body, in hex.
    pub fn content_id(&self) -> &str {
        &self.content_id
    }
}

impl Verifier {
    /// The most body bytes worth reading, when less than any body's limit.
    pub fn limit(&self) -> Option<usize> {
        match self {
            Verifier::Signed(_) => None,
            Verifier::WooPing => Some(synchub_http::webhook::WOO_PING_MAX),
        }
    }

    /// Feeds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        if let Verifier::Signed(p) = self {
            p.update(chunk);
        }
    }

    /// Compares once `body` (every chunk fed, in order) is complete.
    pub fn finish(self, body: &[u8]) -> Result<Verified, String> {
        use synchub_http::webhook as w;
        match self {
            Verifier::Signed(p) => {
                let v = p.finish().map_err(|e| e.to_string())?;
                Ok(Verified {
                    delivery: Some(v.delivery),
                    content_id: v.content_id,
                })
            }
            Verifier::WooPing if w::is_woocommerce_ping(body) => Ok(Verified {
                delivery: None,
                content_id: w::content_id(body),
            }),
            Verifier::WooPing => Err(w::WebhookError::MissingHeader(w::WOO_SIGNATURE).to_string()),
        }
    }
}

impl WebhookHandler {
    /// Looks at the headers only: a delivery without a signature header
    /// (or to a connection without a secret) is refused before its body is
    /// read; the error says why.
    pub fn begin(&self, headers: &axum::http::HeaderMap) -> Result<Verifier, String> {
        match self {
            WebhookHandler::Shopify(c) => c
                .begin_webhook(headers)
                .map(Verifier::Signed)
                .map_err(|e| e.to_string()),
            WebhookHandler::Woo(c) => match c.begin_webhook(headers) {
                Ok(synchub_http::webhook::WooPending::Signed(p)) => Ok(Verifier::Signed(p)),
                Ok(synchub_http::webhook::WooPending::MaybePing) => Ok(Verifier::WooPing),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// De-duplicates and classifies a delivery whose body [`begin`](Self::begin)'s
    /// verifier checked; the error says why it was refused.
    pub async fn classify(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        verified: &Verified,
    ) -> Result<Delivery, String> {
        let Some(delivery) = &verified.delivery else {
            return Ok(Delivery::Nothing("ping"));
        };
        match self {
            WebhookHandler::Shopify(c) => {
                use synchub_shopify::WebhookOutcome as O;
                match c
                    .classify_webhook(delivery, headers, body)
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
                    .classify_webhook(delivery, headers, body)
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
