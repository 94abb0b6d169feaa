//! A secret never appears in any log line or error text.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use synchub_http::secret::RedactingMakeWriter;
use synchub_http::{
    Auth, HttpClient, MemoryTokenStore, QuotaConfig, QuotaRegistry, SecretString, TokenManager,
    TokenVault,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::oauth::{cipher, config, token_set};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

const SECRETS: &[&str] = &[
    "at-secret-0001",
    "rt-secret-0001",
    "at-secret-0002",
    "rt-secret-0002",
    "client-secret-xyz",
    "shpat_static_token_123",
];

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_logs_or_error_texts() {
    // GIVEN raw (unredacted) and redacted log captures at TRACE level
    let raw = Capture::default();
    let redacted = Capture::default();
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(raw.clone())
                .with_ansi(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(RedactingMakeWriter::new(redacted.clone()))
                .with_ansi(false),
        )
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let _guard = tracing::subscriber::set_default(subscriber);

    // AND a server that rejects the first token, rotates it, and then echoes
    // the new token back in an error body (as badly behaved APIs do)
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crate::oauth::token_json("at-secret-0002", "rt-secret-0002")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/first"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/first"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_string("bad token at-secret-0002 for refresh_token=rt-secret-0002"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/static"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let vault = TokenVault::new(Arc::new(MemoryTokenStore::default()), cipher());
    vault
        .save(
            "inst",
            &token_set(
                "at-secret-0001",
                "rt-secret-0001",
                Utc::now() + chrono::Duration::hours(1),
            ),
        )
        .await
        .unwrap();
    let manager = Arc::new(TokenManager::new(
        "inst",
        config(&server),
        vault,
        synchub_http::new_reqwest_client().unwrap(),
    ));
    let registry = QuotaRegistry::new();
    let client = HttpClient::builder(server.uri())
        .quota(QuotaConfig::per_second(100, 100))
        .retry(crate::fast_retry(2))
        .auth(Auth::OAuth(manager.clone()))
        .build_in(&registry)
        .unwrap();
    let shop = HttpClient::builder(server.uri())
        .credential("static")
        .retry(crate::fast_retry(2))
        .auth(Auth::header(
            "X-Shopify-Access-Token",
            SecretString::from("shpat_static_token_123"),
        ))
        .build_in(&registry)
        .unwrap();

    // WHEN requests fail in every way we know
    let mut texts = Vec::new();
    let resp = client.get("/first").send().await.unwrap();
    let err = resp.error_for_status().unwrap_err();
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    let err = shop.get("/static").send().await.unwrap_err();
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    texts.push(format!("{client:?} {shop:?} {manager:?}"));
    tracing::info!(
        token = "at-secret-0002",
        "a careless log line with a secret"
    );

    // THEN no secret is in any error text or Debug output
    for text in &texts {
        for s in SECRETS {
            assert!(!text.contains(s), "secret {s} leaked in: {text}");
        }
    }
    // AND our own logs never carry one (the raw capture only has the careless line)
    let raw = String::from_utf8(raw.0.lock().unwrap().clone()).unwrap();
    assert!(
        raw.contains("refreshing the access token once"),
        "expected runtime logs:\n{raw}"
    );
    let careless = "a careless log line";
    for line in raw.lines().filter(|l| !l.contains(careless)) {
        for s in SECRETS {
            assert!(!line.contains(s), "secret {s} in log line: {line}");
        }
    }
    // AND the redacting writer scrubs even the careless line
    let redacted = String::from_utf8(redacted.0.lock().unwrap().clone()).unwrap();
    assert!(redacted.contains(careless));
    for s in SECRETS {
        assert!(
            !redacted.contains(s),
            "secret {s} in redacted log:\n{redacted}"
        );
    }
}
