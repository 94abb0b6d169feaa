//! Retries: Retry-After honoured, 503 storms end with a clear error,
//! writes retried only when idempotent.

use std::time::{Duration, Instant};

use synchub_core::ErrorClass;
use synchub_http::{HttpClient, HttpError, IdempotencyKey, QuotaConfig, QuotaRegistry};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer, registry: &QuotaRegistry, attempts: u32) -> HttpClient {
    HttpClient::builder(server.uri())
        .quota(QuotaConfig::per_second(100, 100))
        .retry(crate::fast_retry(attempts))
        .build_in(registry)
        .unwrap()
}

#[tokio::test]
async fn forced_429_with_retry_after_is_waited_out_then_succeeds() {
    // GIVEN a server that answers 429 Retry-After: 1 once, then 200
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .with_priority(2)
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let start = Instant::now();
    // WHEN we GET
    let resp = client(&server, &registry, 3)
        .get("/Contacts")
        .send()
        .await
        .unwrap();
    // THEN the call waited out the second and succeeded on the second attempt
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.attempts(), 2);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn storm_of_503_ends_with_a_clear_error_naming_the_host() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let err = client(&server, &registry, 4)
        .get("/x")
        .send()
        .await
        .unwrap_err();
    let host = server.address().to_string();
    let text = err.to_string();
    assert!(text.contains(&host), "{text}");
    assert!(text.contains("after 4 attempt"), "{text}");
    assert!(text.contains("503"), "{text}");
    assert_eq!(err.class(), ErrorClass::Retry);
    let ce: synchub_core::ConnectorError = err.into();
    assert!(
        matches!(ce, synchub_core::ConnectorError::Unavailable { ref host, .. } if host.contains("127.0.0.1"))
    );
}

#[tokio::test]
async fn non_idempotent_write_is_not_retried_after_503() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let resp = client(&server, &registry, 4)
        .post("/Contacts")
        .json(&serde_json::json!({"Name": "王小明"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.error_for_status().is_err());
}

#[tokio::test]
async fn write_with_idempotency_key_is_retried_with_the_same_key() {
    let server = MockServer::start().await;
    // As a header (an accounting API's Idempotency-Key) and as a query parameter (another's requestid).
    Mock::given(method("POST"))
        .and(path("/Contacts"))
        .and(header("Idempotency-Key", "outbox-42"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Contacts"))
        .and(header("Idempotency-Key", "outbox-42"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/company/1/customer"))
        .and(query_param("requestid", "outbox-43"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/company/1/customer"))
        .and(query_param("requestid", "outbox-43"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let c = client(&server, &registry, 4);
    let xero = c
        .post("/Contacts")
        .json(&serde_json::json!({}))
        .idempotency_key(IdempotencyKey::header("Idempotency-Key", "outbox-42", Some(128)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!((xero.status().as_u16(), xero.attempts()), (200, 2));
    let qbo = c
        .post("/v3/company/1/customer")
        .json(&serde_json::json!({}))
        .idempotency_key(IdempotencyKey::query("requestid", "outbox-43"))
        .send()
        .await
        .unwrap();
    assert_eq!((qbo.status().as_u16(), qbo.attempts()), (200, 2));
}

#[tokio::test]
async fn timeouts_retry_reads_but_not_plain_writes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&server)
        .await;
    let registry = QuotaRegistry::new();
    let c = client(&server, &registry, 2);
    let read = c
        .get("/slow")
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(read.to_string().contains("after 2 attempt"), "{read}");
    let write = c
        .post("/slow")
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(write.to_string().contains("outcome is unknown"), "{write}");
}

#[tokio::test]
async fn refused_connection_names_the_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let registry = QuotaRegistry::new();
    let c = HttpClient::builder(format!("http://{addr}"))
        .retry(crate::fast_retry(3))
        .build_in(&registry)
        .unwrap();
    let err = c.post("/x").send().await.unwrap_err();
    assert!(
        matches!(err, HttpError::Unavailable { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn a_host_that_does_not_exist_fails_at_once_as_configuration() {
    // GIVEN a misspelled host (`.invalid` never resolves)
    let registry = QuotaRegistry::new();
    let client = HttpClient::builder("http://no-such-shop.invalid")
        .quota(QuotaConfig::per_second(100, 100))
        .retry(crate::fast_retry(6))
        .build_in(&registry)
        .unwrap();
    // WHEN we GET
    let err = client.get("/admin").send().await.unwrap_err();
    // THEN no retries: one configuration error naming the host
    assert_eq!(err.class(), ErrorClass::Config, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("no-such-shop.invalid") && text.contains("does not exist"),
        "{text}"
    );
}
