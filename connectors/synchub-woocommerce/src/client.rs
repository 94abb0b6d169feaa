//! The REST client, on the shared HTTP runtime (Basic auth with the consumer
//! key/secret, quota, retries). Turns WooCommerce error bodies
//! (`{"code","message","data":{"status"}}`) into classified [`WooError`]s.

use secrecy::ExposeSecret;
use serde_json::Value;
use synchub_http::{Auth, HttpClient, QuotaConfig, Response};

use crate::config::WooConfig;
use crate::error::WooError;

/// The request quota of one store unless `quota` overrides it: WooCommerce
/// has no built-in limit, so be polite to the host: 5/s, 2 in flight.
pub fn default_quota() -> QuotaConfig {
    QuotaConfig::per_second(5, 5).with_max_concurrency(2)
}

/// A client for one store.
#[derive(Debug, Clone)]
pub struct WooClient {
    http: HttpClient,
    root: String,
}

/// One list page.
#[derive(Debug)]
pub struct ListPage {
    /// The items.
    pub items: Vec<Value>,
    /// `X-WP-TotalPages`.
    pub total_pages: u32,
    /// `X-WP-Total`.
    pub total: u64,
    /// The server's `Date`.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
}

impl WooClient {
    /// Builds the client (no IO).
    pub fn new(cfg: &WooConfig) -> Result<Self, WooError> {
        let password =
            synchub_http::SecretString::from(cfg.consumer_secret.expose_secret().to_string());
        let mut builder = HttpClient::builder(cfg.api_root())
            .credential(format!("woocommerce:{}", cfg.base_url))
            .quota(cfg.quota.clone().unwrap_or_else(default_quota))
            .auth(Auth::Basic {
                user: cfg.consumer_key.clone(),
                password,
            });
        if let Some(ca) = &cfg.ca_file {
            builder = builder.ca_file(ca);
        }
        let http = builder
            .build()
            .map_err(|e| WooError::Config(e.to_string()))?;
        Ok(WooClient {
            http,
            root: cfg.api_root(),
        })
    }

    /// `GET {resource}?…` as a list page.
    pub async fn list(&self, resource: &str, query: &[(&str, &str)]) -> Result<ListPage, WooError> {
        let resp = check(
            self.http
                .get(&format!("{}{resource}", self.root))
                .query(query)
                .send()
                .await?,
        )?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        };
        let total_pages = header("x-wp-totalpages").unwrap_or(1);
        let total = header("x-wp-total").unwrap_or(0);
        let date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc));
        let items = match resp.json::<Value>()? {
            Value::Array(items) => items,
            other => {
                return Err(WooError::Protocol(format!(
                    "{resource} list is not an array: {}",
                    kind(&other)
                )))
            }
        };
        Ok(ListPage {
            items,
            total_pages: u32::try_from(total_pages).unwrap_or(u32::MAX),
            total,
            date,
        })
    }

    /// `POST` or `PUT` a JSON body; returns the answer body.
    pub async fn write(
        &self,
        method: &str,
        resource: &str,
        body: &Value,
        retry_safe: bool,
    ) -> Result<Value, WooError> {
        let url = format!("{}{resource}", self.root);
        let req = if method == "PUT" {
            self.http.put(&url)
        } else {
            self.http.post(&url)
        };
        let req = if retry_safe { req.idempotent() } else { req };
        let resp = check(req.json(body).send().await?)?;
        Ok(resp.json()?)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        _ => "not JSON",
    }
}

/// WooCommerce's error body as a classified error.
pub fn check(resp: Response) -> Result<Response, WooError> {
    let status = resp.status().as_u16();
    if status < 400 {
        return Ok(resp);
    }
    let body: Value = resp.json().unwrap_or(Value::Null);
    let code = body["code"].as_str().unwrap_or("http_error");
    let message = body["message"].as_str().unwrap_or("no message");
    let text = format!("{status} {code}: {message}");
    match status {
        401 | 403 => Err(WooError::Auth(text)),
        409 => Err(WooError::Conflict(text)),
        // what reaches here was not repeated by the runtime (a create):
        // transient, with the wait the host asked for
        429 | 500.. => Err(WooError::Busy {
            status,
            retry_after: synchub_http::retry::parse_retry_after(
                resp.headers(),
                std::time::SystemTime::now(),
            ),
        }),
        _ => Err(WooError::Protocol(text)),
    }
}
