//! The runtime half of the connector contract: how a connector is built
//! from its settings, what it is handed, and the capability a webhook
//! source adds.
//!
//! A connector crate implements [`ConnectorFactory`] once: a strictly
//! typed `Config`, a `KIND`, and `build(config, &Deps)`. The registry holds
//! erased [`DynFactory`] values (a blanket implementation over
//! [`Factory<F>`]), so adding a connector to the binary is one line, and
//! every command (run, daemon, auth, check) parses a connection's settings
//! the same way, with errors that name the key path.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use synchub_core::{Connector, ConnectorError, WebhookAction};
use tokio_util::sync::CancellationToken;

use crate::oauth::vault::TokenVault;
use crate::oauth::{SharedClock, SignIn, SystemClock};
use crate::webhook::{PendingDelivery, ReplayGuard, VerifiedDelivery, WebhookError};
use crate::{ClientBuilder, HttpClient, QuotaRegistry};

/// The longest single wait a connector may sleep (a daily cap, a long
/// `Retry-After`): anything longer ends the run with a retry error naming
/// when to come back, instead of holding a run (and shutdown) for hours.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// What a connector is handed when it is built: everything with a lifetime
/// longer than one run, so no connector reaches for a global.
#[derive(Clone)]
pub struct Deps {
    /// The connection's name in the pipeline (`connections[].name`).
    pub connection: String,
    /// The directory relative paths in settings are resolved against.
    pub base_dir: PathBuf,
    /// Where OAuth tokens are kept (sealed in the store), when the command
    /// opened one; `None` while a pipeline is only being checked.
    pub tokens: Option<TokenVault>,
    /// The wall clock (a fixed one in tests).
    pub clock: SharedClock,
    /// Per-credential quotas, shared by every connector of the process.
    pub quotas: &'static QuotaRegistry,
    /// Cancelled on shutdown: waits end early.
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("connection", &self.connection)
            .field("base_dir", &self.base_dir)
            .field("tokens", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl Deps {
    /// Dependencies for one connection, with the system clock, the global
    /// quota registry, no token store and a token nobody cancels.
    pub fn new(connection: impl Into<String>, base_dir: impl Into<PathBuf>) -> Self {
        Deps {
            connection: connection.into(),
            base_dir: base_dir.into(),
            tokens: None,
            clock: Arc::new(SystemClock),
            quotas: QuotaRegistry::global(),
            cancel: CancellationToken::new(),
        }
    }

    /// With a token store.
    pub fn with_tokens(mut self, tokens: TokenVault) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// With a cancellation token (the daemon's shutdown).
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// With another clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds an HTTP client whose quota lives in [`quotas`](Self::quotas).
    pub fn http(&self, builder: ClientBuilder) -> Result<HttpClient, crate::HttpError> {
        builder.build_in(self.quotas)
    }

    /// Sleeps `wait`, capped and cancellable: a wait longer than
    /// [`MAX_WAIT`] is not slept but returned as a retry error naming when
    /// to come back; shutdown ends the wait with [`ConnectorError::Cancelled`].
    pub async fn wait(&self, wait: Duration, host: &str, why: &str) -> Result<(), ConnectorError> {
        if wait > MAX_WAIT {
            return Err(ConnectorError::Unavailable {
                host: host.to_string(),
                message: format!("{why}; resumes in {} s", wait.as_secs()),
                retry_after: Some(wait),
            });
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = self.cancel.cancelled() => Err(ConnectorError::Cancelled(format!("waiting for {host}: {why}"))),
        }
    }
}

/// A built connection: the connector, and its webhook side when it has one.
#[derive(Clone)]
pub struct Built {
    /// The connector.
    pub connector: Arc<dyn Connector>,
    /// The webhook side, for sources that send webhooks.
    pub webhooks: Option<Arc<dyn WebhookSource>>,
}

impl Built {
    /// A connector without webhooks.
    pub fn connector(connector: Arc<dyn Connector>) -> Self {
        Built {
            connector,
            webhooks: None,
        }
    }
}

/// One connector kind, typed. Implemented once per connector crate.
pub trait ConnectorFactory: Send + Sync + 'static {
    /// The `kind` in `[[connections]]`, e.g. `csv`.
    const KIND: &'static str;
    /// The connection's `config` table, strictly typed (deny unknown keys).
    type Config: DeserializeOwned + Send + 'static;

    /// Builds a connection from checked settings; no IO.
    fn build(config: Self::Config, deps: &Deps) -> Result<Built, ConnectorError>;

    /// How `synchub auth` signs this connection in (its [`OAuthSettings`]
    /// over the provider's [`OAuthProvider`](crate::OAuthProvider)), from
    /// the same typed settings `build` takes; `None` for connectors that do
    /// not sign in with OAuth2.
    ///
    /// [`OAuthSettings`]: crate::OAuthSettings
    fn sign_in(config: &Self::Config) -> Result<Option<SignIn>, ConnectorError> {
        let _ = config;
        Ok(None)
    }
}

/// The erased form the registry holds (one per kind).
pub trait DynFactory: Send + Sync {
    /// The connector kind.
    fn kind(&self) -> &'static str;
    /// Parses `settings` (the `config` table) and builds; errors name the
    /// key path under `key` (e.g. `connections[2].config`).
    fn build(
        &self,
        key: &str,
        settings: &serde_json::Value,
        deps: &Deps,
    ) -> Result<Built, ConnectorError>;

    /// Parses `settings` exactly as [`build`](Self::build) does, builds
    /// (so that a connection `run` would refuse is refused here too), and
    /// returns how it signs in; `None` when it does not sign in with OAuth2.
    fn sign_in(
        &self,
        key: &str,
        settings: &serde_json::Value,
        deps: &Deps,
    ) -> Result<Option<SignIn>, ConnectorError>;
}

/// The blanket adapter from a typed factory to [`DynFactory`].
pub struct Factory<F>(PhantomData<fn() -> F>);

impl<F> Factory<F> {
    /// The erased factory of `F`.
    pub const fn new() -> Self {
        Factory(PhantomData)
    }
}

impl<F> Default for Factory<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: ConnectorFactory> DynFactory for Factory<F> {
    fn kind(&self) -> &'static str {
        F::KIND
    }

    fn build(
        &self,
        key: &str,
        settings: &serde_json::Value,
        deps: &Deps,
    ) -> Result<Built, ConnectorError> {
        let config = parse::<F>(key, settings)?;
        F::build(config, deps).map_err(|e| at_key(key, e))
    }

    fn sign_in(
        &self,
        key: &str,
        settings: &serde_json::Value,
        deps: &Deps,
    ) -> Result<Option<SignIn>, ConnectorError> {
        let config = parse::<F>(key, settings)?;
        let sign_in = F::sign_in(&config).map_err(|e| at_key(key, e))?;
        F::build(config, deps).map_err(|e| at_key(key, e))?;
        Ok(sign_in)
    }
}

/// The one typed parse of a connection's `config` table; errors name the
/// key path under `key`.
fn parse<F: ConnectorFactory>(
    key: &str,
    settings: &serde_json::Value,
) -> Result<F::Config, ConnectorError> {
    serde_path_to_error::deserialize(settings.clone())
        .map_err(|e| ConnectorError::Config(format!("key `{key}.{}`: {}", e.path(), e.inner())))
}

/// A setting error of the connector, prefixed with the connection's key.
fn at_key(key: &str, e: ConnectorError) -> ConnectorError {
    match e {
        ConnectorError::Config(m) if !m.contains("key `") => {
            ConnectorError::Config(format!("key `{key}`: {m}"))
        }
        other => other,
    }
}

/// How a delivery's body is checked, decided from its headers alone.
#[derive(Debug)]
pub enum BodyCheck {
    /// Signed: the body is verified as it streams in.
    Signed(PendingDelivery),
    /// Unsigned but allowed if short (an activation ping): read at most
    /// `max` bytes and take it only if `accept` says so.
    Unsigned {
        /// The most bytes worth reading.
        max: usize,
        /// Recognises the allowed unsigned body.
        accept: fn(&[u8]) -> bool,
    },
}

/// The reply to a subscription handshake, sent before any verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of the reply.
    pub content_type: &'static str,
    /// The body (e.g. Graph's `validationToken`, echoed).
    pub body: String,
}

/// The webhook capability of a source.
#[async_trait::async_trait]
pub trait WebhookSource: Send + Sync {
    /// A subscription handshake (a `validationToken`
    /// query): answered before anything else. `None`: not a handshake.
    fn handshake(&self, raw_query: Option<&str>, headers: &HeaderMap) -> Option<Handshake> {
        let _ = (raw_query, headers);
        None
    }

    /// Looks at the headers only: a delivery without its signature header
    /// is refused before its body is read.
    fn begin(&self, headers: &HeaderMap) -> Result<BodyCheck, WebhookError>;

    /// De-duplicates (through `guard`) and classifies a verified delivery.
    async fn classify(
        &self,
        delivery: &VerifiedDelivery,
        headers: &HeaderMap,
        body: &[u8],
        guard: &dyn ReplayGuard,
    ) -> Result<WebhookAction, WebhookError>;

    /// Creates or renews the source's subscription to `callback_url`
    /// (Graph subscriptions expire within days); returns when to renew
    /// next. Sources whose webhooks are registered by hand return `None`.
    async fn renew(&self, callback_url: &str) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let _ = callback_url;
        Ok(None)
    }
}
