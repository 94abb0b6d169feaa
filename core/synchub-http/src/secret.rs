//! Secrets: typed values that never print, `${ENV_VAR}` references in
//! config, and a redaction pass for log lines and error texts.
//!
//! [`SecretString`] (from `secrecy`) prints as `[REDACTED]` under Debug and
//! has no Display. Every secret the runtime handles is also registered with
//! the process-wide redactor, so that [`redact`] and [`RedactingMakeWriter`]
//! can scrub it from any text, even text that came back from a server.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{OnceLock, RwLock};

pub use secrecy::{ExposeSecret, SecretString};

/// The text that replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered (they would match too much).
const MIN_REGISTERED_LEN: usize = 6;

/// Keys whose values are always scrubbed, in JSON, query and form styles.
const SENSITIVE_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code_verifier",
    "consumer_secret",
    "password",
    "access-token",
];

/// A `${VAR}` reference in config could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set (referenced as ${{{0}}} in config)")]
    MissingVar(String),
    /// The reference is malformed.
    #[error("malformed secret reference `{0}`: expected ${{NAME}}")]
    Malformed(String),
}

/// Resolves `${VAR}` references in a config value from the process
/// environment and returns the result as a registered secret.
pub fn expand_env(value: &str) -> Result<SecretString, SecretError> {
    expand_with(value, |name| std::env::var(name).ok())
}

/// Like [`expand_env`], with a custom variable lookup (for tests and layered config).
pub fn expand_with(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SecretString, SecretError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| SecretError::Malformed(reference_excerpt(&rest[start..])))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(SecretError::Malformed(reference_excerpt(&rest[start..])));
        }
        let resolved = lookup(name).ok_or_else(|| SecretError::MissingVar(name.to_string()))?;
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    let secret = SecretString::from(out);
    register(&secret);
    Ok(secret)
}

fn reference_excerpt(s: &str) -> String {
    s.chars().take(24).collect()
}

fn registry() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers a secret so that [`redact`] scrubs it from any text.
pub fn register(secret: &SecretString) {
    let value = secret.expose_secret();
    if value.len() < MIN_REGISTERED_LEN {
        return;
    }
    if let Ok(mut list) = registry().write() {
        if !list.iter().any(|s| s == value) {
            list.push(value.to_string());
            // Longest first, so a secret that contains another is scrubbed whole.
            list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
}

/// Removes registered secrets and the values of well-known sensitive keys
/// (`access_token=…`, `"refresh_token":"…"`, `Bearer …`) from a text.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    if let Ok(list) = registry().read() {
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    if lower.contains("bearer ") || SENSITIVE_KEYS.iter().any(|k| lower.contains(k)) {
        out = Cow::Owned(scrub_patterns(&out));
    }
    out
}

fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+/=%".contains(c)
}

/// Scrubs `KEY<sep>VALUE` where KEY is sensitive, and `Bearer VALUE`.
fn scrub_patterns(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut markers: Vec<&str> = SENSITIVE_KEYS.to_vec();
    markers.push("bearer");
    for key in markers {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let key_end = from + pos + key.len();
            // Skip separators between the key and its value: quotes, colon, equals, spaces.
            let value_start = key_end
                + text[key_end..]
                    .chars()
                    .take_while(|c| matches!(c, '"' | '\'' | ':' | '=' | ' ' | '\\'))
                    .map(char::len_utf8)
                    .sum::<usize>();
            let value_len: usize = text[value_start..]
                .chars()
                .take_while(|c| is_value_char(*c))
                .map(char::len_utf8)
                .sum();
            if value_start > key_end && value_len > 0 && !text[value_start..].starts_with(REDACTED)
            {
                cuts.push((value_start, value_start + value_len));
            }
            from = key_end;
        }
    }
    cuts.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in cuts {
        if start < last {
            continue;
        }
        out.push_str(&text[last..start]);
        out.push_str(REDACTED);
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

/// Query parameters whose values [`redact_url`] hides: exact names, plus any
/// name ending in one of [`SENSITIVE_PARAM_SUFFIXES`].
const SENSITIVE_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "token",
    "secret",
    "key",
    "apikey",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "consumer_key",
    "consumer_secret",
    "sig",
    "signature",
    "auth",
    "authorization",
    "sslpassword",
];

const SENSITIVE_PARAM_SUFFIXES: &[&str] = &["password", "token", "secret", "_key", "-key"];

/// True when a query parameter of this name carries a credential.
fn is_sensitive_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SENSITIVE_PARAMS.contains(&n.as_str())
        || SENSITIVE_PARAM_SUFFIXES.iter().any(|s| n.ends_with(s))
}

/// The parts of a URL that are credentials: the userinfo password and the
/// values of password-like query parameters, as byte ranges of `url`.
fn url_secret_ranges(url: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let after_scheme = url.find("://").map(|i| i + 3);
    if let Some(start) = after_scheme {
        let rest = &url[start..];
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                if at > colon + 1 {
                    ranges.push((start + colon + 1, start + at));
                }
            }
        }
    }
    let query_from = after_scheme.unwrap_or(0);
    if let Some(q) = url[query_from..].find('?') {
        let q_start = query_from + q + 1;
        let q_end = url[q_start..].find('#').map_or(url.len(), |i| q_start + i);
        let mut pos = q_start;
        for pair in url[q_start..q_end].split('&') {
            if let Some(eq) = pair.find('=') {
                if is_sensitive_param(&pair[..eq]) && eq + 1 < pair.len() {
                    ranges.push((pos + eq + 1, pos + pair.len()));
                }
            }
            pos += pair.len() + 1;
        }
    }
    ranges
}

/// The one redaction of a URL that is printed (errors, logs, the CLI): the
/// userinfo password and the values of password-like query parameters
/// (`password`, `token`, `secret`, `key`, `access_token`, …) become `***`.
/// The scheme, user, host, port, path and other parameters stay readable.
///
/// ```
/// use synchub_http::secret::redact_url;
/// assert_eq!(
///     redact_url("postgres://app:pw@db:5432/crm?sslmode=require&password=x"),
///     "postgres://app:***@db:5432/crm?sslmode=require&password=***"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut last = 0;
    for (start, end) in url_secret_ranges(url) {
        out.push_str(&url[last..start]);
        out.push_str("***");
        last = end;
    }
    out.push_str(&url[last..]);
    out
}

/// Registers the credentials a URL carries (userinfo password, password-like
/// query values) with the redactor, so that [`redact`] and
/// [`RedactingMakeWriter`] scrub them from any text that quotes the URL.
pub fn register_url(url: &str) {
    for (start, end) in url_secret_ranges(url) {
        register(&SecretString::from(url[start..end].to_string()));
    }
}

/// A `tracing_subscriber` writer factory that scrubs every line with [`redact`]
/// before handing it to the wrapped writer.
///
/// ```no_run
/// use synchub_http::secret::RedactingMakeWriter;
/// tracing_subscriber::fmt().with_writer(RedactingMakeWriter::new(std::io::stderr)).init();
/// ```
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Wraps a writer factory.
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M> tracing_subscriber::fmt::MakeWriter<'a> for RedactingMakeWriter<M>
where
    M: tracing_subscriber::fmt::MakeWriter<'a>,
{
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
        }
    }
}

/// The writer made by [`RedactingMakeWriter`].
#[derive(Debug)]
pub struct RedactingWriter<W> {
    inner: W,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.inner.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn expands_env_references_and_names_missing_ones() {
        let got = expand_with("pre-${A}-${B}", |n| Some(format!("v{n}"))).unwrap();
        assert_eq!(got.expose_secret(), "pre-vA-vB");
        let err = expand_with("${NOPE}", |_| None).unwrap_err();
        assert!(err.to_string().contains("NOPE"));
        assert!(expand_with("${bad name}", |_| None).is_err());
    }

    #[test]
    fn urls_lose_passwords_and_password_like_parameters() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db.example:5432/crm"),
            "postgres://app:***@db.example:5432/crm"
        );
        assert_eq!(
            redact_url("postgres://app@db/crm?sslmode=disable&password=hunter2&application_name=x"),
            "postgres://app@db/crm?sslmode=disable&password=***&application_name=x"
        );
        assert_eq!(
            redact_url("https://u:tok@shop.example/x?api_key=k1&Access_Token=t&page=2#f"),
            "https://u:***@shop.example/x?api_key=***&Access_Token=***&page=2#f"
        );
        assert_eq!(redact_url("sqlite://synchub.db"), "sqlite://synchub.db");
        assert_eq!(redact_url("sqlite:x.db?key=abc"), "sqlite:x.db?key=***");
        assert_eq!(
            redact_url("https://user@host/p?token="),
            "https://user@host/p?token="
        );
    }

    #[test]
    fn registered_url_credentials_are_scrubbed_from_text() {
        register_url("https://shopuser:url-token-9876@shop.example/api");
        let out = redact("GET https://shopuser:url-token-9876@shop.example/api failed");
        assert!(!out.contains("url-token-9876"), "{out}");
    }

    #[test]
    fn debug_never_prints_the_value() {
        let s = SecretString::from("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn scrubs_registered_secrets_and_sensitive_keys() {
        register(&SecretString::from("registered-secret-123"));
        let line = "x=registered-secret-123 Authorization: Bearer abc.def \
                    {\"refresh_token\":\"rt-9\"} access_token=zz&y=1";
        let out = redact(line);
        assert!(!out.contains("registered-secret-123"));
        assert!(!out.contains("abc.def"));
        assert!(!out.contains("rt-9"));
        assert!(!out.contains("zz&"));
        assert!(out.contains("y=1"));
    }
}
