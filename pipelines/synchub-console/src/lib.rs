//! The synchub ops console: server-rendered pages over the store — find a
//! customer and see them whole, work the queues the syncs could not finish
//! (dead letters, conflicts, duplicate review, refused pushes), and watch
//! the pipelines — behind a login with roles (docs/console.md).
//!
//! [`router`] is an axum router with its state applied: `synchub daemon`
//! merges it beside its webhooks, health and metrics, and `synchub
//! console` serves it alone. Every change made through it goes through the
//! same store and engine functions as the command line (`conflicts
//! resolve`, `dead-letters replay`, `review merge`, `merges unmerge`) and
//! is written to the audit log with who and when.
//!
//! No JavaScript and no asset from elsewhere: the pages are HTML with one
//! stylesheet served here and inline SVG charts.

mod auth;
mod credentials;
mod customers;
mod layout;
mod pipelines;
mod queues;
mod replay;
mod search;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use synchub_engine::{Engine, EngineError};
use synchub_store::{Store, StoreError};

pub use auth::{hash_password, verify_password, MIN_PASSWORD_CHARS};
pub use search::find_contacts;

/// How the console is served.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure`: the console is served over TLS or
    /// behind an `https://` origin (a request forwarded with
    /// `X-Forwarded-Proto: https` gets it as well).
    pub secure_cookies: bool,
    /// How long a session lasts after login.
    pub session_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// A pipeline the console knows: it replays dead letters through its
/// engine and shows when it runs next.
#[derive(Clone)]
pub struct PipelineHandle {
    /// The pipeline's name (as in the run log).
    pub name: String,
    /// Its engine, with its connections built.
    pub engine: Arc<Engine>,
    /// Its schedule, if it has one.
    pub every: Option<Duration>,
}

impl std::fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHandle")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// The console's state.
pub struct Console {
    store: Store,
    pipelines: Vec<PipelineHandle>,
    config: ConsoleConfig,
    /// A hash checked when the login name is unknown, so a wrong name
    /// takes as long as a wrong password.
    decoy_hash: String,
    /// Opens the stored OAuth tokens to show when they expire (never the
    /// tokens themselves).
    vault: synchub_http::TokenVault,
}

impl Console {
    /// A console over `store`, replaying through `pipelines`.
    pub fn new(
        store: Store,
        pipelines: Vec<PipelineHandle>,
        config: ConsoleConfig,
    ) -> Result<Console, ConsoleError> {
        let decoy_hash = hash_password("synchub decoy password, never a real one")?;
        // The key of the process (`SYNCHUB_SECRET_KEY`), as its connectors use.
        let vault = synchub_http::TokenVault::from_env(Arc::new(
            synchub_store::tokens::SqlTokenStore::new(store.clone()),
        ));
        Ok(Console {
            store,
            pipelines,
            config,
            decoy_hash,
            vault,
        })
    }

    /// Reads token expiry through `vault` instead of one keyed from the
    /// environment.
    pub fn with_token_vault(mut self, vault: synchub_http::TokenVault) -> Console {
        self.vault = vault;
        self
    }
}

/// An error of the console's own making.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A password could not be hashed or checked.
    #[error("argon2 hashing failed: {0}")]
    Password(String),
}

/// The console's routes, state applied.
pub fn router(console: Console) -> Router {
    let state = Arc::new(console);
    Router::new()
        .route("/", get(customers::home))
        .route("/console.css", get(layout::stylesheet))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/customers", get(customers::search_page))
        .route("/customers/:id", get(customers::customer_page))
        .route("/merges/:id/unmerge", post(customers::unmerge))
        .route("/queues/dead-letters", get(queues::dead_letters))
        .route("/queues/dead-letters/:id", get(queues::dead_letter))
        .route("/queues/dead-letters/:id/replay", post(queues::replay_one))
        .route("/queues/dead-letters/replay-all", post(queues::replay_all))
        .route("/queues/conflicts", get(queues::conflicts))
        .route("/queues/conflicts/:id/resolve", post(queues::resolve))
        .route("/queues/reviews", get(queues::reviews))
        .route("/queues/reviews/:id/merge", post(queues::merge_review))
        .route("/queues/reviews/:id/keep-apart", post(queues::keep_apart))
        .route("/queues/refused", get(queues::refused))
        .route("/pipelines", get(pipelines::pipelines_page))
        .route("/runs/:number", get(pipelines::run_page))
        .route("/audit", get(pipelines::audit_page))
        .with_state(state)
}

type Shared = Arc<Console>;

/// A page that could not be served: its status and why, shown as a page.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    pub(crate) fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        PageError {
            status,
            title,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        PageError::new(StatusCode::NOT_FOUND, "Not found", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        PageError::new(StatusCode::CONFLICT, "Not done", message)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "console: store error");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Store error",
            synchub_http::secret::redact(&e.to_string()).into_owned(),
        )
    }
}

impl From<EngineError> for PageError {
    fn from(e: EngineError) -> Self {
        let text = synchub_http::secret::redact(&e.to_string()).into_owned();
        match e {
            EngineError::Invalid(_) => PageError::conflict(text),
            _ => {
                tracing::error!(error = %text, "console: engine error");
                PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "Sync engine error", text)
            }
        }
    }
}

impl From<ConsoleError> for PageError {
    fn from(e: ConsoleError) -> Self {
        match e {
            ConsoleError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "console error");
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Console error",
                    other.to_string(),
                )
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        layout::html(
            self.status,
            layout::page(
                self.title,
                None,
                maud::html! {
                    h1 { (self.title) }
                    p.error { (self.message) }
                    p { a href="/" { "Back to the console" } }
                },
            ),
        )
    }
}

type PageResult = Result<Response, PageError>;
