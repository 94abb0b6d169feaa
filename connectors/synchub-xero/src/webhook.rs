//! Xero webhooks: `x-xero-signature` = base64(HMAC-SHA256(webhook key,
//! raw body)), verified as the body streams in. The "intent to receive"
//! deliveries carry an empty `events` list, some signed correctly and some
//! not: a verified one is answered 200 (a ping), a forged one is refused
//! (401) before its body is read further, which is what activates the
//! subscription. Events are hints: they ask for an incremental run.
//! <https://developer.xero.com/documentation/guides/webhooks/overview>

use reqwest::header::HeaderMap;
use serde_json::Value;
use synchub_core::{ObjectKind, WebhookAction};
use synchub_http::webhook::{HmacSignature, ReplayGuard, VerifiedDelivery, WebhookError};
use synchub_http::{BodyCheck, SecretString, WebhookSource};

/// How Xero signs: `base64(HMAC-SHA256(webhook key, raw body))` in
/// `x-xero-signature`. Xero sends no delivery id: a delivery is known by
/// its body's hash.
pub const SIGNATURE: HmacSignature = HmacSignature::base64("x-xero-signature", None);

/// Signs a body as Xero does (sandbox and tests).
pub fn sign(key: &str, body: &[u8]) -> String {
    SIGNATURE.sign(key.as_bytes(), body)
}

/// The webhook side of one Xero tenant.
#[derive(Debug)]
pub struct XeroWebhooks {
    tenant: String,
    key: SecretString,
}

impl XeroWebhooks {
    /// Deliveries for `tenant`, verified with the app's webhook key.
    pub fn new(tenant: String, key: SecretString) -> Self {
        XeroWebhooks { tenant, key }
    }
}

#[async_trait::async_trait]
impl WebhookSource for XeroWebhooks {
    fn begin(&self, headers: &HeaderMap) -> Result<BodyCheck, WebhookError> {
        SIGNATURE
            .begin(headers, std::slice::from_ref(&self.key))
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
            .map_err(|e| WebhookError::Malformed(format!("xero webhook is not JSON: {e}")))?;
        let events = v
            .get("events")
            .and_then(Value::as_array)
            .ok_or_else(|| WebhookError::Malformed("xero webhook has no events list".into()))?;
        if events.is_empty() {
            // Intent to receive: verified, nothing to do.
            return Ok(WebhookAction::Nothing("ping"));
        }
        if !guard.first_seen(&delivery.delivery.id).await {
            return Ok(WebhookAction::Nothing("duplicate"));
        }
        let ours: Vec<&str> = events
            .iter()
            .filter(|e| e.get("tenantId").and_then(Value::as_str) == Some(self.tenant.as_str()))
            .filter_map(|e| e.get("eventCategory").and_then(Value::as_str))
            .collect();
        Ok(if ours.contains(&"INVOICE") {
            WebhookAction::Sync {
                object: ObjectKind::Invoice,
                deleted: None,
            }
        } else if ours.contains(&"CONTACT") {
            WebhookAction::Sync {
                object: ObjectKind::Contact,
                deleted: None,
            }
        } else {
            WebhookAction::Nothing("ignored")
        })
    }
}
