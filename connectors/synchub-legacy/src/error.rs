//! Errors of the legacy sources, classified by what the caller does next.

use synchub_core::{ConnectorError, ErrorClass};

/// An error building or reading a legacy source.
///
/// Every message names the file, URL (without its password), table or
/// mapping key at fault and, where it helps, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// `KIND` is not one of [`crate::KINDS`].
    #[error("unknown migration kind '{kind}': use one of {}", crate::KINDS.join(", "))]
    UnknownKind {
        /// The kind given.
        kind: String,
    },
    /// `--encoding` names no supported encoding.
    #[error("unknown encoding '{value}': use {}", crate::EncodingChoice::NAMES)]
    Encoding {
        /// The value given.
        value: String,
    },
    /// A file or folder cannot be used.
    #[error("cannot read {path}: {message}")]
    Path {
        /// The file or folder.
        path: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The mapping file (or a built-in mapping) is invalid.
    #[error("mapping {source_name}: {message}")]
    Mapping {
        /// The mapping file, or `built-in <kind>`.
        source_name: String,
        /// The key at fault and what is wrong with it.
        message: String,
    },
    /// A database URL that cannot be parsed.
    #[error("bad database url {url}: {message}")]
    Url {
        /// The URL with its password removed.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The database refused the connection or the credentials.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL with its password removed.
        url: String,
        /// What the server said and what to do.
        message: String,
        /// Whether the credentials were refused (as opposed to the host being down).
        auth: bool,
    },
    /// The database is reachable but does not look like the expected CRM.
    #[error("{url}: {message}")]
    Schema {
        /// The URL with its password removed.
        url: String,
        /// What is missing.
        message: String,
    },
    /// A query failed while reading.
    #[error("reading {table} from {url} failed: {message}")]
    Query {
        /// The URL with its password removed.
        url: String,
        /// The table being read.
        table: String,
        /// What the server said.
        message: String,
    },
    /// A stored cursor that does not fit this source.
    #[error("cannot resume from cursor {cursor}: {message}")]
    Cursor {
        /// The cursor as JSON.
        cursor: String,
        /// Why it does not fit, and what to do.
        message: String,
    },
}

impl LegacyError {
    /// What the caller should do next.
    pub fn class(&self) -> ErrorClass {
        match self {
            LegacyError::Connect { auth: true, .. } => ErrorClass::Reauth,
            LegacyError::Connect { auth: false, .. } => ErrorClass::Retry,
            LegacyError::Query { .. } => ErrorClass::Fatal,
            _ => ErrorClass::Config,
        }
    }
}

impl From<LegacyError> for ConnectorError {
    fn from(e: LegacyError) -> Self {
        let message = e.to_string();
        match e {
            LegacyError::Path { path, message } => ConnectorError::Io { path, message },
            LegacyError::Connect {
                url,
                message,
                auth: true,
            } => ConnectorError::Auth { host: url, message },
            LegacyError::Connect {
                url,
                message,
                auth: false,
            } => ConnectorError::Unavailable {
                host: url,
                message: format!("cannot connect: {message}"),
                retry_after: None,
            },
            LegacyError::Query {
                url,
                message,
                table,
            } => ConnectorError::Protocol {
                host: url,
                message: format!("reading {table}: {message}"),
            },
            _ => ConnectorError::Config(message),
        }
    }
}

/// `mysql://user:secret@host/db` → `mysql://user@host/db`: never show a password.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let user = authority[..at].split(':').next().unwrap_or("");
    format!("{}{}@{}", &url[..scheme_end + 3], user, &rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("mysql://root:s3cret@127.0.0.1:3306/suitecrm?ssl-mode=disabled"),
            "mysql://root@127.0.0.1:3306/suitecrm?ssl-mode=disabled"
        );
        assert_eq!(redact_url("mysql://127.0.0.1/x"), "mysql://127.0.0.1/x");
        assert_eq!(redact_url("mysql://a:b:c@h/d"), "mysql://a@h/d");
    }
}
