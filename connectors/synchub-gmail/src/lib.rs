//! synchub connector for Gmail and Google Contacts.
//!
//! - `activity`: every message becomes an email [`synchub_core::model::Activity`]
//!   whose participants (from, to, cc) let the engine link contacts. A first
//!   read lists the mailbox (`messages.list` + `messages.get?format=metadata`)
//!   from a baseline `historyId` taken before listing; later reads follow
//!   `users.history.list` from the stored history id; an expired id (404)
//!   asks the engine for a full resync.
//! - `contact`: the People API `connections` with sync tokens (an expired
//!   token asks for a resync), written back with `createContact` /
//!   `updateContact` (the etag guards against lost updates).
//!
//! Notes: `shared/api-notes/gmail.md`.

pub mod config;
pub mod connector;
pub mod map;
pub mod policy;
#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use config::GmailConfig;
pub use connector::{GmailConnector, GmailFactory};
