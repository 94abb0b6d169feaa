//! OAuth2: refresh once mid-run, single flight, rotation saved before use,
//! clear re-auth errors, and the PKCE loopback flow end to end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use synchub_core::ErrorClass;
use synchub_http::oauth::WallClock;
use synchub_http::{
    Auth, AuthFlowOptions, ExposeSecret, HttpClient, HttpError, MemoryTokenStore, OAuthConfig,
    QuotaConfig, QuotaRegistry, SecretString, TokenCipher, TokenManager, TokenSet, TokenStore,
    TokenStoreError, TokenVault,
};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

#[derive(Debug)]
pub struct ManualClock(pub Mutex<DateTime<Utc>>);

impl WallClock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

pub fn cipher() -> TokenCipher {
    TokenCipher::from_key_material(&SecretString::from("5e".repeat(32))).unwrap()
}

pub fn token_set(access: &str, refresh: &str, expires_at: DateTime<Utc>) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(access.to_string()),
        refresh_token: Some(SecretString::from(refresh.to_string())),
        expires_at: Some(expires_at),
        scopes: vec!["accounting.contacts".into()],
        extra: BTreeMap::new(),
    }
}

pub fn config(server: &MockServer) -> OAuthConfig {
    OAuthConfig::new(
        "client-1".into(),
        Some(SecretString::from("client-secret-xyz")),
        &format!("{}/authorize", server.uri()),
        &format!("{}/token", server.uri()),
        vec!["accounting.contacts".into(), "offline_access".into()],
    )
}

pub fn token_json(access: &str, refresh: &str) -> serde_json::Value {
    serde_json::json!({"access_token": access, "token_type": "Bearer", "expires_in": 1800, "refresh_token": refresh})
}

async fn setup(
    server: &MockServer,
    clock: Arc<ManualClock>,
    store: Arc<dyn TokenStore>,
) -> (Arc<TokenManager>, HttpClient, TokenVault) {
    let vault = TokenVault::new(store, cipher());
    let now = clock.now();
    vault
        .save(
            "xero-main",
            &token_set("at-1", "rt-1", now + chrono::Duration::minutes(30)),
        )
        .await
        .unwrap();
    let http = synchub_http::new_reqwest_client().unwrap();
    let manager = Arc::new(
        TokenManager::new("xero-main", config(server), vault.clone(), http).with_clock(clock),
    );
    let registry = QuotaRegistry::new();
    let client = HttpClient::builder(server.uri())
        .quota(QuotaConfig::per_second(1000, 1000))
        .retry(crate::fast_retry(2))
        .auth(Auth::OAuth(manager.clone()))
        .build_in(&registry)
        .unwrap();
    (manager, client, vault)
}

#[tokio::test]
async fn token_expiring_mid_run_is_refreshed_once_and_the_run_goes_on() {
    // GIVEN at-1 is accepted 3 times, then rejected as expired
    let server = MockServer::start().await;
    Mock::given(header("authorization", "Bearer at-1"))
        .respond_with(ResponseTemplate::new(200))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer at-1"))
        .respond_with(ResponseTemplate::new(401).set_body_string(r#"{"Title":"Unauthorized"}"#))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer at-2"))
        .respond_with(ResponseTemplate::new(200))
        .expect(9)
        .mount(&server)
        .await;
    // AND the token endpoint rotates the refresh token; it must be hit once
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json("at-2", "rt-2")))
        .expect(1)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let (manager, client, vault) =
        setup(&server, clock, Arc::new(MemoryTokenStore::default())).await;
    // WHEN the run makes 3 calls, then 9 more from 3 concurrent workers
    for _ in 0..3 {
        assert_eq!(client.get("/Contacts").send().await.unwrap().status(), 200);
    }
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                assert_eq!(c.get("/Contacts").send().await.unwrap().status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // THEN one refresh happened and the rotated refresh token is in the store
    assert_eq!(manager.refresh_count(), 1);
    let stored = vault.load("xero-main").await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "rt-2");
    assert_eq!(stored.access_token.expose_secret(), "at-2");
}

#[tokio::test]
async fn refresh_before_expiry_collapses_concurrent_callers_into_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(token_json("at-2", "rt-2"))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer at-2"))
        .respond_with(ResponseTemplate::new(200))
        .expect(8)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let (manager, client, _vault) = setup(
        &server,
        clock.clone(),
        Arc::new(MemoryTokenStore::default()),
    )
    .await;
    // GIVEN the token is 29 minutes old (within the 2-minute refresh margin)
    *clock.0.lock().unwrap() += chrono::Duration::minutes(29);
    // WHEN 8 requests start at once
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get("/x").send().await.unwrap().status() })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    // THEN only one refresh ran
    assert_eq!(manager.refresh_count(), 1);
}

#[derive(Debug)]
struct FailingStore(MemoryTokenStore, Mutex<bool>);

#[async_trait::async_trait]
impl TokenStore for FailingStore {
    async fn load(&self, instance: &str) -> Result<Option<String>, TokenStoreError> {
        self.0.load(instance).await
    }
    async fn save(&self, instance: &str, sealed: &str) -> Result<(), TokenStoreError> {
        if *self.1.lock().unwrap() {
            return Err(TokenStoreError("disk full".into()));
        }
        self.0.save(instance, sealed).await
    }
}

#[tokio::test]
async fn new_tokens_are_not_used_when_they_cannot_be_saved() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json("at-2", "rt-2")))
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer at-2"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let store = Arc::new(FailingStore(MemoryTokenStore::default(), Mutex::new(false)));
    let (_m, client, _v) = setup(&server, clock.clone(), store.clone()).await;
    *store.1.lock().unwrap() = true;
    *clock.0.lock().unwrap() += chrono::Duration::minutes(31);
    let err = client.get("/x").send().await.unwrap_err();
    assert!(matches!(err, HttpError::TokenStore(_)), "{err}");
}

#[tokio::test]
async fn revoked_refresh_token_asks_to_run_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_grant"})),
        )
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let (_m, client, _v) = setup(
        &server,
        clock.clone(),
        Arc::new(MemoryTokenStore::default()),
    )
    .await;
    *clock.0.lock().unwrap() += chrono::Duration::hours(2);
    let err = client.get("/x").send().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Reauth);
    assert!(err.to_string().contains("synchub auth xero-main"), "{err}");
}

#[tokio::test]
async fn missing_token_asks_to_run_auth() {
    let server = MockServer::start().await;
    let vault = TokenVault::new(Arc::new(MemoryTokenStore::default()), cipher());
    let manager = TokenManager::new(
        "qbo-1",
        config(&server),
        vault,
        synchub_http::new_reqwest_client().unwrap(),
    );
    let err = manager.access_token().await.unwrap_err();
    assert!(
        err.to_string().contains("run `synchub auth qbo-1`"),
        "{err}"
    );
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_and_loopback_callback() {
    // GIVEN a fake authorization server that approves at once
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/authorize"))
        .respond_with(|req: &Request| {
            let q: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
            assert_eq!(
                q.get("code_challenge_method").map(String::as_str),
                Some("S256")
            );
            assert!(q.get("code_challenge").is_some_and(|c| c.len() >= 43));
            assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
            let to = format!(
                "{}?code=the-code&state={}&realmId=9130350000000001",
                q["redirect_uri"], q["state"]
            );
            ResponseTemplate::new(302).insert_header("Location", to.as_str())
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=the-code"))
        .and(body_string_contains("code_verifier="))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json("at-new", "rt-new")))
        .expect(1)
        .mount(&server)
        .await;
    let options = AuthFlowOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        timeout: Duration::from_secs(10),
        ..AuthFlowOptions::default()
    };
    let vault = TokenVault::new(Arc::new(MemoryTokenStore::default()), cipher());
    // WHEN the "browser" follows the printed URL
    let outcome = synchub_http::authorize_and_store(
        "qbo-1",
        &config(&server),
        &options,
        &vault,
        synchub_http::new_reqwest_client().unwrap(),
        |prompt| {
            assert!(prompt.redirect_uri.starts_with("http://127.0.0.1:"));
            let url = prompt.url.clone();
            tokio::spawn(async move {
                let page = reqwest::get(url).await.unwrap();
                assert!(page
                    .text()
                    .await
                    .unwrap()
                    .contains("authorization received"));
            });
        },
    )
    .await
    .unwrap();
    // THEN tokens are returned, with the realm id, and stored encrypted
    assert_eq!(outcome.tokens.access_token.expose_secret(), "at-new");
    assert_eq!(
        outcome.tokens.extra.get("realmId").map(String::as_str),
        Some("9130350000000001")
    );
    let stored = vault.load("qbo-1").await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "rt-new");
}
