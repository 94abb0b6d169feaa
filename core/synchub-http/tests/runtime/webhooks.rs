//! Webhook verifiers, byte for byte against the fixtures in shared/api-notes.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use synchub_http::webhook::{
    content_id, HmacSignature, MemoryReplayGuard, ReplayGuard, WebhookError,
};
use synchub_http::SecretString;

fn fixture(rel: &str) -> serde_json::Value {
    let p = format!(
        "{}/../../../shared/api-notes/fixtures/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn headers(v: &serde_json::Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, val) in v.as_object().unwrap() {
        h.insert(
            HeaderName::try_from(k.as_str()).unwrap(),
            HeaderValue::from_str(val.as_str().unwrap()).unwrap(),
        );
    }
    h
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn tampered(body: &str) -> Vec<u8> {
    let mut b = body.as_bytes().to_vec();
    let i = b.len() / 2;
    b[i] ^= 1;
    b
}

/// The schemes the connectors declare, written out here (the runtime's
/// tests cannot depend on the connector crates).
const SHOP_A: HmacSignature =
    HmacSignature::base64("x-shopify-hmac-sha256", Some("x-shopify-webhook-id"));
const SHOP_B: HmacSignature =
    HmacSignature::base64("x-wc-webhook-signature", Some("x-wc-webhook-delivery-id"));
const BOOKS_A: HmacSignature = HmacSignature::base64("intuit-signature", None);
const BOOKS_B: HmacSignature = HmacSignature::base64("x-xero-signature", None);

#[test]
fn recorded_shop_deliveries_verify_and_rotation_accepts_either_secret() {
    for (scheme, file, secret_text, id) in [
        (
            SHOP_A,
            "shopify/webhook_customers_update.json",
            "shpss_test_secret",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
        (
            SHOP_B,
            "woocommerce/webhook_customer_updated.json",
            "wc_test_secret",
            "7c9d2f0a4b1e6c3d8a5f2e1b0c9d8e7f",
        ),
    ] {
        let f = fixture(file);
        let (h, body) = (headers(&f["headers"]), f["raw_body"].as_str().unwrap());
        let d = scheme
            .verify(&h, body.as_bytes(), &[secret(secret_text)])
            .unwrap();
        assert_eq!(d.id, id, "{file}");
        scheme
            .verify(
                &h,
                body.as_bytes(),
                &[secret("new_secret"), secret(secret_text)],
            )
            .unwrap();
        assert_eq!(
            scheme.verify(&h, body.as_bytes(), &[secret("wrong")]),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            scheme.verify(&h, &tampered(body), &[secret(secret_text)]),
            Err(WebhookError::BadSignature)
        );
        assert!(matches!(
            scheme.verify(&HeaderMap::new(), body.as_bytes(), &[secret("x")]),
            Err(WebhookError::MissingHeader(_))
        ));
    }
}

#[test]
fn recorded_accounting_deliveries_verify_with_the_body_hash_as_id() {
    for name in [
        "quickbooks/webhook_legacy.json",
        "quickbooks/webhook_cloudevents.json",
    ] {
        let f = fixture(name);
        let (h, body) = (headers(&f["headers"]), f["raw_body"].as_str().unwrap());
        let key = [secret("qbo_verifier_test")];
        let d = BOOKS_A.verify(&h, body.as_bytes(), &key).unwrap();
        assert_eq!(d.id, content_id(body.as_bytes()));
        assert!(BOOKS_A.verify(&h, &tampered(body), &key).is_err());
        assert!(BOOKS_A
            .verify(&h, body.as_bytes(), &[secret("other")])
            .is_err());
    }
    let f = fixture("xero/webhook_contact_update.json");
    let s = &f["_signed_example"];
    let mut h = HeaderMap::new();
    h.insert(
        "x-xero-signature",
        HeaderValue::from_str(s["x-xero-signature"].as_str().unwrap()).unwrap(),
    );
    let body = s["raw_body"].as_str().unwrap();
    let key = [secret("xero_webhook_key_test")];
    BOOKS_B.verify(&h, body.as_bytes(), &key).unwrap();
    assert!(BOOKS_B.verify(&h, &tampered(body), &key).is_err());
    // Intent to receive: an empty, wrongly signed payload must be refused (401).
    assert!(BOOKS_B
        .verify(
            &h,
            br#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"x"}"#,
            &key
        )
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn replays_are_recognised_by_delivery_id_until_the_ttl() {
    let guard = MemoryReplayGuard::new(Duration::from_secs(60), 1000);
    assert!(guard.first_seen("b54557e4").await);
    assert!(!guard.first_seen("b54557e4").await);
    assert!(guard.first_seen("other").await);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(guard.first_seen("b54557e4").await);
}
