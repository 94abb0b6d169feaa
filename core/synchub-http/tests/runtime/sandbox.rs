//! In-process sandboxes (wiremock responders) that enforce Shopify's limits:
//! the REST leaky bucket (429 + Retry-After when over) and the GraphQL cost
//! bucket (200 + THROTTLED when over). Shared by the tests and the benchmark.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wiremock::{Request, ResponseTemplate};

/// Counters a sandbox keeps.
#[derive(Debug, Default)]
pub struct Counters {
    pub served: AtomicU64,
    pub throttled: AtomicU64,
    pub records: AtomicU64,
    /// GraphQL points actually consumed.
    pub points: AtomicU64,
}

/// Shopify REST leaky bucket: `capacity` requests, leaking `leak_per_sec`.
pub fn rest_bucket(
    capacity: f64,
    leak_per_sec: f64,
    page_size: usize,
    counters: Arc<Counters>,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
    let state = Mutex::new((0.0f64, Instant::now()));
    let page: String = {
        let items: Vec<String> = (0..page_size)
            .map(|i| format!(r#"{{"id":{i},"email":"c{i}@example.com.tw","first_name":"美玲","last_name":"林"}}"#))
            .collect();
        format!(r#"{{"customers":[{}]}}"#, items.join(","))
    };
    move |_req: &Request| {
        let mut s = state.lock().unwrap();
        let now = Instant::now();
        s.0 = (s.0 - now.duration_since(s.1).as_secs_f64() * leak_per_sec).max(0.0);
        s.1 = now;
        if s.0 + 1.0 > capacity {
            counters.throttled.fetch_add(1, Ordering::SeqCst);
            let wait = (s.0 + 1.0 - capacity) / leak_per_sec;
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", format!("{wait:.1}").as_str())
                .insert_header("X-Shopify-Shop-Api-Call-Limit", format!("{capacity}/{capacity}").as_str())
                .set_body_string(r#"{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}"#);
        }
        s.0 += 1.0;
        counters.served.fetch_add(1, Ordering::SeqCst);
        counters
            .records
            .fetch_add(page_size as u64, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .insert_header(
                "X-Shopify-Shop-Api-Call-Limit",
                format!("{}/{}", s.0.ceil(), capacity).as_str(),
            )
            .insert_header("content-type", "application/json")
            .set_body_string(page.clone())
    }
}

/// Shopify GraphQL cost bucket. The requested cost of a query is
/// `2 + variables.first`; the actual cost `2 + first * 3 / 4` (refund of the rest).
pub fn graphql_bucket(
    maximum: f64,
    restore_per_sec: f64,
    counters: Arc<Counters>,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static {
    let state = Mutex::new((maximum, Instant::now()));
    move |req: &Request| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let first = body["variables"]["first"].as_u64().unwrap_or(10);
        let requested = 2.0 + first as f64;
        let actual = 2.0 + (first * 3 / 4) as f64;
        let mut s = state.lock().unwrap();
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * restore_per_sec).min(maximum);
        s.1 = now;
        let status = |avail: f64| serde_json::json!({"maximumAvailable": maximum, "currentlyAvailable": avail.floor(), "restoreRate": restore_per_sec});
        if requested > 1000.0 {
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "errors": [{"message": format!("Query cost is {requested}, which exceeds the single query max cost limit (1000)."),
                            "extensions": {"code": "MAX_COST_EXCEEDED"}}]}));
        }
        if s.0 < requested {
            counters.throttled.fetch_add(1, Ordering::SeqCst);
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": null,
                    "throttleStatus": status(s.0)}}}));
        }
        s.0 -= actual;
        counters.served.fetch_add(1, Ordering::SeqCst);
        counters.records.fetch_add(first, Ordering::SeqCst);
        counters.points.fetch_add(actual as u64, Ordering::SeqCst);
        let nodes: Vec<serde_json::Value> = (0..first)
            .map(|i| serde_json::json!({"id": format!("gid://shopify/Customer/{i}")}))
            .collect();
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "data": {"customers": {"pageInfo": {"hasNextPage": true, "endCursor": "c"}, "nodes": nodes}},
            "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": status(s.0)}}}))
    }
}

/// How the sandboxes answer, read the way a connector's policy would: the
/// REST bucket's `used/size` header and the GraphQL cost block and
/// THROTTLED error. (The real connector's policy lives in its crate; the
/// runtime is tested here with its own.)
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxPolicy;

/// The REST sandbox's budget header.
pub const CALL_LIMIT: synchub_http::BudgetHeader =
    synchub_http::BudgetHeader::UsedOfSize("x-shopify-shop-api-call-limit");

impl synchub_http::ResponsePolicy for SandboxPolicy {
    fn assess(
        &self,
        status: u16,
        _headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> synchub_http::Assessment {
        use synchub_http::{CostReport, Verdict};
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let cost = json.as_ref().and_then(|b| {
            let c = b.get("extensions")?.get("cost")?;
            let t = c.get("throttleStatus")?;
            Some(CostReport {
                requested: c.get("requestedQueryCost")?.as_f64()?,
                actual: c.get("actualQueryCost").and_then(serde_json::Value::as_f64),
                maximum: t.get("maximumAvailable")?.as_f64()?,
                currently_available: t.get("currentlyAvailable")?.as_f64()?,
                restore_rate: t.get("restoreRate")?.as_f64()?,
            })
        });
        let throttled = json.as_ref().is_some_and(|b| {
            b["errors"].as_array().is_some_and(|errors| {
                errors
                    .iter()
                    .any(|e| e["extensions"]["code"].as_str() == Some("THROTTLED"))
            })
        });
        let verdict = match status {
            200 if throttled => Verdict::Throttled {
                wait: cost.as_ref().map(CostReport::wait_for_requested),
            },
            429 => Verdict::Throttled { wait: None },
            502..=504 => Verdict::Transient,
            _ => Verdict::Ok,
        };
        synchub_http::Assessment { verdict, cost }
    }

    fn budget(
        &self,
        _status: u16,
        headers: &reqwest::header::HeaderMap,
    ) -> Vec<synchub_http::Budget> {
        CALL_LIMIT.read(headers).into_iter().collect()
    }
}
