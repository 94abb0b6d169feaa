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
            WooError::Protocol(message) => ConnectorError::Protocol { host, message },
            WooError::Http(e) => e.into(),
        }
    }
}
