//! The HTTP client every connector uses: built once per connector instance
//! from a base URL, a credential id (which picks the shared quota), limits,
//! a retry policy and an auth method.
//!
//! ```no_run
//! # async fn demo(token: synchub_http::SecretString) -> Result<(), synchub_http::HttpError> {
//! use synchub_http::{Auth, HttpClient, QuotaConfig};
//! let shop = HttpClient::builder("https://shop.example.com.tw")
//!     .credential("example:shop-tw")
//!     .quota(QuotaConfig::per_second(2, 40))
//!     .auth(Auth::header("X-Access-Token", token))
//!     .build()?;
//! let page = shop.get("/api/customers.json").query(&[("limit", "250")]).send().await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::auth::Auth;
use crate::error::HttpError;
use crate::policy::{ResponsePolicy, StatusPolicy, Verdict};
use crate::quota::{CredentialQuota, QuotaConfig, QuotaRegistry, Refusal};
use crate::request::{IdempotencyKey, RequestBuilder, Response};
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::secret::{redact, redact_url, register, register_url};
use crate::throttle::Ticket;

/// Builds an [`HttpClient`].
#[derive(Debug)]
pub struct ClientBuilder {
    base_url: String,
    credential: Option<String>,
    quota: QuotaConfig,
    retry: RetryPolicy,
    auth: Auth,
    headers: HeaderMap,
    reqwest: Option<reqwest::Client>,
    policy: Option<Arc<dyn ResponsePolicy>>,
    ca_file: Option<PathBuf>,
}

impl ClientBuilder {
    /// Also trusts the CA certificates (PEM) in `path`, e.g. a company
    /// proxy's or a private CA, on top of the platform's trust store.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// How this API's answers are read (throttling, cost reports, budget
    /// headers); without one, [`StatusPolicy`] reads statuses and the
    /// common rate-limit headers. A request marked with
    /// [`RequestBuilder::graphql_cost`](crate::RequestBuilder::graphql_cost)
    /// needs a policy that reports the API's [`CostReport`](crate::cost::CostReport).
    pub fn policy(mut self, policy: Arc<dyn ResponsePolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The credential id that keys the shared quota (e.g. `KIND:SHOP`,
    /// `KIND:TENANT_ID`). Defaults to the base URL's host.
    pub fn credential(mut self, id: impl Into<String>) -> Self {
        self.credential = Some(id.into());
        self
    }

    /// Configured limits (the first client of a credential sets them).
    pub fn quota(mut self, quota: QuotaConfig) -> Self {
        self.quota = quota;
        self
    }

    /// Retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Authentication.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// A header sent on every request (e.g. a tenant id, `Accept`).
    pub fn default_header(mut self, name: &str, value: &str) -> Result<Self, HttpError> {
        let n = HeaderName::try_from(name)
            .map_err(|_| HttpError::Config(format!("invalid header name `{name}`")))?;
        let v = HeaderValue::try_from(value)
            .map_err(|_| HttpError::Config(format!("invalid value for header `{name}`")))?;
        self.headers.insert(n, v);
        Ok(self)
    }

    /// Shares a connection pool with other clients.
    pub fn reqwest_client(mut self, client: reqwest::Client) -> Self {
        self.reqwest = Some(client);
        self
    }

    /// Builds with the process-wide quota registry.
    pub fn build(self) -> Result<HttpClient, HttpError> {
        self.build_in(QuotaRegistry::global())
    }

    /// Builds with a given quota registry.
    pub fn build_in(self, registry: &QuotaRegistry) -> Result<HttpClient, HttpError> {
        // A `user:token@` in the base URL is a credential: scrubbed from logs and errors.
        register_url(&self.base_url);
        let shown = redact_url(&self.base_url);
        let base = Url::parse(&self.base_url)
            .map_err(|e| HttpError::Config(format!("invalid base URL `{shown}`: {e}")))?;
        let host = base
            .host_str()
            .ok_or_else(|| HttpError::Config(format!("base URL `{shown}` has no host")))?
            .to_string();
        let host = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let credential = redact_url(&self.credential.unwrap_or_else(|| host.clone()));
        let quota = registry.get(&credential, &self.quota)?;
        match &self.auth {
            Auth::Header { value, .. } => register(value),
            Auth::Basic { password, .. } => register(password),
            Auth::None | Auth::OAuth(_) => {}
        }
        let http = match self.reqwest {
            Some(c) => c,
            None => new_reqwest_client_trusting(self.ca_file.as_deref())?,
        };
        Ok(HttpClient {
            inner: Arc::new(Inner {
                http,
                base,
                host,
                quota,
                retry: self.retry,
                auth: self.auth,
                headers: self.headers,
                policy: self.policy.unwrap_or_else(|| Arc::new(StatusPolicy)),
            }),
        })
    }
}

/// A new connection pool with synchub's defaults (rustls trusting the
/// platform's store and the bundled roots, gzip, user agent).
pub fn new_reqwest_client() -> Result<reqwest::Client, HttpError> {
    new_reqwest_client_trusting(None)
}

/// [`new_reqwest_client`] that also trusts the PEM certificates in `ca_file`.
pub fn new_reqwest_client_trusting(ca_file: Option<&Path>) -> Result<reqwest::Client, HttpError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("synchub/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            HttpError::Config(format!("cannot read `ca_file` {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            HttpError::Config(format!(
                "`ca_file` {} holds no PEM certificate: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(HttpError::Config(format!(
                "`ca_file` {} holds no PEM certificate",
                path.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| HttpError::Config(format!("cannot build HTTP client: {e}")))
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    host: String,
    quota: Arc<CredentialQuota>,
    retry: RetryPolicy,
    auth: Auth,
    headers: HeaderMap,
    policy: Arc<dyn ResponsePolicy>,
}

/// A client for one remote API and credential. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl HttpClient {
    /// Starts building a client for `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            credential: None,
            quota: QuotaConfig::per_second(10, 10),
            retry: RetryPolicy::default(),
            auth: Auth::None,
            headers: HeaderMap::new(),
            reqwest: None,
            policy: None,
            ca_file: None,
        }
    }

    /// The host this client talks to (as named in errors).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The shared quota of this client's credential.
    pub fn quota(&self) -> &Arc<CredentialQuota> {
        &self.inner.quota
    }

    /// A request; `path` is joined to the base URL (an absolute URL is used as is).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        let url = self
            .inner
            .base
            .join(path)
            .map_err(|e| HttpError::Config(format!("invalid path `{}`: {e}", redact(path))));
        RequestBuilder {
            client: self,
            method,
            url,
            headers: self.inner.headers.clone(),
            body: None,
            idempotent: false,
            idempotency_key: None,
            graphql_cost: None,
            timeout: None,
        }
    }

    /// A GET request.
    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::GET, path)
    }

    /// A POST request.
    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }

    /// A PUT request.
    pub fn put(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::PUT, path)
    }

    /// A PATCH request.
    pub fn patch(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::PATCH, path)
    }

    /// A DELETE request.
    pub fn delete(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::DELETE, path)
    }

    fn unavailable(
        &self,
        attempts: u32,
        message: String,
        retry_after: Option<Duration>,
    ) -> HttpError {
        HttpError::Unavailable {
            host: self.inner.host.clone(),
            attempts,
            message: redact(&message).into_owned(),
            retry_after,
        }
    }

    pub(crate) async fn execute(&self, req: RequestBuilder<'_>) -> Result<Response, HttpError> {
        let inner = &self.inner;
        let policy = &inner.retry;
        let safe = req.retry_safe();
        let mut url = req.url?;
        if let Some(IdempotencyKey::Query { name, value }) = &req.idempotency_key {
            url.query_pairs_mut().append_pair(name, value);
        }
        let mut headers = req.headers;
        if let Some(IdempotencyKey::Header { name, value }) = &req.idempotency_key {
            let v = HeaderValue::try_from(value.as_str())
                .map_err(|_| HttpError::Config("invalid idempotency key".into()))?;
            headers.insert(name.clone(), v);
        }
        let body = req.body.transpose()?;
        let mut ticket = Ticket {
            graphql_cost: req.graphql_cost,
        };
        let timeout = req.timeout.unwrap_or(policy.attempt_timeout);
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            // A cost above the server's whole bucket can never be served: refuse, do not send.
            if let (Some(cost), Some(max)) = (ticket.graphql_cost, inner.quota.gate.cost_maximum())
            {
                if cost > max {
                    return Err(HttpError::Config(format!(
                        "a request costing {cost} points can never pass the cost bucket of \
                         {max} points of {}: ask for smaller pages",
                        inner.host
                    )));
                }
            }
            // Instances sharing the credential take from one budget first.
            let mut shared = match crate::shared_budget::admit(
                inner.quota.id(),
                inner.quota.config(),
                ticket.graphql_cost,
                policy.max_wait,
            )
            .await
            {
                crate::shared_budget::Admitted::Ready(shared) => shared,
                crate::shared_budget::Admitted::TooLong(wait) => {
                    return Err(self.unavailable(
                        attempt - 1,
                        format!("shared rate budget exhausted for {wait:?}"),
                        Some(wait),
                    ))
                }
            };
            let admission = inner.quota.admit(ticket, policy.max_wait).await;
            if admission.is_err() {
                if let Some(shared) = shared.take() {
                    shared.settle(None).await;
                }
            }
            let admission = admission.map_err(|refusal| match refusal {
                Refusal::TooLong(wait) => self.unavailable(
                    attempt - 1,
                    format!("rate budget exhausted for {:?}", wait),
                    Some(wait),
                ),
                Refusal::DailyCap(wait) => self.unavailable(
                    attempt - 1,
                    format!(
                        "daily request cap of credential {} reached",
                        inner.quota.id()
                    ),
                    Some(wait),
                ),
            })?;
            let (slot, reservation) = admission.into_parts();
            let mut request = inner.http.request(req.method.clone(), url.clone());
            let mut hs = headers.clone();
            let generation = match crate::auth::apply(&inner.auth, &mut hs).await {
                Ok(g) => g,
                Err(e) => {
                    if let Some(shared) = shared {
                        shared.settle(None).await;
                    }
                    return Err(e);
                }
            };
            request = request.headers(hs).timeout(timeout);
            if let Some(b) = &body {
                request = request.body(b.clone());
            }
            let sent = async {
                let resp = request.send().await?;
                let status = resp.status();
                let rh = resp.headers().clone();
                let bytes = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, rh, bytes))
            }
            .await;
            let (status, rh, bytes) = match sent {
                Ok(parts) => parts,
                Err(e) => {
                    inner
                        .quota
                        .gate
                        .cancel(tokio::time::Instant::now(), reservation);
                    // Points of a request that may have reached the server stay spent.
                    if let Some(shared) = shared.filter(|_| e.is_connect()) {
                        shared.settle(None).await;
                    }
                    let message = describe_transport(&e);
                    // An untrusted certificate is configuration, not a passing failure.
                    if is_certificate_error(&e) {
                        return Err(HttpError::Config(format!(
                            "the TLS certificate of {} is not trusted ({message}): set `ca_file` \
                             to the CA that signed it, or add that CA to the system trust store",
                            inner.host
                        )));
                    }
                    // A host name that does not exist will not exist in a
                    // minute either: a misspelled shop is configuration.
                    if is_unknown_host(&e) {
                        return Err(HttpError::Config(format!(
                            "the host {} does not exist (DNS: {message}): check the name or URL \
                             in the connection's settings",
                            inner.host
                        )));
                    }
                    // A refused connection never reached the server: always safe.
                    let retryable = (safe || e.is_connect())
                        && (e.is_timeout() || e.is_connect() || e.is_request() || e.is_body());
                    if !retryable {
                        let why = if safe {
                            ""
                        } else {
                            "; not retried: the write is not idempotent and its outcome is unknown"
                        };
                        return Err(self.unavailable(attempt, format!("{message}{why}"), None));
                    }
                    if attempt >= policy.max_attempts {
                        return Err(self.unavailable(attempt, message, None));
                    }
                    let wait = policy.backoff(attempt);
                    tracing::warn!(host = %inner.host, attempt, wait_ms = wait.as_millis(), error = %message, "request failed; retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let retry_after = parse_retry_after(&rh, SystemTime::now());
            let assessment = inner.policy.assess(status.as_u16(), &rh, &bytes);
            let budget = inner.policy.budget(status.as_u16(), &rh);
            let report = assessment.cost;
            inner.quota.gate.settle(
                tokio::time::Instant::now(),
                reservation,
                status.as_u16(),
                &budget,
                retry_after,
                report.as_ref(),
            );
            drop(slot);
            if let Some(shared) = shared {
                shared.settle(report.as_ref()).await;
            }
            if status.as_u16() == 401 && !refreshed {
                if let (Auth::OAuth(manager), Some(generation)) = (&inner.auth, generation) {
                    refreshed = true;
                    attempt -= 1;
                    tracing::info!(host = %inner.host, "401 from server; refreshing the access token once");
                    manager.refresh_rejected(generation).await?;
                    continue;
                }
            }
            let server_wait = match &assessment.verdict {
                Verdict::Throttled { wait } => Some(*wait),
                Verdict::Transient if safe => None,
                _ => {
                    return Ok(Response {
                        status,
                        headers: rh,
                        body: bytes.to_vec(),
                        host: inner.host.clone(),
                        attempts: attempt,
                    })
                }
            };
            // The server priced this request above our estimate: wait for its figure from now on.
            if let (Some(est), Some(r)) = (ticket.graphql_cost, &report) {
                ticket.graphql_cost = Some(est.max(r.requested));
            }
            let what = if status.as_u16() == 200 {
                "throttled (an HTTP 200 throttle answer)".to_string()
            } else {
                format!("HTTP {status}")
            };
            if attempt >= policy.max_attempts {
                return Err(self.unavailable(
                    attempt,
                    format!("{what} on every attempt"),
                    retry_after,
                ));
            }
            // Throttled: wait what the answer implies (its throttleStatus or
            // Retry-After) plus jitter, never a bare immediate retry.
            let wait = match (server_wait, retry_after, status.as_u16()) {
                (Some(Some(w)), _, _) => policy.wait_before_retry(attempt, Some(w)),
                (Some(None), Some(ra), _) => policy.wait_before_retry(attempt, Some(ra)),
                (Some(None), None, 429) => policy
                    .default_throttle_wait
                    .unwrap_or_else(|| policy.backoff(attempt).max(policy.initial_backoff)),
                (Some(None), None, _) => policy.backoff(attempt).max(policy.initial_backoff),
                (None, _, _) => policy.backoff(attempt),
            };
            if wait > policy.max_wait {
                return Err(self.unavailable(attempt, what, Some(wait)));
            }
            tracing::warn!(host = %inner.host, status = status.as_u16(), attempt, wait_ms = wait.as_millis(), "{what}; retrying");
            if let (429, Some(ra)) = (status.as_u16(), retry_after) {
                crate::shared_budget::pause(inner.quota.id(), inner.quota.config(), ra).await;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// True when the TLS handshake failed on the peer's certificate.
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("invalid peer certificate") || text.contains("certificate verify failed") {
            return true;
        }
        source = s.source();
    }
    false
}

/// The resolver says the name does not exist (not a temporary failure,
/// which is retried).
fn is_unknown_host(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("Name or service not known")
            || text.contains("No address associated with hostname")
            || text.contains("nodename nor servname provided")
            || text.contains("No such host is known")
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Describes a transport error without its URL (which may carry keys).
fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "connection broken while reading the answer"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", redact(&detail))
    }
}
