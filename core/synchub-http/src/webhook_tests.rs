//! The streaming verifier against the one-shot verifier, with the body
//! split at every byte, for both signature encodings. Secrets are made at
//! test time; the recorded provider deliveries are checked in
//! `tests/runtime/webhooks.rs` and in each connector's crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::HeaderValue;

use super::*;

const SCHEMES: [HmacSignature; 2] = [
    HmacSignature::base64("x-test-signature", Some("x-test-delivery")),
    HmacSignature::hex("x-test-signature", None),
];

fn secret(tag: &str) -> SecretString {
    SecretString::from(format!("{tag}-{:x}", std::process::id()))
}

fn sign(scheme: &HmacSignature, key: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes()).unwrap();
    mac.update(body);
    let raw = mac.finalize().into_bytes();
    match scheme.encoding {
        SignatureEncoding::Base64 => B64.encode(raw),
        SignatureEncoding::Hex => hex(&raw),
    }
}

fn signed_headers(scheme: &HmacSignature, key: &SecretString, body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        scheme.header,
        HeaderValue::from_str(&sign(scheme, key, body)).unwrap(),
    );
    if let Some(id) = scheme.id_header {
        h.insert(id, HeaderValue::from_static("delivery-7"));
    }
    h
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
fn streaming_agrees_with_one_shot_at_every_split_in_both_encodings() {
    let body =
        r#"{"id":706405506930370084,"email":"mei-ling@example.com.tw","note":"林美玲"}"#.as_bytes();
    let (good, other) = (secret("good"), secret("other"));
    for scheme in SCHEMES {
        let h = signed_headers(&scheme, &good, body);
        // Rotation: the signing secret second in the list.
        let secrets = [other.clone(), good.clone()];
        let one_shot = scheme.verify(&h, body, &secrets).unwrap();
        let expected_id = match scheme.id_header {
            Some(_) => "delivery-7".to_string(),
            None => content_id(body),
        };
        assert_eq!(one_shot.id, expected_id);
        let bad = tampered(body);
        for at in 0..=body.len() {
            let verified = streamed(scheme.begin(&h, &secrets).unwrap(), body, at)
                .finish()
                .unwrap_or_else(|e| panic!("{scheme:?} split at {at}: {e}"));
            assert_eq!(verified.delivery, one_shot, "split at {at}");
            assert_eq!(verified.content_id, content_id(body), "split at {at}");
            assert_eq!(
                streamed(scheme.begin(&h, &secrets).unwrap(), &bad, at).finish(),
                Err(WebhookError::BadSignature),
                "tampered, split at {at}"
            );
            assert_eq!(
                streamed(
                    scheme.begin(&h, std::slice::from_ref(&other)).unwrap(),
                    body,
                    at
                )
                .finish(),
                Err(WebhookError::BadSignature),
                "wrong secret, split at {at}"
            );
        }
        assert_eq!(
            scheme.verify(&h, &bad, &secrets),
            Err(WebhookError::BadSignature)
        );
        // No signature header: refused from the headers alone, as one-shot does.
        let mut unsigned = h.clone();
        unsigned.remove(scheme.header);
        assert_eq!(
            scheme.begin(&unsigned, &secrets).unwrap_err(),
            WebhookError::MissingHeader("x-test-signature")
        );
        assert_eq!(
            scheme.verify(&unsigned, body, &secrets),
            Err(WebhookError::MissingHeader("x-test-signature"))
        );
    }
}

#[test]
fn a_signature_in_the_other_encoding_is_refused() {
    let body = b"{\"event\":\"updated\"}";
    let key = secret("k");
    let [b64, hexed] = SCHEMES;
    let h = signed_headers(&b64, &key, body);
    assert_eq!(
        hexed.verify(&h, body, std::slice::from_ref(&key)),
        Err(WebhookError::BadSignature)
    );
    let h = signed_headers(&hexed, &key, body);
    assert_eq!(
        b64.verify(&h, body, std::slice::from_ref(&key)),
        Err(WebhookError::BadSignature)
    );
    assert!(hexed.verify(&h, body, std::slice::from_ref(&key)).is_ok());
}

#[test]
fn streaming_verifier_matches_one_shot_hmac_and_content_id() {
    let body = "訂單 1001 已出貨 — order 1001 shipped".as_bytes();
    let key = secret("s");
    let sig = sign(&SCHEMES[0], &key, body);
    assert!(hmac_sha256_base64_matches(
        key.expose_secret().as_bytes(),
        body,
        &sig
    ));
    // Chunks of every size from 1 byte to the whole body.
    for size in 1..=body.len() {
        let mut v = StreamingVerifier::new(std::slice::from_ref(&key));
        for chunk in body.chunks(size) {
            v.update(chunk);
        }
        assert_eq!(v.finish(&sig), Ok(content_id(body)), "chunks of {size}");
    }
    // Not base64, or no secret at all: refused.
    let mut v = StreamingVerifier::new(std::slice::from_ref(&key));
    v.update(body);
    assert_eq!(v.finish("%%%"), Err(WebhookError::BadSignature));
    let mut v = StreamingVerifier::new(&[]);
    v.update(body);
    assert_eq!(v.finish(&sig), Err(WebhookError::BadSignature));
}

#[test]
fn echoed_secrets_compare_exactly() {
    let s = secret("state");
    assert!(secret_matches(s.expose_secret(), &s));
    assert!(!secret_matches("", &s));
    assert!(!secret_matches(&format!("{}x", s.expose_secret()), &s));
}

#[test]
fn sign_writes_the_rfc_4231_vector_in_the_scheme_encoding() {
    // RFC 4231 test case 2: key "Jefe", "what do ya want for nothing?"
    let body = b"what do ya want for nothing?";
    let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    let [b64, hexed] = SCHEMES;
    assert_eq!(hexed.sign(b"Jefe", body), expected);
    assert_eq!(hex(&B64.decode(b64.sign(b"Jefe", body)).unwrap()), expected);
    // What `sign` writes, `verify` accepts under the same key only.
    let key = secret("sign");
    for scheme in SCHEMES {
        let mut h = HeaderMap::new();
        let sig = scheme.sign(key.expose_secret().as_bytes(), body);
        assert_eq!(sig, sign(&scheme, &key, body));
        h.insert(scheme.header, HeaderValue::from_str(&sig).unwrap());
        assert!(scheme.verify(&h, body, std::slice::from_ref(&key)).is_ok());
        assert_eq!(
            scheme.verify(&h, body, &[secret("other")]),
            Err(WebhookError::BadSignature)
        );
    }
}
