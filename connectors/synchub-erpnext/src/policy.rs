//! How Frappe answers errors, read once: the HTTP status comes from the
//! exception class (`frappe/exceptions.py`: `ValidationError` and its
//! subclasses 417, `DoesNotExistError` 404, `PermissionError` 403,
//! `AuthenticationError` 401, `DuplicateEntryError` 409,
//! `RateLimitExceededError` 429, anything else 500) and the v1 body names
//! it in `exc_type`, with the user-facing text in `_server_messages` (a
//! JSON string holding a list of JSON strings). The v2 API answers
//! `{"errors": [{"type", "message", …}]}` instead.
//!
//! [`ErpPolicy`] tells the HTTP runtime what to retry; [`FrappeError`] tells
//! the connector what a refused request means.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use synchub_http::{Assessment, ResponsePolicy, Verdict};

/// What a Frappe error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad or revoked API key/secret (401).
    Auth,
    /// The user lacks a role or a user permission (403).
    Forbidden,
    /// The document does not exist (404).
    Missing,
    /// Our copy is stale: `TimestampMismatchError` (417).
    Stale,
    /// A validation refused the values (417: `ValidationError`,
    /// `MandatoryError`, `LinkValidationError`, `InvalidEmailAddressError`,
    /// …; 409 `DuplicateEntryError`).
    Invalid,
    /// Throttled (429) or the server failed or is down (5xx).
    Transient,
}

/// An error answer from a Frappe site.
#[derive(Debug, Clone, PartialEq)]
pub struct FrappeError {
    /// The HTTP status.
    pub status: u16,
    /// The exception class (`exc_type`, or v2 `errors[0].type`), when named.
    pub exc_type: Option<String>,
    /// The user-facing message (never the traceback).
    pub message: String,
    /// What it means.
    pub kind: ErrorKind,
}

/// Exception classes that a 500 carries for a passing database condition.
const TRANSIENT_TYPES: &[&str] = &[
    "QueryDeadlockError",
    "QueryTimeoutError",
    "TooManyRequestsError",
    "RateLimitExceededError",
];

impl FrappeError {
    /// Reads an error answer (any body; a non-JSON body keeps its status).
    pub fn from_response(status: u16, body: &[u8]) -> FrappeError {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let v2 = v
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|a| a.first());
        let exc_type = v
            .get("exc_type")
            .and_then(Value::as_str)
            .or_else(|| v2.and_then(|e| e.get("type")).and_then(Value::as_str))
            .map(str::to_string);
        let message = server_messages(&v)
            .or_else(|| {
                v2.and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .or_else(|| {
                // `exception` is "module.Class: message" (when tracebacks are allowed).
                v.get("exception")
                    .and_then(Value::as_str)
                    .map(|e| e.split_once(": ").map_or(e, |(_, m)| m).to_string())
            })
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let short: String = text.chars().take(200).collect();
                if short.trim().is_empty() {
                    format!("HTTP {status}")
                } else {
                    short
                }
            });
        let kind = classify(status, exc_type.as_deref());
        FrappeError {
            status,
            exc_type,
            message,
            kind,
        }
    }
}

impl std::fmt::Display for FrappeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.exc_type {
            Some(t) => write!(f, "{} ({t}, HTTP {})", self.message, self.status),
            None => write!(f, "{} (HTTP {})", self.message, self.status),
        }
    }
}

/// The kind of an error by status, refined by the exception class.
pub fn classify(status: u16, exc_type: Option<&str>) -> ErrorKind {
    match (status, exc_type) {
        (_, Some("TimestampMismatchError")) => ErrorKind::Stale,
        (_, Some("AuthenticationError")) | (401, _) => ErrorKind::Auth,
        (_, Some("PermissionError")) | (403, _) => ErrorKind::Forbidden,
        (_, Some("DoesNotExistError")) | (404, _) => ErrorKind::Missing,
        (_, Some(t)) if TRANSIENT_TYPES.contains(&t) => ErrorKind::Transient,
        (429, _) | (500..=599, _) => ErrorKind::Transient,
        _ => ErrorKind::Invalid,
    }
}

/// The messages of `_server_messages`, joined: a JSON string holding a
/// list of JSON strings, each an object with `message` (parsed
/// defensively: a plain string list or plain text is taken as is).
fn server_messages(v: &Value) -> Option<String> {
    let raw = v.get("_server_messages")?.as_str()?;
    let list: Vec<Value> = serde_json::from_str(raw).ok()?;
    let texts: Vec<String> = list
        .iter()
        .filter_map(|item| {
            let s = item.as_str()?;
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m.get("message").and_then(Value::as_str).map(strip_html),
                _ => Some(strip_html(s)),
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

/// Frappe messages may hold `<b>` and links; keep the text.
fn strip_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// The runtime's reading of Frappe answers: 429 throttled (the runtime
/// honours `Retry-After`; Frappe's rate limiter sends `X-RateLimit-Reset`,
/// read as seconds to wait when it is small and as an epoch otherwise —
/// the unit is not confirmed in the notes), 502–504 and a 500 naming a
/// deadlock or timeout transient, 401 auth. Everything else goes to the
/// connector, which reads `exc_type` ([`FrappeError`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ErpPolicy;

impl ResponsePolicy for ErpPolicy {
    fn assess(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Assessment {
        let verdict = match status {
            429 => Verdict::Throttled {
                wait: rate_limit_reset(headers),
            },
            502..=504 => Verdict::Transient,
            401 => Verdict::Auth,
            500 => match FrappeError::from_response(status, body).exc_type.as_deref() {
                Some(t) if TRANSIENT_TYPES.contains(&t) => Verdict::Transient,
                _ => Verdict::Ok,
            },
            _ => Verdict::Ok,
        };
        Assessment {
            verdict,
            cost: None,
        }
    }
}

fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    if headers.contains_key("retry-after") {
        return None;
    }
    let v: u64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Seconds to wait; a value that large is an epoch, which the runtime
    // cannot compare without our clock: fall back to its backoff.
    (v < 86_400).then(|| Duration::from_secs(v.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (u16, Vec<u8>) {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture");
        let v: Value = serde_json::from_str(&text).expect("json");
        let status = v["_status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .expect("status");
        (status, text.into_bytes())
    }

    #[test]
    fn the_fixture_errors_are_classified() {
        let (s, b) = fixture("error_417_timestamp_mismatch.json");
        let e = FrappeError::from_response(s, &b);
        assert_eq!(e.kind, ErrorKind::Stale);
        assert!(
            e.message.starts_with("Error: Document has been modified"),
            "{e}"
        );
        let (s, b) = fixture("error_403.json");
        let e = FrappeError::from_response(s, &b);
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert_eq!(e.message, "Insufficient Permission for Customer");
        let (s, b) = fixture("error_404.json");
        let e = FrappeError::from_response(s, &b);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Missing, "Customer CUST-0999 not found")
        );
        let (s, b) = fixture("error_v2_404.json");
        let e = FrappeError::from_response(s, &b);
        assert_eq!(e.exc_type.as_deref(), Some("DoesNotExistError"));
        assert_eq!(e.message, "Customer CUST-0999 not found");
    }

    #[test]
    fn validation_and_server_errors() {
        let body = br#"{"exc_type":"MandatoryError","_server_messages":"[\"{\\\"message\\\": \\\"Error: Value missing for Contact: <b>First Name</b>\\\"}\"]"}"#;
        let e = FrappeError::from_response(417, body);
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(e.message, "Error: Value missing for Contact: First Name");
        assert_eq!(
            FrappeError::from_response(409, b"{}").kind,
            ErrorKind::Invalid
        );
        assert_eq!(
            FrappeError::from_response(502, b"Bad Gateway").kind,
            ErrorKind::Transient
        );
        assert_eq!(
            FrappeError::from_response(429, b"Too Many Requests").kind,
            ErrorKind::Transient
        );
        let p = ErpPolicy;
        let h = HeaderMap::new();
        let deadlock = br#"{"exc_type":"QueryDeadlockError"}"#;
        assert_eq!(p.assess(500, &h, deadlock).verdict, Verdict::Transient);
        assert_eq!(
            p.assess(500, &h, b"{\"exc_type\":\"AttributeError\"}")
                .verdict,
            Verdict::Ok
        );
        assert_eq!(p.assess(417, &h, b"{}").verdict, Verdict::Ok);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", "7".parse().expect("header"));
        assert_eq!(
            p.assess(429, &h, b"").verdict,
            Verdict::Throttled {
                wait: Some(Duration::from_secs(7))
            }
        );
    }
}
