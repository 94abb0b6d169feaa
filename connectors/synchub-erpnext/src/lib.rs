//! synchub connector for ERPNext over the Frappe REST API
//! (`/api/resource/{DocType}`, `Authorization: token KEY:SECRET`).
//!
//! * `Customer` ↔ CRM companies and `Contact` ↔ CRM contacts, two-way; a
//!   contact's `email_ids` and `phone_nos` child tables map to its emails
//!   and phones both ways; `Address` documents linked to a customer are
//!   read into its addresses; `Sales Order` is pulled into CRM orders
//!   linked to the customer's contact.
//! * A `modified` watermark ([`synchub_core::Watermark`]) with an overlap;
//!   a pass pages by keyset on (`modified`, `name`), so equal `modified`
//!   times across a page boundary are neither skipped nor repeated.
//!   Frappe's times are naive and in the site's time zone (`utc_offset`).
//! * Deletions from the `Deleted Document` feed; a disabled customer is
//!   read as deleted, and a CRM delete disables it.
//! * Errors are read by [`policy::ErpPolicy`] (for the HTTP runtime) and
//!   [`policy::FrappeError`] (`exc_type`): validation refusals are
//!   `Rejected`, `TimestampMismatchError` a `Conflict` carrying the current
//!   document, 429 and 5xx a `Retry`.
//! * Frappe takes no idempotency key: creates store it in a custom field
//!   (`reference_field`) and look it up first.
//! * Behind `sandbox`, a stateful fake of the API ([`sandbox`]).

pub mod client;
pub mod config;
pub mod connector;
pub mod map;
pub mod policy;
pub mod webhook;

#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use config::ErpNextConfig;
pub use connector::{ErpCursor, ErpNextConnector, ErpNextFactory};
pub use webhook::ErpWebhooks;
