//! The token manager of one connector instance: hands out access tokens,
//! refreshes them shortly before expiry and once after a 401, collapses
//! concurrent refreshes into one (single flight), and saves a rotated
//! refresh token to the store before the new tokens are used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use oauth2::RefreshToken;

use super::vault::TokenVault;
use super::{map_token_error, oauth_http, OAuthConfig, SharedClock, SystemClock, TokenSet};
use crate::error::HttpError;
use crate::secret::{ExposeSecret, SecretString};

/// An access token handed to one request, with the generation it came from
/// (so that a 401 refreshes only if nobody refreshed in between).
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub(crate) generation: u64,
    pub(crate) secret: SecretString,
}

impl AccessToken {
    /// The token value, for callers that must place it themselves.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }
}

/// Tokens of one connector instance.
#[derive(Debug)]
pub struct TokenManager {
    instance: String,
    config: OAuthConfig,
    vault: TokenVault,
    http: reqwest::Client,
    clock: SharedClock,
    margin: Duration,
    current: RwLock<Option<(u64, Arc<TokenSet>)>>,
    refresh_lock: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
}

impl TokenManager {
    /// A manager for `instance`; tokens are loaded from the vault on first use.
    pub fn new(
        instance: impl Into<String>,
        config: OAuthConfig,
        vault: TokenVault,
        http: reqwest::Client,
    ) -> Self {
        Self {
            instance: instance.into(),
            config,
            vault,
            http,
            clock: Arc::new(SystemClock),
            margin: Duration::from_secs(120),
            current: RwLock::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            refreshes: AtomicU64::new(0),
        }
    }

    /// Uses another wall clock (tests).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Refresh this long before the access token expires (default 2 minutes).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How many refreshes this manager has performed.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }

    fn snapshot(&self) -> Option<(u64, Arc<TokenSet>)> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fresh(&self, set: &TokenSet) -> bool {
        match set.expires_at {
            None => true,
            Some(at) => {
                let margin = chrono::Duration::from_std(self.margin).unwrap_or_default();
                self.clock.now() + margin < at
            }
        }
    }

    /// A valid access token, refreshing first if it is about to expire.
    pub async fn access_token(&self) -> Result<AccessToken, HttpError> {
        let (generation, set) = match self.snapshot() {
            Some(s) => s,
            None => self.load().await?,
        };
        if self.fresh(&set) {
            return Ok(AccessToken {
                generation,
                secret: set.access_token.clone(),
            });
        }
        self.refresh_if(generation, false).await
    }

    /// Called after the server rejected a token of `generation`: refreshes
    /// unless another task already did.
    pub async fn refresh_rejected(&self, generation: u64) -> Result<AccessToken, HttpError> {
        self.refresh_if(generation, true).await
    }

    async fn load(&self) -> Result<(u64, Arc<TokenSet>), HttpError> {
        let _guard = self.refresh_lock.lock().await;
        if let Some(s) = self.snapshot() {
            return Ok(s);
        }
        let set = self
            .vault
            .load(&self.instance)
            .await?
            .ok_or_else(|| HttpError::Auth {
                host: self.config.token_host(),
                message: format!(
                    "no OAuth token stored for {0}; run `synchub auth {0}`",
                    self.instance
                ),
            })?;
        let s = (1, Arc::new(set));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
        Ok(s)
    }

    async fn refresh_if(&self, seen: u64, force: bool) -> Result<AccessToken, HttpError> {
        let _guard = self.refresh_lock.lock().await;
        let (generation, old) = match self.snapshot() {
            Some(s) => s,
            None => {
                drop(_guard);
                return Box::pin(self.access_token()).await;
            }
        };
        if generation != seen || (!force && self.fresh(&old)) {
            // Someone else refreshed while we waited for the lock.
            return Ok(AccessToken {
                generation,
                secret: old.access_token.clone(),
            });
        }
        let refresh = old.refresh_token.as_ref().ok_or_else(|| HttpError::Auth {
            host: self.config.token_host(),
            message: format!(
                "the access token of {0} expired and there is no refresh token; run `synchub auth {0}`",
                self.instance
            ),
        })?;
        let client = self.config.client()?;
        let http = self.http.clone();
        let resp = client
            .exchange_refresh_token(&RefreshToken::new(refresh.expose_secret().to_string()))
            .request_async(move |r| oauth_http(http, r))
            .await
            .map_err(|e| map_token_error(self.config.token_host(), &self.instance, e))?;
        let mut new = TokenSet::from_response(&resp, self.clock.now());
        let rotated = new.refresh_token.is_some();
        if new.refresh_token.is_none() {
            new.refresh_token = old.refresh_token.clone();
        }
        if new.scopes.is_empty() {
            new.scopes = old.scopes.clone();
        }
        new.extra = old.extra.clone();
        // Persist before anyone uses the new tokens: the old refresh token
        // may already be invalid, and the process may die at any moment.
        self.vault.save(&self.instance, &new).await?;
        let next = generation + 1;
        let token = AccessToken {
            generation: next,
            secret: new.access_token.clone(),
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some((next, Arc::new(new)));
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        tracing::info!(instance = %self.instance, rotated, "refreshed OAuth access token");
        Ok(token)
    }
}
