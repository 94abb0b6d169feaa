//! WooCommerce on the typed connector contract: [`WooFactory`] builds a
//! connection from its checked `config` table and the command's [`Deps`];
//! [`WooWebhooks`] is its webhook side ([`WebhookSource`]): a signed
//! delivery is verified as its body streams, an unsigned one is read only
//! as far as the activation ping (`webhook_id=N`) can be long, repeats are
//! dropped by `X-WC-Webhook-Delivery-ID`, and the topic names the stream.

use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;
use secrecy::SecretString;
use synchub_core::{ConnectorError, WebhookAction};
use synchub_http::connect::{BodyCheck, Built, ConnectorFactory, Deps, WebhookSource};
use synchub_http::webhook::{ReplayGuard, VerifiedDelivery, WebhookError as VerifyError};

use crate::config::WooConfig;
use crate::connector::WooConnector;
use crate::webhook::{self, Begun};

/// The `woocommerce` connector kind.
pub struct WooFactory;

impl ConnectorFactory for WooFactory {
    const KIND: &'static str = "woocommerce";
    type Config = WooConfig;

    fn build(config: WooConfig, _deps: &Deps) -> Result<Built, ConnectorError> {
        let webhooks = WooWebhooks {
            secret: config.webhook_secret.clone(),
        };
        let connector = WooConnector::new(config).map_err(ConnectorError::from)?;
        Ok(Built {
            connector: Arc::new(connector),
            webhooks: Some(Arc::new(webhooks)),
        })
    }
}

/// The webhook side of a WooCommerce connection: the webhooks' secret.
pub struct WooWebhooks {
    secret: Option<SecretString>,
}

impl WooWebhooks {
    /// Verifies deliveries signed with `secret` (`None` refuses every one).
    pub fn new(secret: Option<SecretString>) -> Self {
        WooWebhooks { secret }
    }
}

#[async_trait]
impl WebhookSource for WooWebhooks {
    fn begin(&self, headers: &HeaderMap) -> Result<BodyCheck, VerifyError> {
        Ok(match webhook::begin(self.secret.as_ref(), headers)? {
            Begun::Signed(p) => BodyCheck::Signed(p),
            Begun::MaybePing => BodyCheck::Unsigned {
                max: webhook::PING_MAX,
                accept: webhook::is_ping,
            },
        })
    }

    async fn classify(
        &self,
        delivery: &VerifiedDelivery,
        headers: &HeaderMap,
        body: &[u8],
        guard: &dyn ReplayGuard,
    ) -> Result<WebhookAction, VerifyError> {
        // The unsigned activation ping, let through by `begin`.
        if headers.get(webhook::SIGNATURE_HEADER).is_none() && webhook::is_ping(body) {
            return Ok(WebhookAction::Nothing("ping"));
        }
        webhook::classify(&delivery.delivery, headers, body, guard).await
    }
}
