//! Webhook verifiers, byte for byte against the fixtures in shared/api-notes.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use synchub_http::webhook::{
    msgraph_notifications, msgraph_validation_token, verify_quickbooks, verify_shopify,
    verify_woocommerce, verify_xero, MemoryReplayGuard, ReplayGuard, WebhookError, WooDelivery,
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

#[test]
fn shopify_fixture_verifies_and_rotation_accepts_either_secret() {
    let f = fixture("shopify/webhook_customers_update.json");
    let (h, body) = (headers(&f["headers"]), f["raw_body"].as_str().unwrap());
    let d = verify_shopify(&h, body.as_bytes(), &[secret("shpss_test_secret")]).unwrap();
    assert_eq!(d.id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    verify_shopify(
        &h,
        body.as_bytes(),
        &[secret("new_secret"), secret("shpss_test_secret")],
    )
    .unwrap();
    assert_eq!(
        verify_shopify(&h, body.as_bytes(), &[secret("wrong")]),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        verify_shopify(&h, &tampered(body), &[secret("shpss_test_secret")]),
        Err(WebhookError::BadSignature)
    );
    assert!(matches!(
        verify_shopify(&HeaderMap::new(), body.as_bytes(), &[secret("x")]),
        Err(WebhookError::MissingHeader(_))
    ));
}

#[test]
fn woocommerce_fixture_verifies_and_ping_is_recognised() {
    let f = fixture("woocommerce/webhook_customer_updated.json");
    let (h, body) = (headers(&f["headers"]), f["raw_body"].as_str().unwrap());
    let got = verify_woocommerce(&h, body.as_bytes(), &secret("wc_test_secret")).unwrap();
    assert!(matches!(got, WooDelivery::Event(d) if d.id == "7c9d2f0a4b1e6c3d8a5f2e1b0c9d8e7f"));
    assert!(verify_woocommerce(&h, &tampered(body), &secret("wc_test_secret")).is_err());
    let ping = &f["ping_example"];
    let got = verify_woocommerce(
        &headers(&ping["headers"]),
        ping["raw_body"].as_str().unwrap().as_bytes(),
        &secret("wc_test_secret"),
    );
    assert_eq!(got, Ok(WooDelivery::Ping));
}

#[test]
fn quickbooks_legacy_and_cloudevents_fixtures_verify() {
    for name in [
        "quickbooks/webhook_legacy.json",
        "quickbooks/webhook_cloudevents.json",
    ] {
        let f = fixture(name);
        let (h, body) = (headers(&f["headers"]), f["raw_body"].as_str().unwrap());
        verify_quickbooks(&h, body.as_bytes(), &secret("qbo_verifier_test")).unwrap();
        assert!(verify_quickbooks(&h, &tampered(body), &secret("qbo_verifier_test")).is_err());
        assert!(verify_quickbooks(&h, body.as_bytes(), &secret("other")).is_err());
    }
}

#[test]
fn xero_fixture_verifies() {
    let f = fixture("xero/webhook_contact_update.json");
    let s = &f["_signed_example"];
    let mut h = HeaderMap::new();
    h.insert(
        "x-xero-signature",
        HeaderValue::from_str(s["x-xero-signature"].as_str().unwrap()).unwrap(),
    );
    let body = s["raw_body"].as_str().unwrap();
    verify_xero(&h, body.as_bytes(), &secret("xero_webhook_key_test")).unwrap();
    assert!(verify_xero(&h, &tampered(body), &secret("xero_webhook_key_test")).is_err());
    // Intent to receive: an empty, wrongly signed payload must be refused (401).
    assert!(verify_xero(
        &h,
        br#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"x"}"#,
        &secret("xero_webhook_key_test")
    )
    .is_err());
}

#[test]
fn msgraph_client_state_and_validation_token() {
    let f = fixture("msgraph/change_notification.json");
    let body = serde_json::to_vec(&f).unwrap();
    let ok = msgraph_notifications(&body, &secret("secretClientValue")).unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].0.id, "lsgTZMr9KwAAA");
    assert!(msgraph_notifications(&body, &secret("another"))
        .unwrap()
        .is_empty());
    assert_eq!(
        msgraph_validation_token(
            "validationToken=Validation%3A%20Testing%20client%20application%20reachability"
        ),
        Some("Validation: Testing client application reachability".to_string())
    );
    assert_eq!(msgraph_validation_token("foo=bar"), None);
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
