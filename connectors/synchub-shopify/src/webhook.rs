//! Shopify webhooks, on the shared pieces: the signature
//! (`X-Shopify-Hmac-Sha256`, HMAC-SHA256 of the raw body under the app's
//! client secret, any of several during a rotation) is the declared
//! [`SIGNATURE`], checked as the body streams by the runtime's
//! [`PendingDelivery`], in constant time, before
//! anything is parsed; repeats are dropped by `X-Shopify-Webhook-Id`
//! (Shopify retries with the same id) through the shared [`ReplayGuard`];
//! the topic becomes the shared [`WebhookAction`]. Delete topics carry only
//! `{"id": …}` and are turned into a deleted [`RemoteRecord`] directly.
//!
//! <https://shopify.dev/docs/apps/build/webhooks/verify-deliveries>

use secrecy::SecretString;
use serde_json::Value;
use synchub_core::{ObjectKind, RemoteRecord, WebhookAction};
use synchub_http::webhook::{Delivery, HmacSignature, PendingDelivery, ReplayGuard, WebhookError};

/// How Shopify signs: `base64(HMAC-SHA256(secret, raw body))` in
/// `X-Shopify-Hmac-Sha256`; the delivery id, the same on every retry of one
/// delivery, in `X-Shopify-Webhook-Id`.
pub const SIGNATURE: HmacSignature =
    HmacSignature::base64("x-shopify-hmac-sha256", Some("x-shopify-webhook-id"));

/// Signs `body` as Shopify does (the sandbox and tests sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    SIGNATURE.sign(secret, body)
}

/// The topic header, e.g. `customers/update`.
pub const TOPIC_HEADER: &str = "x-shopify-topic";

/// Why a connection without a secret refuses every delivery.
pub const NO_SECRET: &str =
    "no webhook secret configured: set `webhook_secrets` to the app's client secret";

/// Looks at the headers only: refused without a configured secret or
/// without the signature header, before a byte of the body is read.
pub fn begin(
    secrets: &[SecretString],
    headers: &http::HeaderMap,
) -> Result<PendingDelivery, WebhookError> {
    if secrets.is_empty() {
        return Err(WebhookError::Malformed(NO_SECRET.into()));
    }
    SIGNATURE.begin(headers, secrets)
}

/// Verifies, de-duplicates and classifies a delivery whose body is at hand
/// (what the daemon does while the body streams).
pub async fn handle_webhook(
    secrets: &[SecretString],
    headers: &http::HeaderMap,
    body: &[u8],
    guard: &dyn ReplayGuard,
) -> Result<WebhookAction, WebhookError> {
    let mut pending = begin(secrets, headers)?;
    pending.update(body);
    let verified = pending.finish()?;
    classify(&verified.delivery, headers, body, guard).await
}

/// De-duplicates and classifies a verified delivery: `customers/*` syncs
/// contacts, `orders/*` orders, anything else (privacy topics,
/// `app/uninstalled`) is verified and ignored.
pub async fn classify(
    delivery: &Delivery,
    headers: &http::HeaderMap,
    body: &[u8],
    guard: &dyn ReplayGuard,
) -> Result<WebhookAction, WebhookError> {
    let topic = headers
        .get(TOPIC_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(WebhookError::MissingHeader(TOPIC_HEADER))?;
    if !guard.first_seen(&delivery.id).await {
        return Ok(WebhookAction::Nothing("duplicate"));
    }
    let object = match topic.split('/').next() {
        Some("customers") if !topic.ends_with("redact") && !topic.ends_with("data_request") => {
            ObjectKind::Contact
        }
        Some("orders") => ObjectKind::Order,
        _ => return Ok(WebhookAction::Nothing("ignored")),
    };
    let deleted = if topic.ends_with("/delete") {
        let payload: Value = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("{topic} body: {e}")))?;
        let id = payload
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| WebhookError::Malformed(format!("{topic} body has no numeric id")))?;
        let kind = if object == ObjectKind::Contact {
            "Customer"
        } else {
            "Order"
        };
        Some(Box::new(RemoteRecord {
            external_id: format!("gid://shopify/{kind}/{id}"),
            version: None,
            updated_at: None,
            deleted: true,
            record: None,
            raw: payload,
        }))
    } else {
        None
    };
    Ok(WebhookAction::Sync { object, deleted })
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
