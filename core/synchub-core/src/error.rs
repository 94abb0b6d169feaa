//! Connector errors, classified by what the caller does next.

use std::time::Duration;

/// What the engine does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later (throttled, server busy, network).
    Retry,
    /// Credentials are missing, expired or revoked: run `synchub auth`.
    Reauth,
    /// The configuration is wrong: fix it.
    Config,
    /// The source says the stored position is no longer valid (Gmail's
    /// expired `historyId`, Graph's 410 on a delta link, IMAP's changed
    /// UIDVALIDITY, an expired sync token): forget the cursor and read the
    /// stream again from the start.
    Resync,
    /// Give up on this stream for this run.
    Fatal,
}

/// An error from a connector.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The remote asked us to slow down or is temporarily unavailable.
    #[error("{host} is unavailable: {message}")]
    Unavailable {
        /// The host that failed.
        host: String,
        /// What it said.
        message: String,
        /// How long it asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Authentication failed.
    #[error("authentication with {host} failed: {message}")]
    Auth {
        /// The host.
        host: String,
        /// What it said.
        message: String,
    },
    /// The connector's configuration is invalid.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The remote answered with something we cannot use.
    #[error("{host} answered unexpectedly: {message}")]
    Protocol {
        /// The host.
        host: String,
        /// What went wrong.
        message: String,
    },
    /// A local source (file) could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The connector cannot do this.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The stored cursor is no longer valid at the source; the stream must
    /// be read again from the start.
    #[error("{host} asks for a full resync: {message}")]
    Resync {
        /// The host (or mailbox) that said so.
        host: String,
        /// What it said.
        message: String,
    },
    /// The run was cancelled (shutdown) while waiting.
    #[error("cancelled while {0}")]
    Cancelled(String),
}

impl ConnectorError {
    /// What the caller should do next.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectorError::Unavailable { .. } => ErrorClass::Retry,
            ConnectorError::Auth { .. } => ErrorClass::Reauth,
            ConnectorError::Config(_) | ConnectorError::Unsupported(_) => ErrorClass::Config,
            ConnectorError::Resync { .. } => ErrorClass::Resync,
            ConnectorError::Protocol { .. }
            | ConnectorError::Io { .. }
            | ConnectorError::Cancelled(_) => ErrorClass::Fatal,
        }
    }
}
