//! Errors of the HTTP runtime, classified by what the caller does next.
//!
//! Every variant names the host (or the setting) it is about, and no message
//! ever carries a secret: texts that come from a remote are passed through
//! [`crate::secret::redact`] before they are stored here.

use std::time::Duration;

use synchub_core::error::{ConnectorError, ErrorClass};

/// An error from the HTTP runtime.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The host throttled us or failed, and retries (if allowed) did not help.
    #[error("{host} is unavailable after {attempts} attempt(s): {message}")]
    Unavailable {
        /// The host that failed.
        host: String,
        /// How many requests were sent.
        attempts: u32,
        /// What the last attempt saw.
        message: String,
        /// How long the host asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Credentials are missing, expired or were rejected.
    #[error("authentication with {host} failed: {message}")]
    Auth {
        /// The host (or the connector instance when no host was involved).
        host: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The host answered with a status the caller must handle.
    #[error("{host} answered {status}: {message}")]
    Status {
        /// The host.
        host: String,
        /// The HTTP status code.
        status: u16,
        /// A short, redacted excerpt of the body.
        message: String,
    },
    /// The answer could not be decoded.
    #[error("{host} answered unexpectedly: {message}")]
    Decode {
        /// The host.
        host: String,
        /// What was wrong.
        message: String,
    },
    /// The runtime is configured wrongly (bad URL, missing key, bad quota).
    #[error("bad http configuration: {0}")]
    Config(String),
    /// Tokens could not be loaded or saved.
    #[error("token store: {0}")]
    TokenStore(String),
}

impl HttpError {
    /// What the caller should do next.
    pub fn class(&self) -> ErrorClass {
        match self {
            HttpError::Unavailable { .. } => ErrorClass::Retry,
            HttpError::Auth { .. } => ErrorClass::Reauth,
            HttpError::Config(_) | HttpError::TokenStore(_) => ErrorClass::Config,
            HttpError::Status { status, .. } if *status == 401 || *status == 403 => {
                ErrorClass::Reauth
            }
            HttpError::Status { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Retry
            }
            HttpError::Status { .. } | HttpError::Decode { .. } => ErrorClass::Fatal,
        }
    }

    /// How long the remote asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<HttpError> for ConnectorError {
    fn from(e: HttpError) -> Self {
        let text = e.to_string();
        match e {
            HttpError::Unavailable {
                host, retry_after, ..
            } => ConnectorError::Unavailable {
                host,
                message: text,
                retry_after,
            },
            HttpError::Auth { host, message } => ConnectorError::Auth { host, message },
            HttpError::Status { host, status, .. } if status == 401 || status == 403 => {
                ConnectorError::Auth {
                    host,
                    message: text,
                }
            }
            HttpError::Status { host, status, .. } if status == 429 || status >= 500 => {
                ConnectorError::Unavailable {
                    host,
                    message: text,
                    retry_after: None,
                }
            }
            HttpError::Status { host, .. } | HttpError::Decode { host, .. } => {
                ConnectorError::Protocol {
                    host,
                    message: text,
                }
            }
            HttpError::Config(_) | HttpError::TokenStore(_) => ConnectorError::Config(text),
        }
    }
}
