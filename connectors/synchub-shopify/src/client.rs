//! The Admin GraphQL client, on the shared HTTP runtime (`synchub-http`):
//! every request carries its requested cost (Shopify's documented rules
//! applied to the exact text, see [`crate::cost`], raised to what the shop
//! charged for the same shape before), a query over the 1,000-point maximum
//! is never sent, and [`ShopifyGraphqlPolicy`] tells the runtime how to read
//! `extensions.cost` and THROTTLED, so that the runtime mirrors the bucket,
//! waits exactly `(requested − available) / restoreRate` and waits out a
//! THROTTLED answer by its own throttleStatus. This module turns answers
//! into data or classified [`ShopifyError`]s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use synchub_http::{
    Assessment, Auth, Budget, CostReport, HttpClient, QuotaConfig, ResponsePolicy, Verdict,
};

use crate::config::ShopifyConfig;
use crate::cost::{self, MAX_SINGLE_QUERY_COST};
use crate::error::ShopifyError;

/// The request quota of one shop unless `quota` overrides it: the GraphQL
/// cost bucket does the real limiting (read from every answer), so this only
/// bounds the request rate and how many are in flight.
pub fn default_quota() -> QuotaConfig {
    QuotaConfig::per_second(50, 50).with_max_concurrency(8)
}

/// A client for one shop.
#[derive(Debug, Clone)]
pub struct ShopifyClient {
    http: HttpClient,
    path: String,
    /// `requestedQueryCost` the shop charged, per query shape (document and
    /// page sizes), when it was above our own calculation.
    learned: Arc<Mutex<HashMap<String, u32>>>,
    /// `throttleStatus.restoreRate` of the last answer that carried one.
    restore_rate: Arc<Mutex<Option<f64>>>,
}

/// How the Admin GraphQL API answers: `extensions.cost` on every answer,
/// `THROTTLED` as an HTTP 200 error body whose throttleStatus says how long
/// until the requested cost is available, 429/5xx as usual.
///
/// <https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits>
#[derive(Debug, Clone, Copy, Default)]
pub struct ShopifyGraphqlPolicy;

impl ResponsePolicy for ShopifyGraphqlPolicy {
    fn assess(&self, status: u16, _headers: &http::HeaderMap, body: &[u8]) -> Assessment {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let cost = json.as_ref().and_then(cost_report);
        let verdict = match status {
            200 if json.as_ref().is_some_and(|b| has_code(b, "THROTTLED")) => Verdict::Throttled {
                wait: cost.as_ref().map(wait_for_requested),
            },
            429 => Verdict::Throttled { wait: None },
            502..=504 => Verdict::Transient,
            401 => Verdict::Auth,
            _ => Verdict::Ok,
        };
        Assessment { verdict, cost }
    }

    /// The REST bucket ([`crate::throttle::CALL_LIMIT`]) when an answer
    /// reports it; GraphQL answers report their cost instead.
    fn budget(&self, _status: u16, headers: &http::HeaderMap) -> Vec<Budget> {
        crate::throttle::CALL_LIMIT
            .read(headers)
            .into_iter()
            .collect()
    }
}

/// Reads `extensions.cost` (numbers may be floats like `2000.0`).
pub fn cost_report(body: &Value) -> Option<CostReport> {
    let cost = body.get("extensions")?.get("cost")?;
    let status = cost.get("throttleStatus")?;
    Some(CostReport {
        requested: cost.get("requestedQueryCost")?.as_f64()?,
        actual: cost.get("actualQueryCost").and_then(Value::as_f64),
        maximum: status.get("maximumAvailable")?.as_f64()?,
        currently_available: status.get("currentlyAvailable")?.as_f64()?,
        restore_rate: status.get("restoreRate")?.as_f64()?,
    })
}

/// `(requested − currentlyAvailable) / restoreRate`: how long until the
/// shop can run the query again.
pub fn wait_for_requested(c: &CostReport) -> Duration {
    if c.restore_rate <= 0.0 {
        return Duration::from_secs(1);
    }
    let missing = (c.requested.min(c.maximum) - c.currently_available).max(0.0);
    Duration::try_from_secs_f64(missing / c.restore_rate).unwrap_or(Duration::from_secs(1))
}

fn has_code(body: &Value, code: &str) -> bool {
    body.get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some(code))
}

/// The cost-relevant shape of a request: the document and its page sizes.
fn shape_key(query: &str, variables: &Value) -> String {
    let sizes: Vec<String> = ["first", "last", "lines"]
        .iter()
        .filter_map(|k| variables.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    format!("{}|{}", sizes.join(","), query)
}

impl ShopifyClient {
    /// Builds the client (no IO).
    pub fn new(cfg: &ShopifyConfig) -> Result<Self, ShopifyError> {
        let shop_url = cfg.shop_url();
        let token = synchub_http::SecretString::from(cfg.access_token.expose_secret().to_string());
        let mut builder = HttpClient::builder(shop_url.clone())
            .credential(format!("shopify:{shop_url}"))
            .quota(cfg.quota.clone().unwrap_or_else(default_quota))
            .auth(Auth::header("X-Shopify-Access-Token", token))
            .policy(Arc::new(ShopifyGraphqlPolicy));
        if let Some(ca) = &cfg.ca_file {
            builder = builder.ca_file(ca);
        }
        let http = builder
            .build()
            .map_err(|e| ShopifyError::Config(e.to_string()))?;
        Ok(ShopifyClient {
            http,
            path: format!("/admin/api/{}/graphql.json", cfg.api_version),
            learned: Arc::default(),
            restore_rate: Arc::default(),
        })
    }

    /// The runtime client (shares the quota), e.g. for the bulk download.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The restore rate (points per second) the last answer's
    /// `throttleStatus` reported; `None` before the first answer.
    pub fn restore_rate(&self) -> Option<f64> {
        *self.restore_rate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The requested cost the shop will charge for `query` with `variables`:
    /// Shopify's documented rules applied to the exact text, or what the
    /// shop charged for this shape before if that was more.
    pub fn requested_cost(&self, query: &str, variables: &Value) -> Result<u32, ShopifyError> {
        let computed = cost::requested_cost(query, variables)
            .map_err(|e| ShopifyError::Protocol(format!("cannot price our own query: {e}")))?;
        let learned = self
            .learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&shape_key(query, variables))
            .copied();
        Ok(learned.map_or(computed, |l| l.max(computed)))
    }

    /// Runs a query or mutation; returns `data`. The runtime waits until the
    /// shop's bucket holds the requested cost; a query over the single-query
    /// maximum is refused here and never sent. `retry_safe` marks reads and
    /// sparse updates.
    pub async fn graphql(
        &self,
        query: &str,
        variables: Value,
        retry_safe: bool,
    ) -> Result<Value, ShopifyError> {
        let cost = self.requested_cost(query, &variables)?;
        if cost > MAX_SINGLE_QUERY_COST {
            return Err(ShopifyError::MaxCost(format!(
                "query cost is {cost}, over the single query max cost limit \
                 ({MAX_SINGLE_QUERY_COST}) of {}; not sent",
                self.http.host()
            )));
        }
        let mut req = self
            .http
            .post(&self.path)
            .json(&json!({"query": query, "variables": variables}))
            .graphql_cost(cost);
        if retry_safe {
            req = req.idempotent();
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        if status == 429 || status >= 500 {
            // A write the runtime does not repeat (its outcome is unknown):
            // transient, with the wait the shop asked for.
            return Err(ShopifyError::Busy {
                status,
                retry_after: synchub_http::retry::parse_retry_after(
                    resp.headers(),
                    std::time::SystemTime::now(),
                ),
            });
        }
        let resp = resp.error_for_status()?;
        let body: Value = resp.json()?;
        if let Some(report) = cost_report(&body) {
            if report.restore_rate > 0.0 {
                *self.restore_rate.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(report.restore_rate);
            }
            if report.requested > f64::from(cost) {
                let charged = report.requested.ceil().min(f64::from(u32::MAX)) as u32;
                tracing::debug!(host = %self.http.host(), computed = cost, charged, "shop prices this query higher; learned");
                self.learned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(shape_key(query, &variables), charged);
            }
        }
        interpret(body)
    }
}

/// Splits a GraphQL answer into `data` or a classified error.
pub fn interpret(mut body: Value) -> Result<Value, ShopifyError> {
    if let Some(errors) = body
        .get("errors")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
    {
        let codes: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("extensions")?.get("code")?.as_str())
            .collect();
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("message")?.as_str())
            .collect();
        let first_line = messages
            .first()
            .and_then(|m| m.lines().next())
            .unwrap_or("error");
        if codes.contains(&"THROTTLED") {
            let wait = cost_report(&body)
                .map(|c| wait_for_requested(&c))
                .unwrap_or(Duration::from_secs(1));
            return Err(ShopifyError::Throttled { retry_after: wait });
        }
        if codes.contains(&"MAX_COST_EXCEEDED") {
            return Err(ShopifyError::MaxCost(first_line.to_string()));
        }
        if codes
            .iter()
            .any(|c| *c == "ACCESS_DENIED" || *c == "UNAUTHORIZED")
        {
            return Err(ShopifyError::Auth(first_line.to_string()));
        }
        return Err(ShopifyError::Protocol(messages.join("; ")));
    }
    match body.get_mut("data").map(Value::take) {
        Some(data) if data.is_object() => Ok(data),
        _ => Err(ShopifyError::Protocol("answer has no `data`".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    #[test]
    fn classifies_the_fixture_answers() {
        let page = interpret(fixture("graphql_customers_page.json")).expect("data");
        assert!(page["customers"]["nodes"].is_array());
        match interpret(fixture("graphql_throttled.json")) {
            Err(ShopifyError::Throttled { retry_after }) => {
                assert_eq!(retry_after, std::time::Duration::from_millis(3590))
            }
            other => panic!("{other:?}"),
        }
        match interpret(fixture("graphql_max_cost_exceeded.json")) {
            Err(ShopifyError::MaxCost(m)) => assert!(m.starts_with("Query cost is 1502")),
            other => panic!("{other:?}"),
        }
    }
}
