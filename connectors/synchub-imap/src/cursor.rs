//! The stream position: per folder (UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT)
//! once a folder is read, and the pass in progress (which UIDs are still to
//! fetch, which expunges are still to report) between pages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use synchub_core::{ConnectorError, Cursor};

/// What has been read of one folder: every message below `uidnext`, with
/// every change up to `modseq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    /// The folder's UIDVALIDITY.
    pub uidvalidity: u32,
    /// HIGHESTMODSEQ when the pass began (0 without CONDSTORE).
    pub modseq: u64,
    /// UIDNEXT when the pass began.
    pub uidnext: u32,
    /// Without QRESYNC: the expunged UIDs this pass reported (a UID set);
    /// the next pass drops them from the uid index, so each is reported
    /// once and none is lost to a crash.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gone: String,
}

/// A folder being read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    /// The folder.
    pub folder: String,
    /// What the folder will be once the pass ends.
    pub target: FolderState,
    /// Expunged UIDs not yet reported (a UID set).
    #[serde(default)]
    pub vanished: String,
    /// UIDs still to fetch (a UID set).
    #[serde(default)]
    pub pending: String,
}

/// The cursor of the activity stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImapCursor {
    /// Read folders.
    #[serde(default)]
    pub folders: BTreeMap<String, FolderState>,
    /// The pass in progress, if a round is under way.
    #[serde(default)]
    pub pass: Option<Pass>,
    /// The folder a round is at when its pass has not begun yet.
    #[serde(default)]
    pub next_folder: Option<String>,
}

impl ImapCursor {
    /// Reads a stored cursor.
    pub fn from_cursor(c: Option<&Cursor>) -> Result<Self, ConnectorError> {
        match c {
            None => Ok(Self::default()),
            Some(c) => serde_json::from_value(c.0.clone()).map_err(|e| {
                ConnectorError::Config(format!(
                    "stored imap cursor is not readable ({e}); run with --full-refresh"
                ))
            }),
        }
    }

    /// As a stored cursor.
    pub fn to_cursor(&self) -> Cursor {
        Cursor(serde_json::to_value(self).unwrap_or_default())
    }
}
