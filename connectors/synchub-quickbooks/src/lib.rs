//! synchub-quickbooks: the QuickBooks Online Accounting API v3 connector.
//!
//! - customers two-way ([`push::write_contact`]: sparse updates under
//!   SyncToken, a stale token is a [`synchub_core::Refusal::Conflict`]
//!   carrying the current version; inactive = deleted);
//! - CRM orders in the state `invoice_when` names become an Invoice, or a
//!   SalesReceipt when already paid, exactly once ([`push::write_order`]);
//! - invoices and receipts read back with their balance (payments flow
//!   back as `amount_due` / `status`), incrementally by CDC within its
//!   window and by query before it ([`pull`]);
//! - webhooks verified with `intuit-signature` ([`webhook`]);
//! - the per-realm quota and response policy ([`policy`]);
//! - behind the `sandbox` feature, a stateful fake of the API ([`sandbox`]).

pub mod client;
pub mod config;
pub mod connector;
pub mod map;
pub mod policy;
pub mod pull;
pub mod push;
pub mod webhook;

#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use config::{InvoiceWhen, QuickBooksConfig};
pub use connector::{oauth_config, QuickBooks, QuickBooksFactory};
pub use webhook::QuickBooksWebhooks;
