//! Errors of the Shopify connector, classified by what the caller does next.

use std::time::Duration;

use synchub_core::ConnectorError;

/// The host name used in error messages (never a URL with credentials).
pub(crate) const HOST: &str = "shopify";

/// An error from the Shopify connector.
#[derive(Debug, thiserror::Error)]
pub enum ShopifyError {
    /// The configuration is invalid.
    #[error("shopify config: {0}")]
    Config(String),
    /// Shopify throttled the request (cost bucket empty or HTTP 429).
    #[error("shopify throttled the request; retry in {retry_after:?}")]
    Throttled {
        /// How long to wait before the bucket holds the requested cost.
        retry_after: Duration,
    },
    /// The access token was refused.
    #[error("shopify refused the access token: {0}")]
    Auth(String),
    /// A query exceeded the single-query cost ceiling.
    #[error("shopify query too expensive: {0}")]
    MaxCost(String),
    /// The shop answered with a GraphQL error or an unexpected shape.
    #[error("shopify answered unexpectedly: {0}")]
    Protocol(String),
    /// Transport failure (connect, timeout, 5xx after the runtime's retries).
    #[error("shopify is unavailable: {0}")]
    Unavailable(String),
    /// The shop answered 429 or a server error to a request the runtime
    /// did not repeat (a create, whose outcome is then unknown).
    #[error("shopify answered HTTP {status}")]
    Busy {
        /// The HTTP status.
        status: u16,
        /// The shop's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The HTTP runtime's classified error (throttled, auth, status, decode).
    #[error(transparent)]
    Http(#[from] synchub_http::HttpError),
}

impl From<ShopifyError> for ConnectorError {
    fn from(e: ShopifyError) -> Self {
        let host = HOST.to_string();
        match e {
            ShopifyError::Config(m) => ConnectorError::Config(m),
            ShopifyError::Throttled { retry_after } => ConnectorError::Unavailable {
                host,
                message: "throttled (cost bucket empty)".into(),
                retry_after: Some(retry_after),
            },
            ShopifyError::Auth(message) => ConnectorError::Auth { host, message },
            ShopifyError::MaxCost(m) => ConnectorError::Config(format!(
                "{m}: lower `orders_page_size` or `line_items_per_order`"
            )),
            ShopifyError::Protocol(message) => ConnectorError::Protocol { host, message },
            ShopifyError::Unavailable(message) => ConnectorError::Unavailable {
                host,
                message,
                retry_after: None,
            },
            ShopifyError::Busy {
                status,
                retry_after,
            } => ConnectorError::Unavailable {
                host,
                message: format!("answered HTTP {status}; the write was not repeated"),
                retry_after,
            },
            ShopifyError::Http(e) => e.into(),
        }
    }
}
