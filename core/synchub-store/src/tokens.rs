//! OAuth token persistence for `synchub-http`: implements its
//! [`TokenStore`](synchub_http::TokenStore) over the `oauth_token` table.
//! The runtime seals token sets before they get here, so the table only ever
//! holds ciphertext. A save is one committed statement: a rotated refresh
//! token survives the process being killed right after `save` returns.

use sqlx::Row;
use synchub_http::{TokenStore, TokenStoreError};

use crate::{now_text, Store};

/// The store's [`TokenStore`].
#[derive(Debug, Clone)]
pub struct SqlTokenStore {
    store: Store,
}

impl SqlTokenStore {
    /// Token persistence on this store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn failed(what: &str, e: sqlx::Error) -> TokenStoreError {
    TokenStoreError(format!("database error while {what}: {e}"))
}

#[async_trait::async_trait]
impl TokenStore for SqlTokenStore {
    async fn load(&self, instance: &str) -> Result<Option<String>, TokenStoreError> {
        let row = sqlx::query("SELECT sealed FROM oauth_token WHERE instance = $1")
            .bind(instance)
            .fetch_optional(self.store.pool())
            .await
            .map_err(|e| failed("loading an OAuth token", e))?;
        row.map(|r| r.try_get::<String, _>("sealed"))
            .transpose()
            .map_err(|e| failed("reading an OAuth token", e))
    }

    async fn save(&self, instance: &str, sealed: &str) -> Result<(), TokenStoreError> {
        sqlx::query(
            "INSERT INTO oauth_token (instance, sealed, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO UPDATE SET sealed = excluded.sealed, \
             updated_at = excluded.updated_at",
        )
        .bind(instance)
        .bind(sealed)
        .bind(now_text())
        .execute(self.store.pool())
        .await
        .map_err(|e| failed("saving an OAuth token", e))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Includes the SIGKILL test: a child process refreshes a token whose
    //! refresh token rotates, prints, and is killed; the parent then reads
    //! the rotated token back from SQLite.
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    use synchub_http::{
        ExposeSecret, OAuthConfig, SecretString, TokenCipher, TokenManager, TokenSet, TokenVault,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const CHILD_ENV: &str = "SYNCHUB_STORE_TOKENS_CHILD";

    fn cipher() -> TokenCipher {
        TokenCipher::from_key_material(&SecretString::from("5e".repeat(32))).unwrap()
    }

    fn db_url(name: &str) -> (std::path::PathBuf, String) {
        let dir =
            std::env::temp_dir().join(format!("synchub-tokens-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let url = format!("sqlite://{}", path.display());
        (dir, url)
    }

    fn config(base: &str) -> OAuthConfig {
        OAuthConfig::new(
            "client-1".into(),
            Some(SecretString::from("client-secret-xyz")),
            &format!("{base}/authorize"),
            &format!("{base}/token"),
            vec![],
        )
    }

    /// A one-route token endpoint that rotates rt-1 into rt-2; counts calls.
    async fn token_server() -> (String, Arc<std::sync::atomic::AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if req.contains("refresh_token=rt-1") {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (
                        "200 OK",
                        r#"{"access_token":"at-2","token_type":"Bearer","expires_in":1800,"refresh_token":"rt-2"}"#,
                    )
                } else {
                    ("400 Bad Request", r#"{"error":"invalid_grant"}"#)
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        (base, calls)
    }

    #[tokio::test]
    async fn sealed_tokens_round_trip_and_overwrite() {
        let (dir, url) = db_url("roundtrip");
        let store = SqlTokenStore::new(Store::connect(&url).await.unwrap());
        assert_eq!(store.load("a").await.unwrap(), None);
        store.save("a", "v1.one").await.unwrap();
        store.save("a", "v1.two").await.unwrap();
        assert_eq!(store.load("a").await.unwrap().as_deref(), Some("v1.two"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn rotated_refresh_token_survives_sigkill_in_sqlite() {
        let (base, calls) = token_server().await;
        let (dir, url) = db_url("sigkill");
        // GIVEN an expired token with refresh token rt-1 in SQLite
        let store = Store::connect(&url).await.unwrap();
        let vault = TokenVault::new(Arc::new(SqlTokenStore::new(store.clone())), cipher());
        let expired = TokenSet {
            access_token: SecretString::from("at-1"),
            refresh_token: Some(SecretString::from("rt-1")),
            expires_at: Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
            scopes: vec![],
            extra: BTreeMap::new(),
        };
        vault.save("xero-main", &expired).await.unwrap();
        store.close().await;
        // WHEN a child process refreshes and is SIGKILLed right after
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tokens::tests::child_refreshes_then_hangs",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, format!("{base}|{url}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = tokio::task::spawn_blocking(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains("REFRESHED"))
        })
        .await
        .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen, "child never refreshed");
        // THEN SQLite holds the rotated refresh token, and one refresh happened
        let store = Store::connect(&url).await.unwrap();
        let vault = TokenVault::new(Arc::new(SqlTokenStore::new(store.clone())), cipher());
        let set = vault.load("xero-main").await.unwrap().unwrap();
        assert_eq!(set.refresh_token.unwrap().expose_secret(), "rt-2");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    #[ignore = "run as a child process by rotated_refresh_token_survives_sigkill_in_sqlite"]
    async fn child_refreshes_then_hangs() {
        let Ok(spec) = std::env::var(CHILD_ENV) else {
            return;
        };
        let (base, url) = spec.split_once('|').unwrap();
        let store = Store::connect(url).await.unwrap();
        let vault = TokenVault::new(Arc::new(SqlTokenStore::new(store)), cipher());
        let http = synchub_http::new_reqwest_client().unwrap();
        let manager = TokenManager::new("xero-main", config(base), vault, http);
        let token = manager.access_token().await.unwrap();
        assert_eq!(token.secret().expose_secret(), "at-2");
        println!("REFRESHED");
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}
