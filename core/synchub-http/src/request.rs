//! One request and its response: the builder a connector fills in, with the
//! retry-safety of a write made explicit ([`RequestBuilder::idempotent`] or
//! an [`IdempotencyKey`]), and the buffered [`Response`].

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::HttpClient;
use crate::error::HttpError;
use crate::secret::redact;

/// How a provider de-duplicates a repeated write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyKey {
    /// Sent as a header, e.g. `Idempotency-Key`.
    Header {
        /// Header name.
        name: HeaderName,
        /// The key, stable across retries of one logical write.
        value: String,
    },
    /// Sent as a query parameter, e.g. `requestid`.
    Query {
        /// Parameter name.
        name: String,
        /// The key.
        value: String,
    },
}

impl IdempotencyKey {
    /// Sent in the header `name`, cut to `max_len` characters when the
    /// provider bounds it. A name that is not a valid header name is refused.
    pub fn header(
        name: &str,
        key: impl Into<String>,
        max_len: Option<usize>,
    ) -> Result<Self, HttpError> {
        let name = HeaderName::try_from(name)
            .map_err(|_| HttpError::Config(format!("invalid header name `{name}`")))?;
        let mut value: String = key.into();
        if let Some(max) = max_len {
            if let Some((cut, _)) = value.char_indices().nth(max) {
                value.truncate(cut);
            }
        }
        Ok(Self::Header { name, value })
    }

    /// Sent as the query parameter `name` (a repeat returns the original response).
    pub fn query(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self::Query {
            name: name.into(),
            value: key.into(),
        }
    }
}

/// A request being built; finish with [`RequestBuilder::send`].
///
/// GET, HEAD and OPTIONS are retried after timeouts and 5xx answers. Any
/// other method is retried after such ambiguous failures only when marked
/// [`idempotent`](Self::idempotent) or given an [`IdempotencyKey`]; otherwise
/// the caller gets the error and must check (by a read) whether the write
/// landed. 429 and refused connections are always retried: the server did
/// not act on the request.
#[must_use = "a request does nothing until sent"]
#[derive(Debug)]
pub struct RequestBuilder<'a> {
    pub(crate) client: &'a HttpClient,
    pub(crate) method: Method,
    pub(crate) url: Result<Url, HttpError>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Result<Vec<u8>, HttpError>>,
    pub(crate) idempotent: bool,
    pub(crate) idempotency_key: Option<IdempotencyKey>,
    pub(crate) graphql_cost: Option<f64>,
    pub(crate) timeout: Option<Duration>,
}

impl<'a> RequestBuilder<'a> {
    /// Adds query parameters.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        if let Ok(url) = &mut self.url {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        self
    }

    /// Adds a header (a bad name or value is reported when sent).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::try_from(name),
            HeaderValue::try_from(value),
            &self.url,
        ) {
            (Ok(n), Ok(v), Ok(_)) => {
                self.headers.insert(n, v);
            }
            (_, _, Ok(_)) => {
                self.url = Err(HttpError::Config(format!("invalid header `{name}`")));
            }
            _ => {}
        }
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = Some(
            serde_json::to_vec(body)
                .map_err(|e| HttpError::Config(format!("cannot encode request body: {e}"))),
        );
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self
    }

    /// Sets a raw body with its content type.
    pub fn body(mut self, bytes: Vec<u8>, content_type: &'static str) -> Self {
        self.body = Some(Ok(bytes));
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        self
    }

    /// Declares that repeating this request has no further effect (PUT of a
    /// full resource, a GraphQL query sent with POST, a sparse update).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Attaches the provider's idempotency key, which makes the write retryable.
    pub fn idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Marks a call to a cost-priced API (GraphQL, typically) with its
    /// estimated (requested) cost: the call waits until the cost bucket the
    /// client's policy reports holds that many points, and an answer the
    /// policy reads as throttled is waited out and retried.
    pub fn graphql_cost(mut self, estimated_cost: u32) -> Self {
        self.graphql_cost = Some(f64::from(estimated_cost));
        self
    }

    /// Overrides the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request through the quota, auth and retry machinery.
    pub async fn send(self) -> Result<Response, HttpError> {
        let client = self.client;
        client.execute(self).await
    }

    pub(crate) fn retry_safe(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
            || self.idempotent
            || self.idempotency_key.is_some()
    }
}

/// A buffered response.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) host: String,
    pub(crate) attempts: u32,
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// How many requests it took.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Decodes a JSON body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            host: self.host.clone(),
            message: format!("invalid JSON: {e}"),
        })
    }

    /// Turns a 4xx/5xx into an error carrying a short, redacted body excerpt.
    pub fn error_for_status(self) -> Result<Self, HttpError> {
        if !(self.status.is_client_error() || self.status.is_server_error()) {
            return Ok(self);
        }
        let excerpt: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect();
        let message = redact(&excerpt).into_owned();
        if self.status == StatusCode::UNAUTHORIZED {
            return Err(HttpError::Auth {
                host: self.host,
                message: format!("401 Unauthorized: {message}"),
            });
        }
        Err(HttpError::Status {
            host: self.host,
            status: self.status.as_u16(),
            message,
        })
    }
}
