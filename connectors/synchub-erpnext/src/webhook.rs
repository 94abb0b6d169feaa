//! Webhooks from Frappe's `Webhook` documents ("Enable Security"):
//! `X-Frappe-Webhook-Signature` = base64(HMAC-SHA256(secret, body)), the
//! body being Python's `json.dumps(data)` of the fields the Webhook
//! selects. Frappe sends no delivery id (and no `Content-Type`), so a
//! repeat is recognised by the body's hash (doctype, name and `modified`
//! make it unique per change).
//! (`frappe/integrations/doctype/webhook/webhook.py`)

use reqwest::header::HeaderMap;
use serde_json::Value;
use synchub_core::{ObjectKind, WebhookAction};
use synchub_http::webhook::{HmacSignature, ReplayGuard, VerifiedDelivery, WebhookError};
use synchub_http::{BodyCheck, SecretString, WebhookSource};

/// How Frappe signs: `base64(HMAC-SHA256(secret, raw body))` in
/// `X-Frappe-Webhook-Signature`; no delivery id header exists, so a
/// delivery is known by its body's hash.
pub const SIGNATURE: HmacSignature = HmacSignature::base64("x-frappe-webhook-signature", None);

/// Signs a body as Frappe does (sandbox and tests).
pub fn sign(secret: &str, body: &[u8]) -> String {
    SIGNATURE.sign(secret.as_bytes(), body)
}

/// The webhook side of one site.
#[derive(Debug)]
pub struct ErpWebhooks {
    secret: SecretString,
}

impl ErpWebhooks {
    /// Deliveries signed with `secret`.
    pub fn new(secret: SecretString) -> Self {
        ErpWebhooks { secret }
    }
}

#[async_trait::async_trait]
impl WebhookSource for ErpWebhooks {
    fn begin(&self, headers: &HeaderMap) -> Result<BodyCheck, WebhookError> {
        SIGNATURE
            .begin(headers, std::slice::from_ref(&self.secret))
            .map(BodyCheck::Signed)
    }

    async fn classify(
        &self,
        delivery: &VerifiedDelivery,
        _headers: &HeaderMap,
        body: &[u8],
        guard: &dyn ReplayGuard,
    ) -> Result<WebhookAction, WebhookError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("frappe webhook is not JSON: {e}")))?;
        if !guard.first_seen(&delivery.delivery.id).await {
            return Ok(WebhookAction::Nothing("duplicate"));
        }
        let object = match v.get("doctype").and_then(Value::as_str) {
            Some("Customer") | Some("Address") => ObjectKind::Company,
            Some("Contact") => ObjectKind::Contact,
            Some("Sales Order") => ObjectKind::Order,
            _ => return Ok(WebhookAction::Nothing("ignored")),
        };
        Ok(WebhookAction::Sync {
            object,
            deleted: None,
        })
    }
}
