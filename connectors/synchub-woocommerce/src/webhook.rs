//! WooCommerce webhooks: the runtime (`synchub_http::webhook::verify_woocommerce`)
//! checks `X-WC-Webhook-Signature` over the raw body (PHP-escaped JSON: never
//! re-serialise) in constant time and recognises the unsigned activation
//! ping; repeats are dropped by `X-WC-Webhook-Delivery-ID` through a
//! [`ReplayGuard`]; the topic tells the daemon which stream to sync.
//!
//! <https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks>

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::Value;
use sha2::Sha256;
use synchub_core::{ObjectKind, RemoteRecord};
use synchub_http::webhook::{verify_woocommerce, Delivery, ReplayGuard, WooDelivery};

/// Why a delivery was refused: answer 401 for `Verify`, 400 otherwise.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Missing or wrong signature (checked by the runtime).
    #[error(transparent)]
    Verify(#[from] synchub_http::webhook::WebhookError),
    /// No webhook secret is configured for this connector instance.
    #[error(
        "no webhook secret configured: set `webhook_secret` to the secret of the store's webhooks"
    )]
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
    /// Run an incremental sync of this stream; `deleted` for `*.deleted`.
    Sync {
        /// The stream.
        object: ObjectKind,
        /// The topic, e.g. `customer.updated`.
        topic: String,
        /// For `*.deleted`: the deleted record.
        deleted: Option<Box<RemoteRecord>>,
    },
    /// The activation ping (`webhook_id=N`): answer 200, do nothing.
    Ping,
    /// Already seen: answer 200, do nothing.
    Duplicate,
    /// Verified but not about a synced stream (`product.*`, `coupon.*`…).
    Ignored {
        /// The topic.
        topic: String,
    },
}

/// `base64(HMAC-SHA256(secret, body))`, as WooCommerce signs.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies, de-duplicates and classifies one delivery.
pub async fn handle_webhook(
    secret: Option<&SecretString>,
    headers: &http::HeaderMap,
    body: &[u8],
    guard: &dyn ReplayGuard,
) -> Result<WebhookOutcome, WebhookError> {
    let secret = secret.ok_or(WebhookError::NoSecret)?;
    let delivery = match verify_woocommerce(headers, body, secret)? {
        WooDelivery::Ping => return Ok(WebhookOutcome::Ping),
        WooDelivery::Event(d) => d,
    };
    classify_webhook(&delivery, headers, body, guard).await
}

/// De-duplicates and classifies a signed delivery whose signature was
/// already checked (e.g. while its body streamed, with
/// [`synchub_http::webhook::begin_woocommerce`]): the second half of
/// [`handle_webhook`].
pub async fn classify_webhook(
    delivery: &Delivery,
    headers: &http::HeaderMap,
    body: &[u8],
    guard: &dyn ReplayGuard,
) -> Result<WebhookOutcome, WebhookError> {
    let topic = headers
        .get("x-wc-webhook-topic")
        .and_then(|v| v.to_str().ok())
        .ok_or(WebhookError::MissingHeader("X-WC-Webhook-Topic"))?;
    if !guard.first_seen(&delivery.id).await {
        return Ok(WebhookOutcome::Duplicate);
    }
    let object = match topic.split('.').next() {
        Some("customer") => ObjectKind::Contact,
        Some("order") => ObjectKind::Order,
        _ => {
            return Ok(WebhookOutcome::Ignored {
                topic: topic.to_string(),
            })
        }
    };
    let deleted = if topic.ends_with(".deleted") {
        let payload: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::BadPayload(e.to_string()))?;
        let id = payload
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| WebhookError::BadPayload("deleted payload has no numeric id".into()))?;
        Some(Box::new(RemoteRecord {
            external_id: id.to_string(),
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

/// JSON as PHP's `wp_json_encode` writes it: `\/` for slashes and `\uXXXX`
/// for every non-ASCII character (the bytes WooCommerce signs).
pub fn php_json(v: &Value) -> String {
    let plain = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(plain.len() * 2);
    for c in plain.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use synchub_http::webhook::MemoryReplayGuard;

    fn fixture() -> Value {
        let path = format!(
            "{}/tests/fixtures/webhook_customer_updated.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    fn headers(v: &Value) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in v.as_object().expect("headers") {
            h.insert(
                http::HeaderName::try_from(k.as_str()).expect("name"),
                v.as_str().expect("v").parse().expect("value"),
            );
        }
        h
    }

    #[tokio::test]
    async fn recorded_delivery_verifies_dedupes_and_the_ping_is_accepted() {
        let fx = fixture();
        let secret = SecretString::from(["wc_", "test_secret"].concat());
        let guard = MemoryReplayGuard::new(Duration::from_secs(60), 16);
        let body = fx["raw_body"].as_str().expect("raw").as_bytes();
        let h = headers(&fx["headers"]);
        let outcome = handle_webhook(Some(&secret), &h, body, &guard)
            .await
            .expect("verified");
        assert_eq!(
            outcome,
            WebhookOutcome::Sync {
                object: ObjectKind::Contact,
                topic: "customer.updated".into(),
                deleted: None
            }
        );
        assert_eq!(
            handle_webhook(Some(&secret), &h, body, &guard).await,
            Ok(WebhookOutcome::Duplicate)
        );
        // the sandbox's PHP-style encoding escapes as the recorded body does
        let parsed: Value = serde_json::from_slice(body).expect("json");
        let ours = php_json(&parsed);
        assert!(
            ours.contains(r"https:\/\/shop.example.com.tw") && ours.contains(r"\u5c0f\u660e"),
            "{ours}"
        );
        assert_eq!(serde_json::from_str::<Value>(&ours).expect("json"), parsed);
        let ping = &fx["ping_example"];
        let outcome = handle_webhook(
            Some(&secret),
            &headers(&ping["headers"]),
            ping["raw_body"].as_str().expect("raw").as_bytes(),
            &guard,
        )
        .await;
        assert_eq!(outcome, Ok(WebhookOutcome::Ping));
        let wrong = SecretString::from(format!("wc_{:x}", std::process::id()));
        assert!(matches!(
            handle_webhook(Some(&wrong), &h, body, &guard).await,
            Err(WebhookError::Verify(_))
        ));
        assert_eq!(
            handle_webhook(None, &h, body, &guard).await,
            Err(WebhookError::NoSecret)
        );
    }

    #[tokio::test]
    async fn deleted_topic_yields_a_deleted_record() {
        let secret = format!("wc_{:x}", std::process::id());
        let body = br#"{"id":26}"#;
        let mut h = http::HeaderMap::new();
        h.insert("x-wc-webhook-topic", "customer.deleted".parse().expect("v"));
        h.insert("x-wc-webhook-delivery-id", "d-1".parse().expect("v"));
        h.insert(
            "x-wc-webhook-signature",
            sign(secret.as_bytes(), body).parse().expect("v"),
        );
        let guard = MemoryReplayGuard::new(Duration::from_secs(60), 16);
        let outcome = handle_webhook(Some(&SecretString::from(secret)), &h, body, &guard)
            .await
            .expect("ok");
        let WebhookOutcome::Sync {
            deleted: Some(rec), ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(rec.external_id, "26");
        assert!(rec.deleted);
    }
}
