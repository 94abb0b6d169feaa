//! synchub connector for WooCommerce (REST API v3, `/wp-json/wc/v3`).
//!
//! * [`WooConnector`] implements `synchub_core::Connector`: customers (full
//!   scan, write-back single or batched) and orders (incremental on
//!   `modified_after` + `dates_are_gmt=true`).
//! * [`config::WooConfig`] is the pipeline table (`deny_unknown_fields`).
//! * [`WooFactory`] builds a connection on the typed contract
//!   (`synchub_http::ConnectorFactory`); [`WooWebhooks`] is its `WebhookSource`.
//! * [`webhook`] verifies and classifies deliveries for the daemon.
//! * `sandbox` (feature `sandbox`): a stateful fake store for tests and the demo.

// the sandbox builds whole REST orders with one `json!`
#![recursion_limit = "256"]

pub mod client;
pub mod config;
pub mod connector;
pub mod error;
pub mod factory;
pub mod map;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod stored;
pub mod webhook;

pub use config::WooConfig;
pub use connector::WooConnector;
pub use error::WooError;
pub use factory::{WooFactory, WooWebhooks};
