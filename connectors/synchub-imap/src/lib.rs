//! synchub connector for any IMAP server.
//!
//! Messages of the configured folders (INBOX and Sent by default) become
//! email activities keyed by Message-ID, so one message seen in several
//! folders, mailboxes or connectors is one activity. Reads are incremental
//! with CONDSTORE/QRESYNC (RFC 7162): the cursor keeps, per folder,
//! (UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT); flag changes come from
//! `CHANGEDSINCE`, expunges from `VANISHED`, new mail from UIDs at or above
//! UIDNEXT; a changed UIDVALIDITY asks the engine for a full resync.
//! Only header fields and the first 2 KB of the body (for a snippet) are
//! read, never whole bodies or attachments. One session per connector,
//! logged in on first use and logged out by `close()`.

pub mod client;
pub mod config;
mod connector;
pub mod cursor;
mod index;
pub mod map;
pub mod mime;
pub mod proto;
pub mod utf7;

use std::sync::Arc;

use synchub_core::ConnectorError;
use synchub_http::{Built, ConnectorFactory, Deps};

pub use config::ImapConfig;
pub use connector::ImapConnector;

/// The `imap` connector kind.
#[derive(Debug)]
pub struct ImapFactory;

impl ConnectorFactory for ImapFactory {
    const KIND: &'static str = "imap";
    type Config = ImapConfig;

    fn build(config: ImapConfig, deps: &Deps) -> Result<Built, ConnectorError> {
        let settings = config.check(&deps.base_dir)?;
        let state_dir = settings.state_dir.join(sanitize(&deps.connection));
        Ok(Built::connector(Arc::new(ImapConnector::new(
            settings, state_dir,
        ))))
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
