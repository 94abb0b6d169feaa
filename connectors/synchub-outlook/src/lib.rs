//! synchub connector for Outlook mail and contacts through Microsoft Graph.
//!
//! - `activity`: each configured mail folder (Inbox and Sent Items by
//!   default) is followed by a delta query; the `@odata.nextLink` /
//!   `@odata.deltaLink` of every folder is the cursor; an evicted delta
//!   token (410, `syncStateNotFound`, `resyncRequired`) asks the engine for
//!   a full resync.
//! - `contact`: `/me/contacts/delta`, written back with `If-Match` (a
//!   changed contact answers 412, a [`synchub_core::Refusal::Conflict`]).
//! - change notifications ([`webhook::OutlookWebhooks`]): the
//!   `validationToken` handshake, `clientState` verification, subscription
//!   create and renewal.
//!
//! Notes: `shared/api-notes/msgraph.md`.

pub mod config;
pub mod connector;
pub mod map;
pub mod policy;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod webhook;

pub use config::OutlookConfig;
pub use connector::{OutlookConnector, OutlookFactory};
pub use webhook::OutlookWebhooks;
