//! synchub-http: the connector HTTP runtime. The only place an HTTP client
//! is built. It provides:
//! - [`HttpClient`]: requests through a per-credential [`quota`] (governor
//!   rate + burst, concurrency, daily cap) and server-informed throttles
//!   (the [`budget`] headers and [`cost`] bucket the connector's policy reads),
//!   with [`retry`] (capped exponential backoff, full jitter, `Retry-After`)
//!   that retries writes only when they are idempotent; a connector's
//!   [`ResponsePolicy`] classifies its API's answers (throttled with the
//!   wait the server implies, transient, auth, permanent) and reports its
//!   cost bucket; TLS trusts the platform's store plus a per-client `ca_file`;
//! - [`oauth`]: token refresh (single flight, rotation saved before use),
//!   encrypted persistence, and the PKCE loopback flow behind `synchub auth`;
//! - [`secret`]: typed secrets, `${ENV}` expansion, log redaction;
//! - [`shared_budget`]: one rate budget per credential shared by every instance
//!   (a store-backed token bucket installed at start-up);
//! - [`webhook`]: signature verification by a scheme the connector
//!   declares, and the replay guard.
//!
//! It knows no provider by name: every provider's endpoints, limits,
//! headers and signature schemes are declared in that connector's crate
//! (`tests/no_provider_names.rs` keeps it so).
#![warn(missing_docs)]

mod auth;
pub mod budget;
pub mod client;
pub mod connect;
pub mod cost;
pub mod error;
pub mod oauth;
pub mod policy;
pub mod quota;
pub mod request;
pub mod retry;
pub mod secret;
pub mod shared_budget;
mod throttle;
pub mod webhook;

pub use auth::Auth;
pub use budget::{Budget, BudgetHeader};
pub use client::{new_reqwest_client, new_reqwest_client_trusting, ClientBuilder, HttpClient};
pub use connect::{
    BodyCheck, Built, ConnectorFactory, Deps, DynFactory, Factory, Handshake, WebhookSource,
};
pub use cost::CostReport;
pub use error::HttpError;
pub use oauth::flow::{authorize, authorize_and_store, AuthFlowOptions, AuthOutcome, AuthPrompt};
pub use oauth::vault::{
    FileTokenStore, MemoryTokenStore, TokenCipher, TokenStore, TokenStoreError, TokenVault,
};
pub use oauth::{
    OAuthConfig, OAuthProvider, OAuthSettings, SignIn, TokenManager, TokenSet, WallClock,
};
pub use policy::{Assessment, ResponsePolicy, StatusPolicy, Verdict};
pub use quota::{QuotaConfig, QuotaRegistry};
pub use request::{IdempotencyKey, RequestBuilder, Response};
pub use retry::RetryPolicy;
pub use secret::{ExposeSecret, SecretString};
