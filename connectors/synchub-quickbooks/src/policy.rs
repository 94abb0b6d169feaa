//! QuickBooks Online's limits and how its answers are read: the per-realm
//! quota, the response policy (429 = throttled, wait 60 s: Intuit sends no
//! reliable `Retry-After`), and the `Fault` envelope of error bodies.
//! <https://developer.intuit.com/app/developer/qbo/docs/learn/limits-and-throttles>

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use synchub_http::{Assessment, QuotaConfig, ResponsePolicy, Verdict};

/// Per realm and app: 500 requests a minute, at most 10 in flight (and
/// 10 a second, which a burst of 10 keeps).
pub fn default_quota() -> QuotaConfig {
    QuotaConfig::per_minute(500, 10).with_max_concurrency(10)
}

/// Reads QuickBooks answers.
#[derive(Debug, Clone)]
pub struct QuickBooksPolicy {
    /// The wait after a 429.
    pub throttle_wait: Duration,
}

impl ResponsePolicy for QuickBooksPolicy {
    fn assess(&self, status: u16, _headers: &HeaderMap, _body: &[u8]) -> Assessment {
        let verdict = match status {
            // Key off the status, not the (unconfirmed) body code 003001.
            429 => Verdict::Throttled {
                wait: Some(self.throttle_wait),
            },
            401 => Verdict::Auth,
            500 | 502..=504 => Verdict::Transient,
            _ => Verdict::Ok,
        };
        Assessment {
            verdict,
            cost: None,
        }
    }
}

/// The `Fault` envelope of an error answer.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultBody {
    /// The fault.
    #[serde(rename = "Fault")]
    pub fault: Fault,
}

/// A fault: a type and its errors.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    /// `ValidationFault`, `AuthenticationFault`, `AuthorizationFault`, `SystemFault`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The errors.
    #[serde(rename = "Error", default)]
    pub errors: Vec<FaultError>,
}

/// One error of a fault.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultError {
    /// Short message.
    #[serde(rename = "Message", default)]
    pub message: String,
    /// Longer text.
    #[serde(rename = "Detail", default)]
    pub detail: String,
    /// Numeric code as text (`5010` stale object, `6240` duplicate name, `610` not found).
    #[serde(default)]
    pub code: String,
    /// The element at fault.
    #[serde(default)]
    pub element: Option<String>,
}

/// Stale SyncToken.
pub const CODE_STALE: &str = "5010";
/// Duplicate DisplayName.
pub const CODE_DUPLICATE_NAME: &str = "6240";
/// Object not found.
pub const CODE_NOT_FOUND: &str = "610";

impl Fault {
    /// Parses a fault body; `None` when the body is not one.
    pub fn parse(body: &[u8]) -> Option<Fault> {
        serde_json::from_slice::<FaultBody>(body)
            .ok()
            .map(|f| f.fault)
    }

    /// True when any error carries `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    /// A one-line description (`ValidationFault 5010 Stale Object Error: …`).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| {
                let mut s = format!("{} {}", e.code, e.message);
                if !e.detail.is_empty() && e.detail != e.message {
                    s.push_str(": ");
                    s.push_str(&e.detail);
                }
                if let Some(el) = e.element.as_deref().filter(|el| !el.is_empty()) {
                    s.push_str(&format!(" (element {el})"));
                }
                s
            })
            .collect();
        format!("{} {}", self.kind, parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    #[test]
    fn fixture_faults_parse_with_their_codes() {
        let stale = Fault::parse(&fixture("fault_stale_object.json")).expect("stale");
        assert!(stale.has_code(CODE_STALE));
        assert!(stale.describe().contains("Stale Object Error"));
        let auth = Fault::parse(&fixture("fault_auth_401.json")).expect("auth");
        assert_eq!(auth.kind, "AuthenticationFault");
        assert!(Fault::parse(br#"{"QueryResponse":{}}"#).is_none());
    }

    #[test]
    fn a_429_is_throttled_for_the_configured_wait() {
        let p = QuickBooksPolicy {
            throttle_wait: Duration::from_secs(60),
        };
        let a = p.assess(429, &HeaderMap::new(), &fixture("fault_throttle_429.json"));
        assert_eq!(
            a.verdict,
            Verdict::Throttled {
                wait: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(p.assess(400, &HeaderMap::new(), b"").verdict, Verdict::Ok);
    }
}
