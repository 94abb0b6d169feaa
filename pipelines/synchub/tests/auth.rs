//! `synchub auth INSTANCE` end to end: the binary finds the instance in the
//! pipeline files, listens on a loopback callback, prints the authorization
//! URL; a "browser" (this test) comes back with a code; the binary exchanges
//! it with the PKCE verifier at a token endpoint (wiremock) and stores the
//! tokens encrypted. No secret appears in any output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use synchub_http::{ExposeSecret, TokenCipher, TokenStore, TokenVault};
use synchub_store::tokens::SqlTokenStore;
use synchub_store::Store;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64
const CLIENT_SECRET: &str = "client-secret-7f3a9c";
const ACCESS: &str = "access-token-51d0e8b2";
const REFRESH: &str = "refresh-token-c49a7e11";

fn write_pipeline(dir: &Path, token_url: &str) {
    write_pipeline_with(
        dir,
        token_url,
        "tenant_id = \"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f\"",
    );
}

/// The pipeline with `settings` as the connection's top-level config keys.
fn write_pipeline_with(dir: &Path, token_url: &str, settings: &str) {
    let text = format!(
        r#"
version = 1
name = "books"

[[connections]]
name = "books_tw"
kind = "xero"
direction = "two-way"

[connections.config]
{settings}

[connections.config.oauth]
provider = "generic"
client_id = "synchub-test-client"
client_secret = "${{TEST_OAUTH_CLIENT_SECRET}}"
auth_url = "https://login.example.test/authorize"
token_url = "{token_url}"
scopes = ["offline_access", "accounting.contacts"]
redirect_uri = "http://127.0.0.1:0/callback"
timeout_seconds = 60
"#
    );
    std::fs::write(dir.join("books.toml"), text).unwrap();
    // A file that is not a pipeline does not stop the search.
    std::fs::write(dir.join("notes.toml"), "not = [valid").unwrap();
}

fn query_param(url: &str, name: &str) -> String {
    let parsed = reqwest::Url::parse(url).unwrap();
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("{name} missing in {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_runs_pkce_flow_and_stores_tokens_encrypted() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=code-from-browser"))
        .and(body_string_contains("code_verifier="))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": ACCESS,
            "refresh_token": REFRESH,
            "token_type": "Bearer",
            "expires_in": 1800,
        })))
        .expect(1)
        .mount(&provider)
        .await;

    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), &format!("{}/token", provider.uri()));
    let db = format!("sqlite://{}", dir.path().join("crm.db").display());

    let mut child = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["auth", "books_tw", "--config-dir"])
        .arg(dir.path())
        .env("SYNCHUB_DATABASE_URL", &db)
        .env("SYNCHUB_SECRET_KEY", KEY)
        .env("TEST_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .env("SYNCHUB_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The binary prints the authorization URL once its listener is up.
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let auth_url = loop {
        let line = line_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("authorization URL printed");
        printed.push(line.clone());
        if line
            .trim_start()
            .starts_with("https://login.example.test/authorize")
        {
            break line.trim().to_string();
        }
    };
    assert_eq!(query_param(&auth_url, "response_type"), "code");
    assert_eq!(query_param(&auth_url, "client_id"), "synchub-test-client");
    assert_eq!(query_param(&auth_url, "code_challenge_method"), "S256");
    assert!(query_param(&auth_url, "scope").contains("accounting.contacts"));
    let challenge = query_param(&auth_url, "code_challenge");
    let state = query_param(&auth_url, "state");
    let redirect = query_param(&auth_url, "redirect_uri");
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");

    // The browser comes back with the code and the provider's extras.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "{redirect}?code=code-from-browser&state={state}&realmId=9130350"
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    reader.join().unwrap();
    printed.extend(line_rx.try_iter());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let all_stdout = printed.join("\n");
    assert!(out.status.success(), "auth failed:\n{all_stdout}\n{stderr}");
    assert!(all_stdout.contains("signed in"), "{all_stdout}");
    assert!(all_stdout.contains("realmId = 9130350"), "{all_stdout}");

    // PKCE: the verifier sent to the token endpoint hashes to the challenge.
    let requests = provider.received_requests().await.unwrap();
    let body = String::from_utf8(requests[0].body.clone()).unwrap();
    let verifier = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("code_verifier="))
        .unwrap();
    let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    assert_eq!(
        digest, challenge,
        "code_verifier does not match code_challenge"
    );

    // No secret in any output.
    for secret in [CLIENT_SECRET, ACCESS, REFRESH, KEY] {
        assert!(!all_stdout.contains(secret), "stdout leaks {secret}");
        assert!(!stderr.contains(secret), "stderr leaks {secret}");
    }

    // Stored sealed; readable with the key.
    let store = Store::connect(&db).await.unwrap();
    let tokens = SqlTokenStore::new(store.clone());
    let sealed = tokens.load("books_tw").await.unwrap().expect("token row");
    assert!(!sealed.contains(ACCESS) && !sealed.contains(REFRESH));
    let cipher = TokenCipher::from_key_material(&KEY.to_string().into()).unwrap();
    let vault = TokenVault::new(Arc::new(tokens), cipher);
    let set = vault.load("books_tw").await.unwrap().unwrap();
    assert_eq!(set.access_token.expose_secret(), ACCESS);
    assert_eq!(set.refresh_token.unwrap().expose_secret(), REFRESH);
    assert_eq!(
        set.extra.get("realmId").map(String::as_str),
        Some("9130350")
    );
    assert!(set.expires_at.is_some());
}

#[test]
fn auth_without_secret_key_fails_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), "http://127.0.0.1:9/token");
    let db = format!("sqlite://{}", dir.path().join("crm.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["auth", "books_tw", "--config-dir"])
        .arg(dir.path())
        .env("SYNCHUB_DATABASE_URL", &db)
        .env_remove("SYNCHUB_SECRET_KEY")
        .env("TEST_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stderr.contains("SYNCHUB_SECRET_KEY"), "{stderr}");
    assert!(!stdout.contains("open this address"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn auth_names_the_instances_it_knows() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), "http://127.0.0.1:9/token");
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["auth", "books_hk", "--config-dir"])
        .arg(dir.path())
        .env("SYNCHUB_SECRET_KEY", KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("books_hk"), "{stderr}");
    assert!(stderr.contains("books_tw"), "{stderr}");
}

#[test]
fn auth_reports_missing_env_var_by_key() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), "http://127.0.0.1:9/token");
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["auth", "books_tw", "--config-dir"])
        .arg(dir.path())
        .env("SYNCHUB_SECRET_KEY", KEY)
        .env_remove("TEST_OAUTH_CLIENT_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("TEST_OAUTH_CLIENT_SECRET"), "{stderr}");
    assert!(stderr.contains("books.toml"), "{stderr}");
}

/// Settings `synchub run` would refuse are refused by `synchub auth` too,
/// through the same typed parse, before anything listens or signs in.
#[test]
fn auth_refuses_a_connection_run_would_refuse() {
    for (settings, named) in [
        // No tenant: the Xero connector cannot run.
        ("", "tenant_id"),
        // A misspelt key: strict settings.
        (
            "tenant_id = \"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f\"\ntennant = \"x\"",
            "tennant",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_pipeline_with(dir.path(), "http://127.0.0.1:9/token", settings);
        let db = format!("sqlite://{}", dir.path().join("crm.db").display());
        let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
            .args(["auth", "books_tw", "--config-dir"])
            .arg(dir.path())
            .env("SYNCHUB_DATABASE_URL", &db)
            .env("SYNCHUB_SECRET_KEY", KEY)
            .env("TEST_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{settings}: {stdout}");
        assert!(stderr.contains(named), "{settings}: {stderr}");
        assert!(stderr.contains("books.toml"), "{stderr}");
        assert!(!stdout.contains("open this address"), "{stdout}");
        assert!(!stderr.contains(CLIENT_SECRET), "{stderr}");
    }
}

/// A connection whose `oauth` table names another provider is refused by
/// run and auth alike: the connection's kind decides the endpoints.
#[test]
fn auth_refuses_an_oauth_table_for_another_provider() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), "http://127.0.0.1:9/token");
    let path = dir.path().join("books.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("provider = \"generic\"", "provider = \"quickbooks\"");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_synchub"))
        .args(["auth", "books_tw", "--config-dir"])
        .arg(dir.path())
        .env("SYNCHUB_SECRET_KEY", KEY)
        .env("TEST_OAUTH_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("oauth.provider") && stderr.contains("quickbooks"),
        "{stderr}"
    );
}
