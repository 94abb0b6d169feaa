//! The streaming verifier against the one-shot verifiers, on the recorded
//! deliveries in shared/api-notes, with the body split at every byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::*;

fn fixture(rel: &str) -> Value {
    let p = format!(
        "{}/../../../shared/api-notes/fixtures/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn headers(v: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, val) in v.as_object().unwrap() {
        h.insert(
            HeaderName::try_from(k.as_str()).unwrap(),
            HeaderValue::from_str(val.as_str().unwrap()).unwrap(),
        );
    }
    h
}

/// The throw-away secret a fixture's `_comment` names (`… secret 'x' …` or
/// `… client secret 'x'`), read from the file rather than written here.
fn fixture_secret(f: &Value) -> SecretString {
    let comment = f["_comment"].as_str().unwrap();
    let after = comment.split("secret '").nth(1).unwrap();
    SecretString::from(after.split('\'').next().unwrap().to_string())
}

/// A secret no fixture was signed with.
fn other_secret() -> SecretString {
    SecretString::from(format!("other-{:x}", std::process::id()))
}

/// Feeds `body` as two chunks split at `at` (and an empty chunk between).
fn streamed(mut pending: PendingDelivery, body: &[u8], at: usize) -> PendingDelivery {
    pending.update(&body[..at]);
    pending.update(&[]);
    pending.update(&body[at..]);
    pending
}

fn tampered(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let i = b.len() / 2;
    b[i] ^= 1;
    b
}

#[test]
fn shopify_streaming_agrees_with_one_shot_at_every_split() {
    let f = fixture("shopify/webhook_customers_update.json");
    let (h, body) = (
        headers(&f["headers"]),
        f["raw_body"].as_str().unwrap().as_bytes(),
    );
    let good = fixture_secret(&f);
    // Rotation: the signing secret second in the list.
    let secrets = [other_secret(), good.clone()];
    let one_shot = verify_shopify(&h, body, &secrets).unwrap();
    let bad = tampered(body);
    for at in 0..=body.len() {
        let verified = streamed(begin_shopify(&h, &secrets).unwrap(), body, at)
            .finish()
            .unwrap_or_else(|e| panic!("split at {at}: {e}"));
        assert_eq!(verified.delivery, one_shot, "split at {at}");
        assert_eq!(verified.content_id, content_id(body), "split at {at}");
        assert_eq!(
            streamed(begin_shopify(&h, &secrets).unwrap(), &bad, at).finish(),
            Err(WebhookError::BadSignature),
            "tampered, split at {at}"
        );
        assert_eq!(
            streamed(begin_shopify(&h, &[other_secret()]).unwrap(), body, at).finish(),
            Err(WebhookError::BadSignature),
            "wrong secret, split at {at}"
        );
    }
    assert_eq!(
        verify_shopify(&h, &bad, &secrets),
        Err(WebhookError::BadSignature)
    );
    // No signature header: refused from the headers alone, as one-shot does.
    let mut unsigned = h.clone();
    unsigned.remove(SHOPIFY_SIGNATURE);
    assert_eq!(
        begin_shopify(&unsigned, &secrets).unwrap_err(),
        WebhookError::MissingHeader(SHOPIFY_SIGNATURE)
    );
    assert_eq!(
        verify_shopify(&unsigned, body, &secrets),
        Err(WebhookError::MissingHeader(SHOPIFY_SIGNATURE))
    );
}

#[test]
fn woocommerce_streaming_agrees_with_one_shot_at_every_split() {
    let f = fixture("woocommerce/webhook_customer_updated.json");
    let (h, body) = (
        headers(&f["headers"]),
        f["raw_body"].as_str().unwrap().as_bytes(),
    );
    let secret = fixture_secret(&f);
    let WooDelivery::Event(one_shot) = verify_woocommerce(&h, body, &secret).unwrap() else {
        panic!("the recorded delivery is an event");
    };
    let bad = tampered(body);
    let begin = |secret: &SecretString| match begin_woocommerce(&h, secret).unwrap() {
        WooPending::Signed(p) => p,
        WooPending::MaybePing => panic!("a signed delivery taken for a ping"),
    };
    for at in 0..=body.len() {
        let verified = streamed(begin(&secret), body, at)
            .finish()
            .unwrap_or_else(|e| panic!("split at {at}: {e}"));
        assert_eq!(verified.delivery, one_shot, "split at {at}");
        assert_eq!(verified.content_id, content_id(body), "split at {at}");
        assert_eq!(
            streamed(begin(&secret), &bad, at).finish(),
            Err(WebhookError::BadSignature),
            "tampered, split at {at}"
        );
        assert_eq!(
            streamed(begin(&other_secret()), body, at).finish(),
            Err(WebhookError::BadSignature),
            "wrong secret, split at {at}"
        );
    }
    assert_eq!(
        verify_woocommerce(&h, &bad, &secret),
        Err(WebhookError::BadSignature)
    );

    // The unsigned ping: allowed to be read only when it declares a ping's length.
    let ping = &f["ping_example"];
    let ping_body = ping["raw_body"].as_str().unwrap().as_bytes();
    let mut ping_headers = headers(&ping["headers"]);
    assert_eq!(
        verify_woocommerce(&ping_headers, ping_body, &secret),
        Ok(WooDelivery::Ping)
    );
    assert!(is_woocommerce_ping(ping_body));
    ping_headers.insert(
        reqwest::header::CONTENT_LENGTH,
        HeaderValue::from(ping_body.len()),
    );
    assert!(matches!(
        begin_woocommerce(&ping_headers, &secret),
        Ok(WooPending::MaybePing)
    ));
    // An unsigned body longer than a ping (or of unknown length) is refused unread.
    let mut unsigned = h.clone();
    unsigned.remove(WOO_SIGNATURE);
    assert_eq!(
        begin_woocommerce(&unsigned, &secret).unwrap_err(),
        WebhookError::MissingHeader(WOO_SIGNATURE)
    );
    unsigned.insert(
        reqwest::header::CONTENT_LENGTH,
        HeaderValue::from(body.len()),
    );
    assert_eq!(
        begin_woocommerce(&unsigned, &secret).unwrap_err(),
        WebhookError::MissingHeader(WOO_SIGNATURE)
    );
    assert_eq!(
        verify_woocommerce(&unsigned, body, &secret),
        Err(WebhookError::MissingHeader(WOO_SIGNATURE))
    );
}

#[test]
fn streaming_verifier_matches_one_shot_hmac_and_content_id() {
    let f = fixture("shopify/webhook_customers_update.json");
    let body = f["raw_body"].as_str().unwrap().as_bytes();
    let sig = f["headers"]["X-Shopify-Hmac-Sha256"].as_str().unwrap();
    let secret = fixture_secret(&f);
    assert!(hmac_sha256_base64_matches(
        secret.expose_secret().as_bytes(),
        body,
        sig
    ));
    // Chunks of every size from 1 byte to the whole body.
    for size in 1..=body.len() {
        let mut v = StreamingVerifier::new(std::slice::from_ref(&secret));
        for chunk in body.chunks(size) {
            v.update(chunk);
        }
        assert_eq!(v.finish(sig), Ok(content_id(body)), "chunks of {size}");
    }
    // Not base64, or no secret at all: refused.
    let mut v = StreamingVerifier::new(std::slice::from_ref(&secret));
    v.update(body);
    assert_eq!(v.finish("%%%"), Err(WebhookError::BadSignature));
    let mut v = StreamingVerifier::new(&[]);
    v.update(body);
    assert_eq!(v.finish(sig), Err(WebhookError::BadSignature));
}
