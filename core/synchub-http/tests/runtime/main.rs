//! Integration tests of the HTTP runtime against wiremock servers.
#![allow(clippy::unwrap_used)]

mod oauth;
mod quotas;
mod retries;
mod sandbox;
mod secrets;
mod sigkill;
mod tls;
mod webhooks;

/// A fast retry policy for tests.
pub fn fast_retry(max_attempts: u32) -> synchub_http::RetryPolicy {
    synchub_http::RetryPolicy {
        max_attempts,
        initial_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(50),
        max_wait: std::time::Duration::from_secs(10),
        default_throttle_wait: None,
        attempt_timeout: std::time::Duration::from_secs(5),
    }
}
