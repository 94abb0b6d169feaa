//! Webhook verification by a signature scheme the connector declares
//! ([`HmacSignature`]: HMAC-SHA256 of the raw body, base64 or hex, in a
//! named header, with the delivery id in another), checked in constant time
//! before anything is parsed; a constant-time [`secret_matches`] for
//! secrets echoed in a body; and a [`ReplayGuard`] keyed by delivery id.
//!
//! A server that reads bodies itself checks signatures while the body
//! streams: [`HmacSignature::begin`] looks at the headers only (a delivery
//! without its signature header is refused before a byte of its body is
//! read), the returned [`PendingDelivery`] is fed chunk by chunk, and
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

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureEncoding {
    /// Standard base64 with padding.
    #[default]
    Base64,
    /// Hexadecimal, either case.
    Hex,
}

impl SignatureEncoding {
    fn decode(self, signature: &str) -> Option<Vec<u8>> {
        let s = signature.trim();
        match self {
            SignatureEncoding::Base64 => B64.decode(s).ok(),
            SignatureEncoding::Hex => {
                if !s.len().is_multiple_of(2) {
                    return None;
                }
                (0..s.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                    .collect()
            }
        }
    }
}

/// How a provider signs its deliveries: HMAC-SHA256 of the raw body under
/// a shared secret, written in `encoding` in the `header` header; the
/// delivery's id in `id_header` (the body's [`content_id`] when the
/// provider sends none). Declared by the connector as a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HmacSignature {
    /// The header holding the signature (lower case).
    pub header: &'static str,
    /// How the signature is written.
    pub encoding: SignatureEncoding,
    /// The header holding the delivery id, if the provider sends one.
    pub id_header: Option<&'static str>,
}

impl HmacSignature {
    /// A base64 signature in `header`, the delivery id in `id_header`.
    pub const fn base64(header: &'static str, id_header: Option<&'static str>) -> Self {
        HmacSignature {
            header,
            encoding: SignatureEncoding::Base64,
            id_header,
        }
    }

    /// A hex signature in `header`, the delivery id in `id_header`.
    pub const fn hex(header: &'static str, id_header: Option<&'static str>) -> Self {
        HmacSignature {
            header,
            encoding: SignatureEncoding::Hex,
            id_header,
        }
    }

    /// Signs `body` under `key` as the provider does, written in this
    /// scheme's encoding: the sending side, for sandboxes and tests.
    pub fn sign(&self, key: &[u8], body: &[u8]) -> String {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            return String::new();
        };
        mac.update(body);
        let raw = mac.finalize().into_bytes();
        match self.encoding {
            SignatureEncoding::Base64 => B64.encode(raw),
            SignatureEncoding::Hex => hex(&raw),
        }
    }

    /// The signature header's value, or the error naming it.
    pub fn signature<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, WebhookError> {
        header(headers, self.header)
    }

    /// Verifies a whole body under any of `secrets` (a rotation passes the
    /// old and the new), each compared in constant time.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
        secrets: &[SecretString],
    ) -> Result<Delivery, WebhookError> {
        let sig = self.signature(headers)?;
        let given = self
            .encoding
            .decode(sig)
            .ok_or(WebhookError::BadSignature)?;
        let matched = secrets.iter().fold(false, |ok, s| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(s.expose_secret().as_bytes()) else {
                return ok;
            };
            mac.update(raw_body);
            mac.verify_slice(&given).is_ok() | ok
        });
        if !matched {
            return Err(WebhookError::BadSignature);
        }
        let id = self
            .id_header
            .and_then(|h| header(headers, h).ok())
            .map_or_else(|| content_id(raw_body), str::to_string);
        Ok(Delivery { id })
    }

    /// Before the body is read: the signature header must be there. The
    /// streaming twin of [`verify`](Self::verify).
    pub fn begin(
        &self,
        headers: &HeaderMap,
        secrets: &[SecretString],
    ) -> Result<PendingDelivery, WebhookError> {
        let sig = self.signature(headers)?;
        Ok(PendingDelivery {
            signature: sig.to_string(),
            encoding: self.encoding,
            delivery_id: self
                .id_header
                .and_then(|h| header(headers, h).ok())
                .map(str::to_string),
            verifier: StreamingVerifier::new(secrets),
        })
    }
}

/// True when `given` equals the secret, compared in constant time (for a
/// secret the provider echoes in the body, such as a subscription's state).
pub fn secret_matches(given: &str, expected: &SecretString) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes()))
}

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
        self.finish_encoded(signature_b64, SignatureEncoding::Base64)
    }

    /// [`finish`](Self::finish) for a signature written in `encoding`.
    pub fn finish_encoded(
        self,
        signature: &str,
        encoding: SignatureEncoding,
    ) -> Result<String, WebhookError> {
        let content = hex(&self.content.finalize());
        let Some(given) = encoding.decode(signature) else {
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
    encoding: SignatureEncoding,
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
    /// Feeds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.verifier.update(chunk);
    }

    /// Compares once the body is complete.
    pub fn finish(self) -> Result<VerifiedDelivery, WebhookError> {
        let content_id = self
            .verifier
            .finish_encoded(&self.signature, self.encoding)?;
        let id = self.delivery_id.unwrap_or_else(|| content_id.clone());
        Ok(VerifiedDelivery {
            delivery: Delivery { id },
            content_id,
        })
    }
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
/// Providers that sign only the body leave the delivery-id header outside
/// the signature, so a captured body re-sent
/// under a new id still verifies; feed this to a [`ReplayGuard`] too.
pub fn content_id(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
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
    /// Remembers up to `capacity` ids for `ttl` (cover the provider's retry period).
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
