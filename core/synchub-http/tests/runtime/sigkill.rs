//! A rotated refresh token survives a SIGKILL right after the refresh: the
//! child process refreshes (the token endpoint rotates the refresh token),
//! reports, and is killed; the parent then finds the new token in the store.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::Utc;
use synchub_http::{ExposeSecret, FileTokenStore, TokenManager, TokenVault};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::oauth::{cipher, token_json, token_set};

const CHILD_ENV: &str = "SYNCHUB_HTTP_SIGKILL_CHILD";

#[tokio::test]
async fn rotated_refresh_token_survives_sigkill_after_refresh() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json("at-2", "rt-2")))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    // GIVEN an expired token with refresh token rt-1 on disk
    let vault = TokenVault::new(Arc::new(FileTokenStore::new(&file)), cipher());
    vault
        .save(
            "xero-main",
            &token_set("at-1", "rt-1", Utc::now() - chrono::Duration::minutes(1)),
        )
        .await
        .unwrap();
    // WHEN a child process refreshes and is SIGKILLed right after
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill::child_refreshes_then_hangs",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{}", server.uri(), file.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("REFRESHED"))
    })
    .await
    .unwrap();
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(line.is_some(), "child never refreshed");
    // THEN the rotated refresh token is what the store holds
    let vault = TokenVault::new(Arc::new(FileTokenStore::new(&file)), cipher());
    let set = vault.load("xero-main").await.unwrap().unwrap();
    assert_eq!(set.refresh_token.unwrap().expose_secret(), "rt-2");
    assert_eq!(set.access_token.expose_secret(), "at-2");
}

/// The child half; does nothing unless started by the test above.
#[tokio::test]
#[ignore = "run as a child process by rotated_refresh_token_survives_sigkill_after_refresh"]
async fn child_refreshes_then_hangs() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (uri, file) = spec.split_once('|').unwrap();
    let server_cfg = synchub_http::OAuthConfig::new(
        "client-1".into(),
        Some(synchub_http::SecretString::from("client-secret-xyz")),
        &format!("{uri}/authorize"),
        &format!("{uri}/token"),
        vec![],
    );
    let vault = TokenVault::new(Arc::new(FileTokenStore::new(file)), cipher());
    let manager = TokenManager::new(
        "xero-main",
        server_cfg,
        vault,
        synchub_http::new_reqwest_client().unwrap(),
    );
    let token = manager.access_token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "at-2");
    println!("REFRESHED");
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
}
