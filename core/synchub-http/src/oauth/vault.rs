//! Encrypted token persistence. A [`TokenStore`] keeps opaque sealed
//! strings per connector instance; the [`TokenVault`] seals token sets with
//! ChaCha20-Poly1305 under a key from `SYNCHUB_SECRET_KEY`, binding each
//! ciphertext to its instance id, so a store only ever sees ciphertext.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::TokenSet;
use crate::error::HttpError;
use crate::secret::{ExposeSecret, SecretString};

/// The environment variable holding the token encryption key.
pub const SECRET_KEY_VAR: &str = "SYNCHUB_SECRET_KEY";
const SEAL_PREFIX: &str = "v1.";

/// A failure of the underlying token store.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenStoreError(pub String);

/// Durable storage of sealed (encrypted) tokens per connector instance.
/// `save` must be durable when it returns: a rotated refresh token is saved
/// before it is used, and the process may be killed right after.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The sealed token set of an instance, if any.
    async fn load(&self, instance: &str) -> Result<Option<String>, TokenStoreError>;
    /// Replaces the sealed token set of an instance.
    async fn save(&self, instance: &str, sealed: &str) -> Result<(), TokenStoreError>;
}

/// The token encryption key.
pub struct TokenCipher {
    cipher: ChaCha20Poly1305,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCipher([REDACTED])")
    }
}

impl TokenCipher {
    /// Reads the key from `SYNCHUB_SECRET_KEY`.
    pub fn from_env() -> Result<Self, HttpError> {
        let value = std::env::var(SECRET_KEY_VAR).map_err(|_| {
            HttpError::Config(format!(
                "{SECRET_KEY_VAR} is not set: OAuth tokens are stored encrypted with it; \
                 set it to 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"
            ))
        })?;
        Self::from_key_material(&SecretString::from(value))
    }

    /// A key from 32 random bytes written in base64 (`openssl rand -base64 32`)
    /// or in hex (`openssl rand -hex 32`). Anything else, a passphrase in
    /// particular, is refused: one unsalted hash of a phrase a person can
    /// remember is a key an attacker can guess.
    pub fn from_key_material(material: &SecretString) -> Result<Self, HttpError> {
        let text = material.expose_secret().trim();
        let key = decode_key(text).ok_or_else(|| {
            HttpError::Config(format!(
                "{SECRET_KEY_VAR} must be 32 random bytes in base64 or hex, e.g. \
                 `openssl rand -base64 32` (got {} characters that are neither; \
                 passphrases are not accepted). Tokens sealed under an earlier \
                 passphrase cannot be opened with a new key: set the new key and run \
                 `synchub auth CONNECTION` again for each OAuth connection",
                text.chars().count()
            ))
        })?;
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    /// Encrypts `plain`, bound to `instance`.
    pub fn seal(&self, instance: &str, plain: &[u8]) -> Result<String, HttpError> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: instance.as_bytes(),
                },
            )
            .map_err(|_| HttpError::TokenStore("cannot encrypt token".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{SEAL_PREFIX}{}", B64.encode(out)))
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same instance.
    pub fn open(&self, instance: &str, sealed: &str) -> Result<Vec<u8>, HttpError> {
        let bad = || {
            HttpError::TokenStore(format!(
                "stored token of {instance} cannot be decrypted (wrong {SECRET_KEY_VAR}?); \
                 run `synchub auth {instance}` again"
            ))
        };
        let raw = sealed.strip_prefix(SEAL_PREFIX).ok_or_else(bad)?;
        let bytes = B64.decode(raw).map_err(|_| bad())?;
        if bytes.len() < 12 {
            return Err(bad());
        }
        let (nonce, ct) = bytes.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: instance.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }
}

/// 32 bytes from base64 (standard or URL-safe, padded or not) or 64 hex digits.
fn decode_key(text: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        [B64, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())?
    };
    bytes.try_into().ok()
}

#[derive(Serialize, Deserialize)]
struct Plain {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

/// Seals token sets into a [`TokenStore`].
#[derive(Debug, Clone)]
pub struct TokenVault {
    store: Arc<dyn TokenStore>,
    cipher: Arc<Result<TokenCipher, String>>,
}

impl TokenVault {
    /// A vault whose key comes from `SYNCHUB_SECRET_KEY`; a missing key is
    /// reported when a token is first loaded or saved.
    pub fn from_env(store: Arc<dyn TokenStore>) -> Self {
        Self {
            store,
            cipher: Arc::new(TokenCipher::from_env().map_err(|e| e.to_string())),
        }
    }

    /// A vault with an explicit key.
    pub fn new(store: Arc<dyn TokenStore>, cipher: TokenCipher) -> Self {
        Self {
            store,
            cipher: Arc::new(Ok(cipher)),
        }
    }

    fn cipher(&self) -> Result<&TokenCipher, HttpError> {
        self.cipher
            .as_ref()
            .as_ref()
            .map_err(|e| HttpError::Config(e.clone()))
    }

    /// Loads and decrypts the tokens of an instance.
    pub async fn load(&self, instance: &str) -> Result<Option<TokenSet>, HttpError> {
        let cipher = self.cipher()?;
        let Some(sealed) = self
            .store
            .load(instance)
            .await
            .map_err(|e| HttpError::TokenStore(e.to_string()))?
        else {
            return Ok(None);
        };
        let plain: Plain = serde_json::from_slice(&cipher.open(instance, &sealed)?)
            .map_err(|_| HttpError::TokenStore(format!("stored token of {instance} is corrupt")))?;
        let set = TokenSet {
            access_token: SecretString::from(plain.access_token),
            refresh_token: plain.refresh_token.map(SecretString::from),
            expires_at: plain.expires_at,
            scopes: plain.scopes,
            extra: plain.extra,
        };
        set.register();
        Ok(Some(set))
    }

    /// Encrypts and durably saves the tokens of an instance.
    pub async fn save(&self, instance: &str, set: &TokenSet) -> Result<(), HttpError> {
        let cipher = self.cipher()?;
        let plain = Plain {
            access_token: set.access_token.expose_secret().to_string(),
            refresh_token: set
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_string()),
            expires_at: set.expires_at,
            scopes: set.scopes.clone(),
            extra: set.extra.clone(),
        };
        let json = serde_json::to_vec(&plain)
            .map_err(|e| HttpError::TokenStore(format!("cannot encode token: {e}")))?;
        let sealed = cipher.seal(instance, &json)?;
        self.store
            .save(instance, &sealed)
            .await
            .map_err(|e| HttpError::TokenStore(e.to_string()))
    }
}

/// An in-memory store (tests, one-shot runs).
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    map: Mutex<HashMap<String, String>>,
}

#[async_trait::async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, instance: &str) -> Result<Option<String>, TokenStoreError> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(instance).cloned())
    }

    async fn save(&self, instance: &str, sealed: &str) -> Result<(), TokenStoreError> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(instance.to_string(), sealed.to_string());
        Ok(())
    }
}

/// A JSON file of sealed tokens, replaced atomically (write, fsync, rename).
#[derive(Debug)]
pub struct FileTokenStore {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl FileTokenStore {
    /// A store at `path` (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn read_map(path: &PathBuf) -> Result<BTreeMap<String, String>, TokenStoreError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TokenStoreError(format!("{} is corrupt: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(TokenStoreError(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self, instance: &str) -> Result<Option<String>, TokenStoreError> {
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        let map = tokio::task::spawn_blocking(move || Self::read_map(&path))
            .await
            .map_err(|e| TokenStoreError(e.to_string()))??;
        Ok(map.get(instance).cloned())
    }

    async fn save(&self, instance: &str, sealed: &str) -> Result<(), TokenStoreError> {
        use std::io::Write as _;
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        let (instance, sealed) = (instance.to_string(), sealed.to_string());
        tokio::task::spawn_blocking(move || {
            let mut map = Self::read_map(&path)?;
            map.insert(instance, sealed);
            let io = |e: std::io::Error| {
                TokenStoreError(format!("cannot write {}: {e}", path.display()))
            };
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            let json = serde_json::to_vec(&map).map_err(|e| TokenStoreError(e.to_string()))?;
            f.write_all(&json).map_err(io)?;
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| TokenStoreError(e.to_string()))?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::from_key_material(&SecretString::from("5e".repeat(32))).unwrap()
    }

    #[test]
    fn a_passphrase_is_refused_with_what_to_do() {
        // GIVEN a long passphrase, which one unsalted SHA-256 used to stretch into a key
        let err = TokenCipher::from_key_material(&SecretString::from(
            "correct horse battery staple".to_string(),
        ))
        .unwrap_err()
        .to_string();
        // THEN it is refused, saying what a key is, how to make one and what to re-run
        assert!(err.contains(SECRET_KEY_VAR), "{err}");
        assert!(err.contains("openssl rand -base64 32"), "{err}");
        assert!(err.contains("synchub auth"), "{err}");
        assert!(!err.contains("horse"), "the passphrase leaked: {err}");
        for short in ["short", "0123456789abcdef", &"ab".repeat(31)] {
            assert!(
                TokenCipher::from_key_material(&SecretString::from(short.to_string())).is_err()
            );
        }
    }

    #[test]
    fn a_key_in_base64_or_hex_is_the_same_key() {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = TokenCipher::from_key_material(&SecretString::from(B64.encode(raw))).unwrap();
        let sealed = b64.seal("i", b"x").unwrap();
        for text in [
            hex.clone(),
            hex.to_uppercase(),
            format!("  {}\n", B64.encode(raw)),
        ] {
            let c = TokenCipher::from_key_material(&SecretString::from(text)).unwrap();
            assert_eq!(c.open("i", &sealed).unwrap(), b"x");
        }
    }

    #[test]
    fn seal_open_round_trip_bound_to_instance() {
        let c = cipher();
        let sealed = c.seal("books-main", b"hello").unwrap();
        assert!(!sealed.contains("hello"));
        assert_eq!(c.open("books-main", &sealed).unwrap(), b"hello");
        assert!(c.open("books-other", &sealed).is_err());
    }

    #[tokio::test]
    async fn missing_key_is_a_clear_error_at_use() {
        let vault = TokenVault {
            store: Arc::new(MemoryTokenStore::default()),
            cipher: Arc::new(Err(format!("{SECRET_KEY_VAR} is not set"))),
        };
        let set = TokenSet {
            access_token: SecretString::from("at"),
            refresh_token: None,
            expires_at: None,
            scopes: vec![],
            extra: BTreeMap::new(),
        };
        let err = vault.save("x", &set).await.unwrap_err();
        assert!(err.to_string().contains(SECRET_KEY_VAR));
    }
}
