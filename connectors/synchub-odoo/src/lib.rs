//! synchub connector for Odoo over the external JSON-RPC API (`/jsonrpc`,
//! `execute_kw`), tested against a real Odoo 11 (`deploy/peers/odoo.sh`).
//!
//! * `res.partner` two-way: companies (`is_company`) and their contacts
//!   (linked by `parent_id`); `active = false` is an archive, read as a
//!   deletion and written for one.
//! * `sale.order` and customer invoices (`account.invoice` up to 12,
//!   `account.move` from 13, chosen by the server version) pulled.
//! * Shop orders pushed as sale orders exactly once: the CRM id travels in
//!   `client_order_ref`, looked up before every create.
//! * A `write_date` watermark cursor ([`synchub_core::Watermark`]) with an
//!   overlap; a pass pages by id below a frozen upper bound, so edits made
//!   while a pass runs are read by the next pass, never skipped; at the end
//!   of each pass the ids are reconciled, so hard deletes are seen too.
//! * Errors that Odoo returns in HTTP 200 bodies are classified by
//!   [`rpc::OdooPolicy`] and [`rpc::Fault`].

pub mod config;
pub mod connector;
pub mod map;
pub mod rpc;

pub use config::OdooConfig;
pub use connector::{OdooConnector, OdooCursor, OdooFactory};
