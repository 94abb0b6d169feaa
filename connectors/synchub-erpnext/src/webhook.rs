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
use synchub_http::webhook::{PendingDelivery, ReplayGuard, VerifiedDelivery, WebhookError};
use synchub_http::{BodyCheck, SecretString, WebhookSource};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-frappe-webhook-signature";

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
        let sig = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookError::MissingHeader(SIGNATURE_HEADER))?;
        // No delivery id header exists: the id is the body's hash.
        Ok(BodyCheck::Signed(PendingDelivery::new(
            headers,
            sig,
            "x-frappe-delivery-id",
            std::slice::from_ref(&self.secret),
        )))
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
