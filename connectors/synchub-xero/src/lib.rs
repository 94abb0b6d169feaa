//! synchub-xero: the Xero Accounting API 2.0 connector of one tenant.
//!
//! - contacts two-way (ARCHIVED = deleted; `UpdatedDateUTC` compared
//!   before an update, as Xero has no concurrency token);
//! - CRM orders in the state `invoice_when` names become ACCREC invoices
//!   exactly once (`Idempotency-Key`, lookup by `Reference` first);
//! - invoices read back with `AmountDue` (payments flow back);
//! - If-Modified-Since listings paged on a shared `Watermark`;
//! - per-tenant minute, day and concurrency limits ([`policy`]): the day
//!   limit pauses this connection only and reports when it resumes;
//! - webhooks with the intent-to-receive handshake ([`webhook`]);
//! - behind `sandbox`, a stateful fake of the API ([`sandbox`]).

pub mod config;
pub mod connector;
pub mod map;
pub mod policy;
pub mod throttle;
pub mod webhook;

#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use config::{InvoiceWhen, XeroConfig};
pub use connector::{oauth_config, Xero, XeroFactory};
pub use webhook::XeroWebhooks;
