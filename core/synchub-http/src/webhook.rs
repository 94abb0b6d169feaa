//! Webhook verification, one function per provider, each checking the
//! signature over the raw body bytes in constant time before anything is
//! parsed; plus the Microsoft Graph `clientState` check and validation
//! handshake, and a [`ReplayGuard`] keyed by delivery id.
//!
//! A server that reads bodies itself checks Shopify and WooCommerce
//! signatures while the body streams: [`begin_shopify`] and
//! [`begin_woocommerce`] look at the headers only (a delivery without a
//! signature header is refused before a byte of its body is read), the
//! returned [`PendingDelivery`] is fed chunk by chunk, and
//! [`PendingDelivery::finish`] compares — one pass over the bytes for the
//! signature under every candidate secret and the body's [`content_id`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::secret::{ExposeSecret, SecretString};

/// Why a webhook was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// A required header is absent.
    #[error("webhook has no {0} header")]
    MissingHeader(&'static str),
    /// The signature does not match the body.
    #[error("webhook signature does not match")]
    BadSignature,
    /// The Graph notification's clientState does not match ours.
    #[error("webhook clientState does not match")]
    BadClientState,
    /// The body is not what the provider sends.
    #[error("webhook body is malformed: {0}")]
    Malformed(String),
}

/// A verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's delivery id, or a SHA-256 of the body when it has none;
    /// feed it to a [`ReplayGuard`].
    pub id: String,
}

/// A WooCommerce delivery: a signed event or the unsigned activation ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WooDelivery {
    /// A signed event.
    Event(Delivery),
    /// The `webhook_id=N` ping sent on creation; answer 200 and ignore it.
    Ping,
}

/// True when `signature_b64` is base64(HMAC-SHA256(key, body)); constant time.
pub fn hmac_sha256_base64_matches(key: &[u8], body: &[u8], signature_b64: &str) -> bool {
    let Ok(given) = B64.decode(signature_b64.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Shopify's signature header.
pub const SHOPIFY_SIGNATURE: &str = "x-shopify-hmac-sha256";
/// WooCommerce's signature header.
pub const WOO_SIGNATURE: &str = "x-wc-webhook-signature";
/// The longest unsigned WooCommerce activation ping: `webhook_id=` and a u64.
pub const WOO_PING_MAX: usize = 31;

/// HMAC-SHA256 of a body that arrives in chunks, under every candidate
/// secret at once, plus the body's SHA-256: verifying costs no second pass.
#[derive(Clone)]
pub struct StreamingVerifier {
    macs: Vec<Hmac<Sha256>>,
    content: Sha256,
}

impl std::fmt::Debug for StreamingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingVerifier")
            .field("secrets", &self.macs.len())
            .finish_non_exhaustive()
    }
}

impl StreamingVerifier {
    /// One MAC per candidate secret (a rotation passes the old and the new).
    pub fn new(secrets: &[SecretString]) -> Self {
        let macs = secrets
            .iter()
            .filter_map(|s| Hmac::<Sha256>::new_from_slice(s.expose_secret().as_bytes()).ok())
            .collect();
        Self {
            macs,
            content: Sha256::new(),
        }
    }

    /// Feeds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
        self.content.update(chunk);
    }

    /// Checks `signature_b64` against the body fed so far under every
    /// secret (each compare in constant time, none skipped); on a match, the
    /// body's [`content_id`].
    pub fn finish(self, signature_b64: &str) -> Result<String, WebhookError> {
        let content = hex(&self.content.finalize());
        let Ok(given) = B64.decode(signature_b64.trim()) else {
            return Err(WebhookError::BadSignature);
        };
        let matched = self
            .macs
            .into_iter()
            .fold(false, |ok, mac| mac.verify_slice(&given).is_ok() | ok);
        if matched {
            Ok(content)
        } else {
            Err(WebhookError::BadSignature)
        }
    }
}

/// A delivery whose headers were taken and whose body is verified as it
/// arrives: feed it with [`update`](Self::update), then [`finish`](Self::finish).
#[derive(Debug)]
pub struct PendingDelivery {
    signature: String,
    delivery_id: Option<String>,
    verifier: StreamingVerifier,
}

/// A delivery whose whole body matched its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    /// The delivery id, as the one-shot verifiers give it.
    pub delivery: Delivery,
    /// The body's [`content_id`].
    pub content_id: String,
}

impl PendingDelivery {
    fn new(
        headers: &HeaderMap,
        signature: &str,
        id_header: &'static str,
        secrets: &[SecretString],
    ) -> Self {
        PendingDelivery {
            signature: signature.to_string(),
            delivery_id: header(headers, id_header).ok().map(str::to_string),
            verifier: StreamingVerifier::new(secrets),
        }
    }

    /// Feeds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.verifier.update(chunk);
    }

    /// Compares once the body is complete.
    pub fn finish(self) -> Result<VerifiedDelivery, WebhookError> {
        let content_id = self.verifier.finish(&self.signature)?;
        let id = self.delivery_id.unwrap_or_else(|| content_id.clone());
        Ok(VerifiedDelivery {
            delivery: Delivery { id },
            content_id,
        })
    }
}

/// Shopify, before the body is read: the signature header must be there.
/// The streaming twin of [`verify_shopify`].
pub fn begin_shopify(
    headers: &HeaderMap,
    secrets: &[SecretString],
) -> Result<PendingDelivery, WebhookError> {
    let sig = header(headers, SHOPIFY_SIGNATURE)?;
    Ok(PendingDelivery::new(
        headers,
        sig,
        "x-shopify-webhook-id",
        secrets,
    ))
}

/// What a WooCommerce delivery's headers allow.
#[derive(Debug)]
pub enum WooPending {
    /// Signed: verify the body as it arrives.
    Signed(PendingDelivery),
    /// Unsigned and declared no longer than [`WOO_PING_MAX`]: read it and
    /// take it only if [`is_woocommerce_ping`].
    MaybePing,
}

/// WooCommerce, before the body is read: an unsigned delivery is refused
/// unless its declared length fits the activation ping. The streaming twin
/// of [`verify_woocommerce`].
pub fn begin_woocommerce(
    headers: &HeaderMap,
    secret: &SecretString,
) -> Result<WooPending, WebhookError> {
    let Ok(sig) = header(headers, WOO_SIGNATURE) else {
        let declared = headers
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        return match declared {
            Some(n) if n <= WOO_PING_MAX => Ok(WooPending::MaybePing),
            _ => Err(WebhookError::MissingHeader(WOO_SIGNATURE)),
        };
    };
    Ok(WooPending::Signed(PendingDelivery::new(
        headers,
        sig,
        "x-wc-webhook-delivery-id",
        std::slice::from_ref(secret),
    )))
}

/// True for WooCommerce's unsigned activation ping, `webhook_id=N`.
pub fn is_woocommerce_ping(body: &[u8]) -> bool {
    body.len() > 11
        && body.len() <= WOO_PING_MAX
        && body.starts_with(b"webhook_id=")
        && body[11..].iter().all(u8::is_ascii_digit)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, WebhookError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(WebhookError::MissingHeader(name))
}

/// The SHA-256 of a body, in hex: the id of a delivery by its content.
/// Providers that sign only the body (Shopify, WooCommerce) leave the
/// delivery-id header outside the signature, so a captured body re-sent
/// under a new id still verifies; feed this to a [`ReplayGuard`] too.
pub fn content_id(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn body_id(body: &[u8]) -> String {
    content_id(body)
}

fn check(key: &SecretString, body: &[u8], sig: &str) -> Result<(), WebhookError> {
    if hmac_sha256_base64_matches(key.expose_secret().as_bytes(), body, sig) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// Shopify: `X-Shopify-Hmac-Sha256` with the app client secret. Pass the
/// old secret too during a rotation (Shopify may sign with it for an hour).
/// Delivery id: `X-Shopify-Webhook-Id` (same on every retry).
pub fn verify_shopify(
    headers: &HeaderMap,
    raw_body: &[u8],
    secrets: &[SecretString],
) -> Result<Delivery, WebhookError> {
    let sig = header(headers, SHOPIFY_SIGNATURE)?;
    if !secrets.iter().any(|s| check(s, raw_body, sig).is_ok()) {
        return Err(WebhookError::BadSignature);
    }
    let id =
        header(headers, "x-shopify-webhook-id").map_or_else(|_| body_id(raw_body), str::to_string);
    Ok(Delivery { id })
}

/// WooCommerce: `X-WC-Webhook-Signature` over the raw (PHP-escaped) body.
/// The unsigned `webhook_id=N` ping is recognised and reported as [`WooDelivery::Ping`].
pub fn verify_woocommerce(
    headers: &HeaderMap,
    raw_body: &[u8],
    secret: &SecretString,
) -> Result<WooDelivery, WebhookError> {
    let Ok(sig) = header(headers, WOO_SIGNATURE) else {
        return if is_woocommerce_ping(raw_body) {
            Ok(WooDelivery::Ping)
        } else {
            Err(WebhookError::MissingHeader(WOO_SIGNATURE))
        };
    };
    check(secret, raw_body, sig)?;
    let id = header(headers, "x-wc-webhook-delivery-id")
        .map_or_else(|_| body_id(raw_body), str::to_string);
    Ok(WooDelivery::Event(Delivery { id }))
}

/// QuickBooks Online: `intuit-signature` with the app's verifier token
/// (legacy and CloudEvents payloads alike). No delivery header: the id is the body hash.
pub fn verify_quickbooks(
    headers: &HeaderMap,
    raw_body: &[u8],
    verifier_token: &SecretString,
) -> Result<Delivery, WebhookError> {
    check(
        verifier_token,
        raw_body,
        header(headers, "intuit-signature")?,
    )?;
    Ok(Delivery {
        id: body_id(raw_body),
    })
}

/// Xero: `x-xero-signature` with the webhook key. Answer 200 when this
/// succeeds and 401 when it fails (also for the empty "intent to receive" payloads).
pub fn verify_xero(
    headers: &HeaderMap,
    raw_body: &[u8],
    webhook_key: &SecretString,
) -> Result<Delivery, WebhookError> {
    check(webhook_key, raw_body, header(headers, "x-xero-signature")?)?;
    Ok(Delivery {
        id: body_id(raw_body),
    })
}

/// Microsoft Graph: compares a notification's `clientState` with ours, in constant time.
pub fn verify_msgraph_client_state(
    client_state: &str,
    expected: &SecretString,
) -> Result<(), WebhookError> {
    if bool::from(
        client_state
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    ) {
        Ok(())
    } else {
        Err(WebhookError::BadClientState)
    }
}

/// Microsoft Graph: the notifications of a POST body whose `clientState`
/// matches ours, each with its id (mismatching ones are dropped, as the docs say).
pub fn msgraph_notifications(
    raw_body: &[u8],
    expected: &SecretString,
) -> Result<Vec<(Delivery, serde_json::Value)>, WebhookError> {
    let body: serde_json::Value =
        serde_json::from_slice(raw_body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let items = body
        .get("value")
        .and_then(|v| v.as_array())
        .ok_or_else(|| WebhookError::Malformed("no `value` array".into()))?;
    Ok(items
        .iter()
        .filter(|n| {
            let state = n.get("clientState").and_then(|s| s.as_str()).unwrap_or("");
            verify_msgraph_client_state(state, expected).is_ok()
        })
        .map(|n| {
            let id = n
                .get("id")
                .and_then(|s| s.as_str())
                .map_or_else(|| body_id(n.to_string().as_bytes()), str::to_string);
            (Delivery { id }, n.clone())
        })
        .collect())
}

/// Microsoft Graph validation handshake: given the request's raw query string,
/// the URL-decoded `validationToken` to echo back as `text/plain` with 200.
pub fn msgraph_validation_token(raw_query: &str) -> Option<String> {
    url_form_pairs(raw_query)
        .into_iter()
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v)
}

fn url_form_pairs(q: &str) -> Vec<(String, String)> {
    oauth2::url::form_urlencoded::parse(q.trim_start_matches('?').as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Recognises deliveries seen before. Implementations may persist.
#[async_trait::async_trait]
pub trait ReplayGuard: Send + Sync {
    /// True the first time an id is seen (within the retention), false after.
    async fn first_seen(&self, delivery_id: &str) -> bool;

    /// Forgets an id whose delivery could not be carried out, so that the
    /// provider's redelivery is processed instead of dropped as a repeat.
    async fn forget(&self, delivery_id: &str) {
        let _ = delivery_id;
    }
}

/// Ids by first sighting, plus their arrival order for eviction.
type SeenIds = (HashMap<String, Instant>, VecDeque<(String, Instant)>);

/// An in-memory replay guard: bounded in size, ids forgotten after a TTL.
#[derive(Debug)]
pub struct MemoryReplayGuard {
    ttl: Duration,
    capacity: usize,
    seen: Mutex<SeenIds>,
}

impl MemoryReplayGuard {
    /// Remembers up to `capacity` ids for `ttl` (Shopify retries for 4 hours: use more).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            seen: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }
}

#[async_trait::async_trait]
impl ReplayGuard for MemoryReplayGuard {
    async fn first_seen(&self, delivery_id: &str) -> bool {
        let now = Instant::now();
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        while let Some((id, at)) = order.front() {
            if now.saturating_duration_since(*at) < self.ttl && order.len() < self.capacity {
                break;
            }
            if map.get(id) == Some(at) {
                map.remove(id);
            }
            order.pop_front();
        }
        if let Some(at) = map.get(delivery_id) {
            if now.saturating_duration_since(*at) < self.ttl {
                return false;
            }
        }
        map.insert(delivery_id.to_string(), now);
        order.push_back((delivery_id.to_string(), now));
        true
    }

    async fn forget(&self, delivery_id: &str) {
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Its entry in the arrival order no longer matches and is skipped.
        guard.0.remove(delivery_id);
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
