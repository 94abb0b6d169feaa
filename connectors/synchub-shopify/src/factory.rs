//! Shopify on the typed connector contract: [`ShopifyFactory`] builds a
//! connection from its checked `config` table and the command's
//! [`Deps`]; [`ShopifyWebhooks`] is its webhook side
//! ([`WebhookSource`]): the signature header is required before the body is
//! read, the body is verified as it streams, repeats are dropped by
//! `X-Shopify-Webhook-Id`, and the topic names the stream to sync.

use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;
use secrecy::SecretString;
use synchub_core::{ConnectorError, WebhookAction};
use synchub_http::connect::{BodyCheck, Built, ConnectorFactory, Deps, WebhookSource};
use synchub_http::webhook::{ReplayGuard, VerifiedDelivery, WebhookError as VerifyError};

use crate::config::ShopifyConfig;
use crate::connector::ShopifyConnector;
use crate::webhook;

/// The `shopify` connector kind.
pub struct ShopifyFactory;

impl ConnectorFactory for ShopifyFactory {
    const KIND: &'static str = ShopifyConnector::KIND;
    type Config = ShopifyConfig;

    fn build(config: ShopifyConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let webhooks = ShopifyWebhooks {
            secrets: config.webhook_secrets.clone(),
        };
        let connector = ShopifyConnector::new(config)
            .map_err(ConnectorError::from)?
            .named(&deps.connection);
        Ok(Built {
            connector: Arc::new(connector),
            webhooks: Some(Arc::new(webhooks)),
        })
    }
}

/// The webhook side of a Shopify connection: the app's client secrets.
pub struct ShopifyWebhooks {
    secrets: Vec<SecretString>,
}

impl ShopifyWebhooks {
    /// Verifies deliveries signed with any of `secrets` (more than one
    /// while a secret is being rotated).
    pub fn new(secrets: Vec<SecretString>) -> Self {
        ShopifyWebhooks { secrets }
    }
}

#[async_trait]
impl WebhookSource for ShopifyWebhooks {
    fn begin(&self, headers: &HeaderMap) -> Result<BodyCheck, VerifyError> {
        Ok(BodyCheck::Signed(webhook::begin(&self.secrets, headers)?))
    }

    async fn classify(
        &self,
        delivery: &VerifiedDelivery,
        headers: &HeaderMap,
        body: &[u8],
        guard: &dyn ReplayGuard,
    ) -> Result<WebhookAction, VerifyError> {
        webhook::classify(&delivery.delivery, headers, body, guard).await
    }
}
