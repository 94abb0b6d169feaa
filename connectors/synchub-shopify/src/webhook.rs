//! Shopify webhooks: the runtime (`synchub_http::webhook::verify_shopify`)
//! checks `X-Shopify-Hmac-Sha256` over the raw body in constant time before
//! anything is parsed; repeats are dropped by `X-Shopify-Webhook-Id` (Shopify
//! retries with the same id) through a [`ReplayGuard`]; the topic tells the
//! daemon which stream to sync. Delete topics carry only `{"id": …}` and are
//! turned into a deleted [`RemoteRecord`] directly.
//!
//! <https://shopify.dev/docs/apps/build/webhooks/verify-deliveries>

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::Value;
use sha2::Sha256;
use synchub_core::{ObjectKind, RemoteRecord};
use synchub_http::webhook::{verify_shopify, Delivery, ReplayGuard};

/// Why a delivery was refused: answer 401 for `Verify`, 400 otherwise.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Missing or wrong signature (checked by the runtime).
    #[error(transparent)]
    Verify(#[from] synchub_http::webhook::WebhookError),
    /// No webhook secret is configured for this connector instance.
    #[error("no webhook secret configured: set `webhook_secrets` to the app's client secret")]
    NoSecret,
    /// A required header is missing.
    #[error("webhook has no {0} header")]
    MissingHeader(&'static str),
    /// The (verified) body is not the JSON the topic promises.
    #[error("webhook body is unusable: {0}")]
    BadPayload(String),
}

/// What to do with a verified delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    /// Run an incremental sync of this stream; `deleted` carries the record
    /// a delete topic removed.
    Sync {
        /// The stream to sync.
        object: ObjectKind,
        /// The topic, e.g. `customers/update`.
        topic: String,
        /// For `*/delete`: the deleted record.
        deleted: Option<Box<RemoteRecord>>,
    },
    /// Already seen (a retry of the same webhook id): answer 200, do nothing.
    Duplicate,
    /// Verified but not about a synced stream (`app/uninstalled`, privacy topics).
    Ignored {
        /// The topic.
        topic: String,
    },
}

/// `base64(HMAC-SHA256(secret, body))`, as Shopify signs.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies, de-duplicates and classifies one delivery.
pub async fn handle_webhook(
    secrets: &[SecretString],
    headers: &http::HeaderMap,
    body: &[u8],
    guard: &dyn ReplayGuard,
) -> Result<WebhookOutcome, WebhookError> {
    if secrets.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    let delivery = verify_shopify(headers, body, secrets)?;
    classify_webhook(&delivery, headers, body, guard).await
}

/// De-duplicates and classifies a delivery whose signature was already
/// checked (e.g. while its body streamed, with
/// [`synchub_http::webhook::begin_shopify`]): the second half of
/// [`handle_webhook`].
pub async fn classify_webhook(
    delivery: &Delivery,
    headers: &http::HeaderMap,
    body: &[u8],
    guard: &dyn ReplayGuard,
) -> Result<WebhookOutcome, WebhookError> {
    let topic = headers
        .get("x-shopify-topic")
        .and_then(|v| v.to_str().ok())
        .ok_or(WebhookError::MissingHeader("X-Shopify-Topic"))?;
    if !guard.first_seen(&delivery.id).await {
        return Ok(WebhookOutcome::Duplicate);
    }
    let object = match topic.split('/').next() {
        Some("customers") if !topic.ends_with("redact") && !topic.ends_with("data_request") => {
            ObjectKind::Contact
        }
        Some("orders") => ObjectKind::Order,
        _ => {
            return Ok(WebhookOutcome::Ignored {
                topic: topic.to_string(),
            })
        }
    };
    let deleted = if topic.ends_with("/delete") {
        let payload: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::BadPayload(e.to_string()))?;
        let id = payload
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| WebhookError::BadPayload("delete payload has no numeric id".into()))?;
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
    Ok(WebhookOutcome::Sync {
        object,
        topic: topic.to_string(),
        deleted,
    })
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
