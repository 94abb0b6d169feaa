//! WooCommerce webhooks, on the shared pieces: the signature
//! (`X-WC-Webhook-Signature`, HMAC-SHA256 of the raw body, PHP-escaped JSON:
//! never re-serialise) is the declared [`SIGNATURE`], checked as the body
//! streams by the runtime's [`PendingDelivery`], in constant time; the unsigned activation ping
//! (`webhook_id=N`) is read only as far as it can be long; repeats are
//! dropped by `X-WC-Webhook-Delivery-ID` through the shared
//! [`ReplayGuard`]; the topic becomes the shared [`WebhookAction`].
//!
//! <https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks>

use secrecy::SecretString;
use serde_json::Value;
use synchub_core::{ObjectKind, RemoteRecord, WebhookAction};
use synchub_http::webhook::{Delivery, HmacSignature, PendingDelivery, ReplayGuard, WebhookError};

/// How WooCommerce signs: `base64(HMAC-SHA256(secret, raw body))` in
/// `X-WC-Webhook-Signature`; the delivery id in `X-WC-Webhook-Delivery-ID`.
pub const SIGNATURE: HmacSignature =
    HmacSignature::base64("x-wc-webhook-signature", Some("x-wc-webhook-delivery-id"));

/// The signature header.
pub const SIGNATURE_HEADER: &str = SIGNATURE.header;

/// Signs `body` as WooCommerce does (the sandbox and tests sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    SIGNATURE.sign(secret, body)
}
/// The topic header, e.g. `customer.updated`.
pub const TOPIC_HEADER: &str = "x-wc-webhook-topic";
/// The longest activation ping: `webhook_id=` and a u64.
pub const PING_MAX: usize = 31;

/// Why a connection without a secret refuses every delivery.
pub const NO_SECRET: &str =
    "no webhook secret configured: set `webhook_secret` to the secret of the store's webhooks";

/// True for WooCommerce's unsigned activation ping, `webhook_id=N`.
pub fn is_ping(body: &[u8]) -> bool {
    body.len() > 11
        && body.len() <= PING_MAX
        && body.starts_with(b"webhook_id=")
        && body[11..].iter().all(u8::is_ascii_digit)
}

/// What a delivery's headers allow.
#[derive(Debug)]
pub enum Begun {
    /// Signed: verify the body as it arrives.
    Signed(PendingDelivery),
    /// Unsigned and declared no longer than [`PING_MAX`]: read it and take
    /// it only if [`is_ping`].
    MaybePing,
}

/// Looks at the headers only: refused without a configured secret, and an
/// unsigned delivery unless its declared length fits the activation ping.
pub fn begin(
    secret: Option<&SecretString>,
    headers: &http::HeaderMap,
) -> Result<Begun, WebhookError> {
    let secret = secret.ok_or_else(|| WebhookError::Malformed(NO_SECRET.into()))?;
    match SIGNATURE.begin(headers, std::slice::from_ref(secret)) {
        Ok(pending) => Ok(Begun::Signed(pending)),
        Err(WebhookError::MissingHeader(h)) => {
            let declared = headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            match declared {
                Some(n) if n <= PING_MAX => Ok(Begun::MaybePing),
                _ => Err(WebhookError::MissingHeader(h)),
            }
        }
        Err(e) => Err(e),
    }
}

/// Verifies, de-duplicates and classifies a delivery whose body is at hand
/// (what the daemon does while the body streams); the unsigned activation
/// ping is `Nothing("ping")`.
pub async fn handle_webhook(
    secret: Option<&SecretString>,
    headers: &http::HeaderMap,
    body: &[u8],
    guard: &dyn ReplayGuard,
) -> Result<WebhookAction, WebhookError> {
    if secret.is_none() {
        return Err(WebhookError::Malformed(NO_SECRET.into()));
    }
    if headers.get(SIGNATURE_HEADER).is_none() {
        return if is_ping(body) {
            Ok(WebhookAction::Nothing("ping"))
        } else {
            Err(WebhookError::MissingHeader(SIGNATURE_HEADER))
        };
    }
    let Begun::Signed(mut pending) = begin(secret, headers)? else {
        return Err(WebhookError::MissingHeader(SIGNATURE_HEADER));
    };
    pending.update(body);
    let verified = pending.finish()?;
    classify(&verified.delivery, headers, body, guard).await
}

/// De-duplicates and classifies a verified delivery: `customer.*` syncs
/// contacts, `order.*` orders, anything else (`product.*`, `coupon.*`) is
/// verified and ignored.
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
    let object = match topic.split('.').next() {
        Some("customer") => ObjectKind::Contact,
        Some("order") => ObjectKind::Order,
        _ => return Ok(WebhookAction::Nothing("ignored")),
    };
    let deleted = if topic.ends_with(".deleted") {
        let payload: Value = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("{topic} body: {e}")))?;
        let id = payload
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| WebhookError::Malformed(format!("{topic} body has no numeric id")))?;
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
    Ok(WebhookAction::Sync { object, deleted })
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
            WebhookAction::Sync {
                object: ObjectKind::Contact,
                deleted: None
            }
        );
        assert_eq!(
            handle_webhook(Some(&secret), &h, body, &guard).await,
            Ok(WebhookAction::Nothing("duplicate"))
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
        assert_eq!(outcome, Ok(WebhookAction::Nothing("ping")));
        let wrong = SecretString::from(format!("wc_{:x}", std::process::id()));
        assert_eq!(
            handle_webhook(Some(&wrong), &h, body, &guard).await,
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            handle_webhook(None, &h, body, &guard).await,
            Err(WebhookError::Malformed(NO_SECRET.into()))
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
        let WebhookAction::Sync {
            deleted: Some(rec), ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(rec.external_id, "26");
        assert!(rec.deleted);
    }
}
