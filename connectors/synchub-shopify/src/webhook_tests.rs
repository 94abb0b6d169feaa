//! Webhook tests against the recorded delivery (signed with the throw-away
//! secret named in the fixture) and against freshly generated secrets.

use super::*;
use std::time::Duration;
use synchub_http::webhook::MemoryReplayGuard;

fn guard() -> MemoryReplayGuard {
    MemoryReplayGuard::new(Duration::from_secs(3600), 16)
}

fn fixture() -> Value {
    let path = format!(
        "{}/tests/fixtures/webhook_customers_update.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn headers_of(fx: &Value) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (k, v) in fx["headers"].as_object().expect("headers") {
        let name = http::HeaderName::try_from(k.as_str()).expect("name");
        headers.insert(
            name,
            v.as_str().expect("value").parse().expect("header value"),
        );
    }
    headers
}

fn throwaway_secret() -> String {
    // generated per run so no key material lives in the source
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(7);
    format!("shpss_{:x}", t.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[tokio::test]
async fn recorded_delivery_verifies_byte_for_byte_and_is_deduplicated() {
    let fx = fixture();
    let body = fx["raw_body"].as_str().expect("raw body").as_bytes();
    let headers = headers_of(&fx);
    let fixture_secret = ["shpss_", "test_secret"].concat();
    let secrets = vec![
        SecretString::from(throwaway_secret()),
        SecretString::from(fixture_secret),
    ];
    let dedupe = guard();
    let outcome = handle_webhook(&secrets, &headers, body, &dedupe)
        .await
        .expect("verified");
    assert_eq!(
        outcome,
        WebhookAction::Sync {
            object: ObjectKind::Contact,
            deleted: None
        }
    );
    // Shopify retries with the same X-Shopify-Webhook-Id
    assert_eq!(
        handle_webhook(&secrets, &headers, body, &dedupe).await,
        Ok(WebhookAction::Nothing("duplicate"))
    );
}

#[tokio::test]
async fn tampered_body_or_wrong_secret_is_refused_before_parsing() {
    let fx = fixture();
    let headers = headers_of(&fx);
    let mut body = fx["raw_body"].as_str().expect("raw").as_bytes().to_vec();
    let good = vec![SecretString::from(["shpss_", "test_secret"].concat())];
    let dedupe = guard();
    let wrong = vec![SecretString::from(throwaway_secret())];
    assert_eq!(
        handle_webhook(&wrong, &headers, &body, &dedupe).await,
        Err(WebhookError::BadSignature)
    );
    body[10] ^= 1;
    assert_eq!(
        handle_webhook(&good, &headers, &body, &dedupe).await,
        Err(WebhookError::BadSignature)
    );
    let mut unsigned = headers.clone();
    unsigned.remove("x-shopify-hmac-sha256");
    assert_eq!(
        handle_webhook(&good, &unsigned, &body, &dedupe).await,
        Err(WebhookError::MissingHeader("x-shopify-hmac-sha256"))
    );
    assert_eq!(
        handle_webhook(&[], &headers, &body, &dedupe).await,
        Err(WebhookError::Malformed(NO_SECRET.into()))
    );
}

#[tokio::test]
async fn delete_topic_yields_a_deleted_record() {
    let secret = throwaway_secret();
    let body = br#"{"id":706405506930370084}"#;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-shopify-topic", "customers/delete".parse().expect("v"));
    headers.insert("x-shopify-webhook-id", "w-1".parse().expect("v"));
    headers.insert(
        "x-shopify-hmac-sha256",
        sign(secret.as_bytes(), body).parse().expect("v"),
    );
    let secrets = vec![SecretString::from(secret)];
    let outcome = handle_webhook(&secrets, &headers, body, &guard())
        .await
        .expect("ok");
    let WebhookAction::Sync {
        object,
        deleted: Some(rec),
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(object, ObjectKind::Contact);
    assert!(rec.deleted);
    assert_eq!(rec.external_id, "gid://shopify/Customer/706405506930370084");
}

#[tokio::test]
async fn privacy_topics_are_verified_then_ignored() {
    let secret = throwaway_secret();
    let body = br#"{"shop_id":1}"#;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-shopify-topic", "customers/redact".parse().expect("v"));
    headers.insert("x-shopify-webhook-id", "w-2".parse().expect("v"));
    headers.insert(
        "x-shopify-hmac-sha256",
        sign(secret.as_bytes(), body).parse().expect("v"),
    );
    let outcome = handle_webhook(&[SecretString::from(secret)], &headers, body, &guard()).await;
    assert_eq!(outcome, Ok(WebhookAction::Nothing("ignored")));
}
