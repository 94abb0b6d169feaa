//! OAuth2: provider settings (the one typed `oauth` table of a
//! connection, [`settings`]), the token set, token endpoint calls through
//! the `oauth2` crate (over our reqwest client), the single-flight
//! [`TokenManager`], encrypted persistence ([`vault`]) and the
//! authorization-code + PKCE loopback flow ([`flow`]).

pub mod flow;
pub mod manager;
pub mod settings;
pub mod vault;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::url;
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, RequestTokenError, TokenResponse, TokenUrl,
};

use crate::error::HttpError;
use crate::secret::{redact, register, ExposeSecret, SecretString};

pub use manager::{AccessToken, TokenManager};
pub use settings::{OAuthProvider, OAuthSettings, SignIn};

/// A source of wall-clock time (token expiry is wall-clock).
pub trait WallClock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn WallClock>;

/// How a provider's OAuth2 endpoints are reached.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The application's client id.
    pub client_id: String,
    /// The client secret (absent for public PKCE clients).
    pub client_secret: Option<SecretString>,
    /// Authorization endpoint.
    pub auth_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Scopes to request.
    pub scopes: Vec<String>,
    /// Extra authorization parameters (e.g. `prompt=consent`).
    pub extra_auth_params: Vec<(String, String)>,
    /// Send client credentials in the form body instead of HTTP Basic.
    pub credentials_in_body: bool,
}

impl OAuthConfig {
    /// Any provider.
    pub fn new(
        client_id: String,
        client_secret: Option<SecretString>,
        auth_url: &str,
        token_url: &str,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            client_id,
            client_secret,
            auth_url: auth_url.into(),
            token_url: token_url.into(),
            scopes,
            extra_auth_params: Vec::new(),
            credentials_in_body: false,
        }
    }

    pub(crate) fn token_host(&self) -> String {
        url::Url::parse(&self.token_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| self.token_url.clone())
    }

    pub(crate) fn client(&self) -> Result<BasicClient, HttpError> {
        if let Some(s) = &self.client_secret {
            register(s);
        }
        let auth = AuthUrl::new(self.auth_url.clone())
            .map_err(|e| HttpError::Config(format!("invalid OAuth auth_url: {e}")))?;
        let token = TokenUrl::new(self.token_url.clone())
            .map_err(|e| HttpError::Config(format!("invalid OAuth token_url: {e}")))?;
        let secret = self
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose_secret().to_string()));
        let client = BasicClient::new(
            ClientId::new(self.client_id.clone()),
            secret,
            auth,
            Some(token),
        );
        Ok(
            if self.credentials_in_body || self.client_secret.is_none() {
                client.set_auth_type(AuthType::RequestBody)
            } else {
                client
            },
        )
    }
}

/// Access and refresh tokens of one connector instance.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The bearer token.
    pub access_token: SecretString,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Provider extras kept with the tokens (e.g. a company id like `realmId`).
    pub extra: BTreeMap<String, String>,
}

impl TokenSet {
    pub(crate) fn from_response(resp: &BasicTokenResponse, now: DateTime<Utc>) -> Self {
        let set = Self {
            access_token: SecretString::from(resp.access_token().secret().clone()),
            refresh_token: resp
                .refresh_token()
                .map(|r| SecretString::from(r.secret().clone())),
            expires_at: resp
                .expires_in()
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| now + d),
            scopes: resp
                .scopes()
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .unwrap_or_default(),
            extra: BTreeMap::new(),
        };
        set.register();
        set
    }

    pub(crate) fn register(&self) {
        register(&self.access_token);
        if let Some(r) = &self.refresh_token {
            register(r);
        }
    }
}

/// Transport failure while talking to a token endpoint.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TransportError(String);

/// Runs an `oauth2` request over reqwest 0.12.
pub(crate) async fn oauth_http(
    http: reqwest::Client,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TransportError> {
    let method = reqwest::Method::from_bytes(req.method.as_str().as_bytes())
        .map_err(|e| TransportError(e.to_string()))?;
    let mut builder = http.request(method, req.url.as_str()).body(req.body);
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let resp = builder
        .send()
        .await
        .map_err(|e| TransportError(redact(&e.without_url().to_string()).into_owned()))?;
    let status = oauth2::http::StatusCode::from_u16(resp.status().as_u16())
        .map_err(|e| TransportError(e.to_string()))?;
    let mut headers = oauth2::http::HeaderMap::new();
    for (name, value) in resp.headers() {
        if let (Ok(n), Ok(v)) = (
            oauth2::http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            oauth2::http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| TransportError(redact(&e.without_url().to_string()).into_owned()))?
        .to_vec();
    Ok(oauth2::HttpResponse {
        status_code: status,
        headers,
        body,
    })
}

/// Maps a token endpoint failure; never includes the response body.
pub(crate) fn map_token_error(
    host: String,
    instance: &str,
    err: RequestTokenError<TransportError, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
) -> HttpError {
    match err {
        RequestTokenError::ServerResponse(resp) => {
            let desc = resp
                .error_description()
                .map(|d| format!(" ({})", redact(d)))
                .unwrap_or_default();
            HttpError::Auth {
                host,
                message: format!(
                    "token endpoint refused: {}{desc}; run `synchub auth {instance}`",
                    resp.error()
                ),
            }
        }
        RequestTokenError::Request(e) => HttpError::Unavailable {
            host,
            attempts: 1,
            message: format!("token endpoint unreachable: {e}"),
            retry_after: None,
        },
        RequestTokenError::Parse(e, _body) => HttpError::Decode {
            host,
            message: format!("token endpoint answer is not a token response: {e}"),
        },
        RequestTokenError::Other(m) => HttpError::Decode {
            host,
            message: redact(&m).into_owned(),
        },
    }
}
