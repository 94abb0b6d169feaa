//! The connector registry: one explicit line per connector kind.

use std::sync::Arc;

use anyhow::{anyhow, bail};
use synchub_core::{Connector, ObjectKind, RemoteRecord, WebhookAction};
use synchub_engine::config::ConnectionConfig;
use synchub_http::{BodyCheck, Deps, DynFactory, Factory, WebhookSource};

/// Connectors built on the typed contract
/// ([`synchub_http::ConnectorFactory`]): one line per kind.
pub fn factories() -> Vec<&'static dyn DynFactory> {
    static SHOPIFY: Factory<synchub_shopify::ShopifyFactory> = Factory::new();
    static WOOCOMMERCE: Factory<synchub_woocommerce::WooFactory> = Factory::new();
    static QUICKBOOKS: Factory<synchub_quickbooks::QuickBooksFactory> = Factory::new();
    static XERO: Factory<synchub_xero::XeroFactory> = Factory::new();
    static IMAP: Factory<synchub_imap::ImapFactory> = Factory::new();
    static GMAIL: Factory<synchub_gmail::GmailFactory> = Factory::new();
    static OUTLOOK: Factory<synchub_outlook::OutlookFactory> = Factory::new();
    static ODOO: Factory<synchub_odoo::OdooFactory> = Factory::new();
    static TRYTON: Factory<synchub_tryton::TrytonFactory> = Factory::new();
    static ERPNEXT: Factory<synchub_erpnext::ErpNextFactory> = Factory::new();
    // One line per connector on the typed contract.
    vec![
        &synchub_csv::CsvKind,
        &SHOPIFY,
        &WOOCOMMERCE,
        &QUICKBOOKS,
        &XERO,
        &IMAP,
        &GMAIL,
        &OUTLOOK,
        &ODOO,
        &TRYTON,
        &ERPNEXT,
    ]
}

/// Connector kinds this build knows.
pub fn kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = factories().iter().map(|f| f.kind()).collect();
    kinds.sort_unstable();
    kinds
}

/// Builds one `[[connections]]` entry with the command's dependencies
/// (the token vault of an opened store, the shutdown token).
pub fn build_with(
    index: usize,
    cfg: &ConnectionConfig,
    deps: &Deps,
) -> anyhow::Result<Arc<dyn Connector>> {
    let key = format!("connections[{index}].config");
    if let Some(f) = factories().into_iter().find(|f| f.kind() == cfg.kind) {
        let built = f.build(&key, &cfg.config, deps).map_err(|e| {
            anyhow!(
                "{}",
                e.to_string().trim_start_matches("bad configuration: ")
            )
        })?;
        return Ok(built.connector);
    }
    let kinds = kinds();
    let hint = synchub_engine::config::did_you_mean(&cfg.kind, &kinds)
        .map(|k| format!("did you mean `{k}`? "))
        .unwrap_or_default();
    bail!(
        "key `connections[{index}].kind`: unknown connector `{}`; {hint}this build has: {}",
        cfg.kind,
        kinds.join(", ")
    )
}

/// Verifies and classifies the webhooks of one connection.
pub enum WebhookHandler {
    /// A connector on the typed contract, with the daemon's replay guard.
    Source {
        source: Arc<dyn WebhookSource>,
        guard: Arc<dyn synchub_http::webhook::ReplayGuard>,
    },
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
    if let Some(f) = factories().into_iter().find(|f| f.kind() == cfg.kind) {
        let built = f
            .build(&key, &cfg.config, &Deps::new(&cfg.name, "."))
            .map_err(|e| {
                anyhow!(
                    "{}",
                    e.to_string().trim_start_matches("bad configuration: ")
                )
            })?;
        return Ok(built.webhooks.map(|source| WebhookHandler::Source {
            source,
            guard: Arc::new(synchub_http::webhook::MemoryReplayGuard::new(
                std::time::Duration::from_secs(86_400),
                100_000,
            )),
        }));
    }
    Ok(None)
}

/// A delivery whose headers passed and whose body is verified as it
/// arrives: feed every chunk to [`update`](Self::update), then
/// [`finish`](Self::finish) with the whole body.
pub enum Verifier {
    /// Signed: one HMAC per candidate secret, fed as the body streams.
    Signed(synchub_http::webhook::PendingDelivery),
    /// Unsigned but allowed when short and recognised (a typed source's
    /// activation ping).
    Unsigned {
        max: usize,
        accept: fn(&[u8]) -> bool,
    },
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
            Verifier::Unsigned { max, .. } => Some(*max),
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
            Verifier::Unsigned { accept, .. } if accept(body) => Ok(Verified {
                delivery: None,
                content_id: w::content_id(body),
            }),
            Verifier::Unsigned { .. } => Err("the delivery is not signed".to_string()),
        }
    }
}

impl WebhookHandler {
    /// A subscription handshake to answer before anything else (Graph's
    /// `validationToken`); `None` for ordinary deliveries.
    pub fn handshake(
        &self,
        raw_query: Option<&str>,
        headers: &axum::http::HeaderMap,
    ) -> Option<synchub_http::Handshake> {
        let WebhookHandler::Source { source, .. } = self;
        source.handshake(raw_query, headers)
    }

    /// Looks at the headers only: a delivery without a signature header
    /// (or to a connection without a secret) is refused before its body is
    /// read; the error says why.
    pub fn begin(&self, headers: &axum::http::HeaderMap) -> Result<Verifier, String> {
        match self {
            WebhookHandler::Source { source, .. } => match source.begin(headers) {
                Ok(BodyCheck::Signed(p)) => Ok(Verifier::Signed(p)),
                Ok(BodyCheck::Unsigned { max, accept }) => Ok(Verifier::Unsigned { max, accept }),
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
        // An unsigned delivery the source let through (WooCommerce's
        // activation ping, a Graph notification carrying its clientState)
        // is classified by the source too, under its body hash.
        let delivery =
            verified
                .delivery
                .clone()
                .unwrap_or_else(|| synchub_http::webhook::Delivery {
                    id: verified.content_id.clone(),
                });
        match self {
            WebhookHandler::Source { source, guard } => {
                let v = synchub_http::webhook::VerifiedDelivery {
                    delivery,
                    content_id: verified.content_id.clone(),
                };
                match source
                    .classify(&v, headers, body, guard.as_ref())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    WebhookAction::Sync { object, deleted } => {
                        Ok(Delivery::Sync { object, deleted })
                    }
                    WebhookAction::Nothing(why) => Ok(Delivery::Nothing(why)),
                }
            }
        }
    }
}
