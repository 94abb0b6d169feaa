//! Errors of the WooCommerce connector, classified by what the caller does next.

use synchub_core::ConnectorError;

/// An error from the WooCommerce connector.
#[derive(Debug, thiserror::Error)]
pub enum WooError {
    /// The configuration is invalid.
    #[error("woocommerce config: {0}")]
    Config(String),
    /// The store refused the consumer key/secret (`woocommerce_rest_cannot_view`…).
    #[error("woocommerce refused the consumer key: {0}")]
    Auth(String),
    /// The store answered with a WooCommerce error or an unexpected shape.
    #[error("woocommerce answered unexpectedly: {0}")]
    Protocol(String),
    /// The store answered 409: the record changed under the request.
    #[error("woocommerce refused a stale write: {0}")]
    Conflict(String),
    /// The store answered 429 or a server error to a request the runtime
    /// did not repeat (a create, whose outcome is then unknown).
    #[error("woocommerce answered HTTP {status}")]
    Busy {
        /// The HTTP status.
        status: u16,
        /// The store's `Retry-After`, when it sent one.
        retry_after: Option<std::time::Duration>,
    },
    /// The HTTP runtime's classified error.
    #[error(transparent)]
    Http(#[from] synchub_http::HttpError),
}

impl From<WooError> for ConnectorError {
    fn from(e: WooError) -> Self {
        let host = "woocommerce".to_string();
        match e {
            WooError::Config(m) => ConnectorError::Config(m),
            WooError::Auth(message) => ConnectorError::Auth { host, message },
            WooError::Protocol(message) | WooError::Conflict(message) => {
                ConnectorError::Protocol { host, message }
            }
            WooError::Busy {
                status,
                retry_after,
            } => ConnectorError::Unavailable {
                host,
                message: format!("answered HTTP {status}; the write was not repeated"),
                retry_after,
            },
            WooError::Http(e) => e.into(),
        }
    }
}
