//! synchub connector for Tryton 8 over its JSON-RPC API, tested against a
//! real Tryton 8.2 (`deploy/peers/tryton.sh`).
//!
//! * `party.party` two-way, with its contact mechanisms (emails, phones)
//!   and first address; the CRM id of a party created from the CRM is a
//!   party identifier, looked up before every create.
//! * `sale.sale` and customer invoices (`account.invoice`, type `out`)
//!   pulled; shop orders pushed as sales exactly once (the CRM id is the
//!   sale's `reference`, looked up before every create).
//! * Session login (`common.db.login`), renewed once when it expires.
//! * `_timestamp` optimistic locking: a stale write is a
//!   [`Refusal::Conflict`](synchub_core::connector::Refusal) carrying
//!   Tryton's copy.
//! * A `last_modified_at` watermark cursor; Tryton deletes hard, so the end
//!   of each pass compares the stream's ids with those of the last pass.

pub mod connector;
pub mod rpc;

pub use connector::{TrytonConfig, TrytonConnector, TrytonCursor, TrytonFactory};
