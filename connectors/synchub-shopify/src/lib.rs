//! synchub connector for Shopify (Admin GraphQL API).
//!
//! * [`ShopifyConnector`] implements `synchub_core::Connector` for customers
//!   (read, incremental, write-back) and orders (read, incremental).
//! * [`config::ShopifyConfig`] is the pipeline table (`deny_unknown_fields`).
//! * [`ShopifyFactory`] builds a connection on the typed contract
//!   (`synchub_http::ConnectorFactory`); [`ShopifyWebhooks`] is its
//!   `WebhookSource`.
//! * [`webhook`] verifies and classifies deliveries for the daemon.
//! * `sandbox` (feature `sandbox`): a stateful fake shop for tests and the demo.
//!
//! ```no_run
//! # fn demo() -> Result<(), synchub_shopify::ShopifyError> {
//! let table = serde_json::json!({"shop": "example-tw", "access_token": "shpat_…"});
//! let shop = synchub_shopify::ShopifyConnector::from_value(table)?;
//! # let _ = shop; Ok(()) }
//! ```

pub mod bulk;
pub mod client;
pub mod config;
pub mod connector;
pub mod cost;
pub mod error;
pub mod estimate;
pub mod factory;
pub mod gqlparse;
pub mod map;
pub mod queries;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod stored;
pub mod throttle;
pub mod webhook;

pub use config::ShopifyConfig;
pub use connector::ShopifyConnector;
pub use error::ShopifyError;
pub use factory::{ShopifyFactory, ShopifyWebhooks};
