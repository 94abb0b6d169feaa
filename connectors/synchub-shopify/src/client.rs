//! The Admin GraphQL client, on the shared HTTP runtime (`synchub-http`):
//! the runtime holds the quota, follows the cost bucket from
//! `extensions.cost`, waits out THROTTLED answers and retries; this module
//! turns answers into data or classified [`ShopifyError`]s.

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use synchub_http::{Auth, HttpClient, QuotaConfig};

use crate::config::ShopifyConfig;
use crate::error::ShopifyError;

/// A client for one shop.
#[derive(Debug, Clone)]
pub struct ShopifyClient {
    http: HttpClient,
    path: String,
}

impl ShopifyClient {
    /// Builds the client (no IO).
    pub fn new(cfg: &ShopifyConfig) -> Result<Self, ShopifyError> {
        let shop_url = cfg.shop_url();
        let token = synchub_http::SecretString::from(cfg.access_token.expose_secret().to_string());
        let http = HttpClient::builder(shop_url.clone())
            .credential(format!("shopify:{shop_url}"))
            .quota(
                cfg.quota
                    .clone()
                    .unwrap_or_else(QuotaConfig::shopify_graphql),
            )
            .auth(Auth::header("X-Shopify-Access-Token", token))
            .build()
            .map_err(|e| ShopifyError::Config(e.to_string()))?;
        Ok(ShopifyClient {
            http,
            path: format!("/admin/api/{}/graphql.json", cfg.api_version),
        })
    }

    /// The runtime client (shares the quota), e.g. for the bulk download.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Runs a query or mutation; returns `data`. `cost` is the requested
    /// cost the runtime waits for; `retry_safe` marks reads and sparse updates.
    pub async fn graphql(
        &self,
        query: &str,
        variables: Value,
        cost: u32,
        retry_safe: bool,
    ) -> Result<Value, ShopifyError> {
        let mut req = self
            .http
            .post(&self.path)
            .json(&json!({"query": query, "variables": variables}))
            .graphql_cost(cost);
        if retry_safe {
            req = req.idempotent();
        }
        let resp = req.send().await?;
        let resp = resp.error_for_status()?;
        let body: Value = resp.json()?;
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
            let wait = synchub_http::graphql::CostReport::from_body(&body)
                .map(|c| c.wait_for_requested())
                .unwrap_or(std::time::Duration::from_secs(1));
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
