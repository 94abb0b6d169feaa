//! How requests authenticate: static secret headers, HTTP Basic, or OAuth2
//! bearer tokens from a [`TokenManager`]. Header values are marked sensitive.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use crate::error::HttpError;
use crate::oauth::TokenManager;
use crate::secret::{ExposeSecret, SecretString};

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials.
    None,
    /// A static secret header, e.g. `X-Access-Token`.
    Header {
        /// Header name.
        name: HeaderName,
        /// Header value.
        value: SecretString,
    },
    /// HTTP Basic, e.g. a REST API's consumer key / secret.
    Basic {
        /// User name (consumer key).
        user: String,
        /// Password (consumer secret).
        password: SecretString,
    },
    /// OAuth2 bearer tokens, refreshed before expiry and once on a 401.
    OAuth(Arc<TokenManager>),
}

impl Auth {
    /// A static secret header.
    pub fn header(name: &'static str, value: SecretString) -> Self {
        Auth::Header {
            name: HeaderName::from_static_lower(name),
            value,
        }
    }
}

trait FromStaticLower {
    fn from_static_lower(name: &'static str) -> HeaderName;
}

impl FromStaticLower for HeaderName {
    fn from_static_lower(name: &'static str) -> HeaderName {
        HeaderName::try_from(name.to_ascii_lowercase())
            .unwrap_or_else(|_| HeaderName::from_static("x-invalid-header-name"))
    }
}

/// Adds the auth header; returns the token generation for OAuth.
pub(crate) async fn apply(auth: &Auth, headers: &mut HeaderMap) -> Result<Option<u64>, HttpError> {
    let sensitive = |s: &str| {
        HeaderValue::try_from(s)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| HttpError::Config("credential contains invalid header characters".into()))
    };
    match auth {
        Auth::None => Ok(None),
        Auth::Header { name, value } => {
            headers.insert(name.clone(), sensitive(value.expose_secret())?);
            Ok(None)
        }
        Auth::Basic { user, password } => {
            use base64::Engine as _;
            let raw = format!("{user}:{}", password.expose_secret());
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            headers.insert(AUTHORIZATION, sensitive(&format!("Basic {encoded}"))?);
            Ok(None)
        }
        Auth::OAuth(manager) => {
            let token = manager.access_token().await?;
            let value = format!("Bearer {}", token.secret.expose_secret());
            headers.insert(AUTHORIZATION, sensitive(&value)?);
            Ok(Some(token.generation))
        }
    }
}
