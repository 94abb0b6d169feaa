//! `synchub auth INSTANCE`: the OAuth2 authorization-code flow with PKCE and
//! a loopback callback (RFC 8252). The caller shows the authorization URL to
//! the user; the user's browser comes back to `http://127.0.0.1:PORT/callback`
//! with a code, which is exchanged (with the PKCE verifier) for tokens.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::vault::TokenVault;
use super::{map_token_error, oauth_http, OAuthConfig, SharedClock, SystemClock, TokenSet};
use crate::error::HttpError;
use std::sync::Arc;

/// Where and how long to listen for the callback.
#[derive(Debug, Clone)]
pub struct AuthFlowOptions {
    /// Loopback address to listen on; port 0 picks a free port (only if the
    /// provider accepts any loopback port; most need the registered one).
    pub listen: SocketAddr,
    /// Path of the callback.
    pub callback_path: String,
    /// How long to wait for the user.
    pub timeout: Duration,
}

impl Default for AuthFlowOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8749)),
            callback_path: "/callback".into(),
            timeout: Duration::from_secs(300),
        }
    }
}

/// What to show the user.
#[derive(Debug, Clone)]
pub struct AuthPrompt {
    /// Open this in a browser.
    pub url: String,
    /// The redirect URI registered with the provider must equal this.
    pub redirect_uri: String,
}

/// The result of a completed flow.
#[derive(Debug, Clone)]
pub struct AuthOutcome {
    /// The tokens; callback extras (e.g. a company id like `realmId`) are in `tokens.extra`.
    pub tokens: TokenSet,
}

/// Runs the flow and returns the tokens (not saved; see [`authorize_and_store`]).
///
/// `prompt` is called once the listener is up; the CLI prints the URL (and
/// may open a browser).
pub async fn authorize(
    config: &OAuthConfig,
    options: &AuthFlowOptions,
    http: reqwest::Client,
    prompt: impl FnOnce(&AuthPrompt),
) -> Result<AuthOutcome, HttpError> {
    authorize_with_clock(config, options, http, Arc::new(SystemClock), prompt).await
}

/// Runs the flow and saves the tokens of `instance` in the vault.
pub async fn authorize_and_store(
    instance: &str,
    config: &OAuthConfig,
    options: &AuthFlowOptions,
    vault: &TokenVault,
    http: reqwest::Client,
    prompt: impl FnOnce(&AuthPrompt),
) -> Result<AuthOutcome, HttpError> {
    let outcome = authorize(config, options, http, prompt).await?;
    vault.save(instance, &outcome.tokens).await?;
    Ok(outcome)
}

type CallbackTx = mpsc::Sender<HashMap<String, String>>;

async fn callback(
    State(tx): State<CallbackTx>,
    Query(params): Query<HashMap<String, String>>,
) -> Html<&'static str> {
    let failed = params.contains_key("error");
    // Only the first callback counts; later ones find the channel full or closed.
    let _ = tx.try_send(params);
    if failed {
        Html("<h1>synchub: authorization was refused</h1><p>See the terminal.</p>")
    } else {
        Html("<h1>synchub: authorization received</h1><p>You can close this window.</p>")
    }
}

pub(crate) async fn authorize_with_clock(
    config: &OAuthConfig,
    options: &AuthFlowOptions,
    http: reqwest::Client,
    clock: SharedClock,
    prompt: impl FnOnce(&AuthPrompt),
) -> Result<AuthOutcome, HttpError> {
    let local = "localhost".to_string();
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| {
            HttpError::Config(format!(
                "cannot listen on {} for the OAuth callback: {e}",
                options.listen
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| HttpError::Config(format!("cannot read callback address: {e}")))?;
    let redirect_uri = format!("http://{addr}{}", options.callback_path);
    let client = config.client()?.set_redirect_uri(
        RedirectUrl::new(redirect_uri.clone())
            .map_err(|e| HttpError::Config(format!("invalid redirect URI: {e}")))?,
    );
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(config.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge);
    for (k, v) in &config.extra_auth_params {
        request = request.add_extra_param(k.clone(), v.clone());
    }
    let (url, csrf) = request.url();

    let (tx, mut rx) = mpsc::channel::<HashMap<String, String>>(1);
    let app = Router::new()
        .route(&options.callback_path, get(callback))
        .with_state(tx);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    prompt(&AuthPrompt {
        url: url.to_string(),
        redirect_uri,
    });
    let received = tokio::time::timeout(options.timeout, rx.recv()).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    let params = match received {
        Ok(Some(p)) => p,
        _ => {
            return Err(HttpError::Auth {
                host: local,
                message: format!(
                    "no authorization callback within {} s; run the command again",
                    options.timeout.as_secs()
                ),
            })
        }
    };
    if let Some(err) = params.get("error") {
        return Err(HttpError::Auth {
            host: config.token_host(),
            message: format!("authorization refused: {err}"),
        });
    }
    let state = params
        .get("state")
        .map(String::as_bytes)
        .unwrap_or_default();
    if !bool::from(state.ct_eq(csrf.secret().as_bytes())) {
        return Err(HttpError::Auth {
            host: local,
            message: "callback state does not match (possible CSRF); run the command again".into(),
        });
    }
    let code = params.get("code").ok_or_else(|| HttpError::Auth {
        host: config.token_host(),
        message: "callback carries no authorization code".into(),
    })?;
    let resp = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(move |r| oauth_http(http, r))
        .await
        .map_err(|e| map_token_error(config.token_host(), "INSTANCE", e))?;
    let mut tokens = TokenSet::from_response(&resp, clock.now());
    let extras: BTreeMap<String, String> = params
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "code" | "state" | "scope"))
        .collect();
    tokens.extra = extras;
    Ok(AuthOutcome { tokens })
}
