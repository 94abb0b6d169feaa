//! How a connector reads its API's answers: a [`ResponsePolicy`] classifies
//! each response (ok, throttled with the wait the server implies, transient,
//! auth, permanent) and reports the server's cost-bucket state and the
//! allowance its headers announce, so that a provider's conventions (a
//! cost block in a GraphQL body, a throttle error in an HTTP 200, its own
//! budget headers) live in the connector's crate while the runtime does the
//! waiting and retrying.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::budget::{read_budget, Budget, RATELIMIT_HEADERS};
use crate::cost::CostReport;

/// What a response means for the request that got it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Hand the response to the caller (success or an error it interprets).
    Ok,
    /// The server refused for rate reasons; retry after `wait` (when the
    /// server implied one) plus jitter.
    Throttled {
        /// The wait the answer implies, e.g. `(requested − available) / restoreRate`.
        wait: Option<Duration>,
    },
    /// A temporary failure: retried when the request is retry-safe.
    Transient,
    /// Credentials were refused: the caller re-authenticates.
    Auth,
    /// The request can never succeed as sent: no retry.
    Permanent,
}

/// The policy's reading of one response.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// What to do with the response.
    pub verdict: Verdict,
    /// The cost-bucket state the answer reports, mirrored by the runtime.
    pub cost: Option<CostReport>,
}

/// Classifies responses of one API; supplied per client with
/// [`crate::ClientBuilder::policy`].
pub trait ResponsePolicy: Send + Sync + fmt::Debug {
    /// Reads one response.
    fn assess(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Assessment;

    /// The allowance the answer's headers announce, mirrored by the
    /// runtime's throttle. By default the common `X-RateLimit-Remaining` /
    /// `RateLimit-Remaining` headers ([`RATELIMIT_HEADERS`]); an API with
    /// its own budget headers declares them with
    /// [`BudgetHeader`](crate::BudgetHeader)s and reads them here.
    fn budget(&self, status: u16, headers: &HeaderMap) -> Vec<Budget> {
        let _ = status;
        read_budget(headers, RATELIMIT_HEADERS)
    }
}

/// The default reading by status: 429 throttled (the runtime reads
/// `Retry-After`), 502–504 transient, 401 auth, other 4xx/5xx permanent.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusPolicy;

impl ResponsePolicy for StatusPolicy {
    fn assess(&self, status: u16, _headers: &HeaderMap, _body: &[u8]) -> Assessment {
        let verdict = match status {
            429 => Verdict::Throttled { wait: None },
            502..=504 => Verdict::Transient,
            401 => Verdict::Auth,
            _ => Verdict::Ok,
        };
        Assessment {
            verdict,
            cost: None,
        }
    }
}
