//! QuickBooks webhooks: `intuit-signature` = base64(HMAC-SHA256(verifier
//! token, raw body)), verified as the body streams in; both the legacy
//! `eventNotifications` payload and the CloudEvents array are read. They
//! are hints: a verified delivery asks for an incremental (CDC) run.
//! <https://developer.intuit.com/app/developer/qbo/docs/develop/webhooks>

use reqwest::header::HeaderMap;
use serde_json::Value;
use synchub_core::{ObjectKind, WebhookAction};
use synchub_http::webhook::{HmacSignature, ReplayGuard, VerifiedDelivery, WebhookError};
use synchub_http::{BodyCheck, SecretString, WebhookSource};

/// How Intuit signs: `base64(HMAC-SHA256(verifier token, raw body))` in
/// `intuit-signature`. Intuit sends no delivery id: a delivery is known by
/// its body's hash.
pub const SIGNATURE: HmacSignature = HmacSignature::base64("intuit-signature", None);

/// The webhook side of one QuickBooks connection.
#[derive(Debug)]
pub struct QuickBooksWebhooks {
    realm: String,
    verifier: SecretString,
}

/// Signs `body` as Intuit does (for the sandbox and tests).
pub fn sign(verifier_token: &str, body: &[u8]) -> String {
    SIGNATURE.sign(verifier_token.as_bytes(), body)
}

/// The entities a payload names for `realm`, as (entity, operation).
pub fn entities(body: &[u8], realm: &str) -> Result<Vec<(String, String)>, WebhookError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("quickbooks webhook is not JSON: {e}")))?;
    let mut out = Vec::new();
    if let Some(events) = v.as_array() {
        // CloudEvents: type `qbo.{entity}.{operation}.v1`.
        for e in events {
            if e.get("intuitaccountid").and_then(Value::as_str) != Some(realm) {
                continue;
            }
            let ty = e.get("type").and_then(Value::as_str).unwrap_or_default();
            let mut parts = ty.split('.');
            if let (Some("qbo"), Some(entity), Some(op)) =
                (parts.next(), parts.next(), parts.next())
            {
                out.push((entity.to_ascii_lowercase(), op.to_ascii_lowercase()));
            }
        }
        return Ok(out);
    }
    let notes = v
        .get("eventNotifications")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            WebhookError::Malformed(
                "quickbooks webhook has neither eventNotifications nor CloudEvents".into(),
            )
        })?;
    for n in notes {
        if n.get("realmId").and_then(Value::as_str) != Some(realm) {
            continue;
        }
        let list = n
            .get("dataChangeEvent")
            .and_then(|d| d.get("entities"))
            .and_then(Value::as_array);
        for e in list.into_iter().flatten() {
            let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
            let op = e
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push((name.to_ascii_lowercase(), op.to_ascii_lowercase()));
        }
    }
    Ok(out)
}

impl QuickBooksWebhooks {
    /// Webhooks of `realm`, verified with the app's verifier token.
    pub fn new(realm: String, verifier: SecretString) -> Self {
        QuickBooksWebhooks { realm, verifier }
    }
}

#[async_trait::async_trait]
impl WebhookSource for QuickBooksWebhooks {
    fn begin(&self, headers: &HeaderMap) -> Result<BodyCheck, WebhookError> {
        SIGNATURE
            .begin(headers, std::slice::from_ref(&self.verifier))
            .map(BodyCheck::Signed)
    }

    async fn classify(
        &self,
        delivery: &VerifiedDelivery,
        _headers: &HeaderMap,
        body: &[u8],
        guard: &dyn ReplayGuard,
    ) -> Result<WebhookAction, WebhookError> {
        let found = entities(body, &self.realm)?;
        if !guard.first_seen(&delivery.delivery.id).await {
            return Ok(WebhookAction::Nothing("duplicate"));
        }
        // One action per delivery: documents first (payments change
        // invoice balances), else customers. A customer change in the same
        // delivery is read by the next incremental run of its stream.
        let doc = found
            .iter()
            .any(|(e, _)| matches!(e.as_str(), "invoice" | "salesreceipt" | "payment"));
        let customer = found.iter().any(|(e, _)| e == "customer");
        Ok(if doc {
            WebhookAction::Sync {
                object: ObjectKind::Invoice,
                deleted: None,
            }
        } else if customer {
            WebhookAction::Sync {
                object: ObjectKind::Contact,
                deleted: None,
            }
        } else {
            WebhookAction::Nothing("ignored")
        })
    }
}
