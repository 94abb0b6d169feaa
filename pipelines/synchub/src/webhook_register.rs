//! `synchub check --register-webhooks --public-url URL`: subscribes each
//! shop connection to the webhook topics the daemon syncs, at
//! `URL/webhooks/<connection name>`, where the provider's API allows it:
//! Shopify (REST `webhooks.json`; deliveries are signed with the app's
//! client secret, the value of `webhook_secrets`) and WooCommerce
//! (`POST /webhooks` with the connection's `webhook_secret`). The existing
//! subscriptions are listed first, so a second run registers nothing new.
//!
//! With `--public-url` alone nothing is created: each connection's line
//! says which topics are not subscribed yet.
//!
//! The topics are those the connectors' classifiers sync (the docs check
//! asserts both guides list exactly these and that the daemon syncs each).

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use synchub_core::ObjectKind;
use synchub_engine::config::ConnectionConfig;
use synchub_http::ExposeSecret;

use crate::scopes::syncs;

/// Shopify topics the daemon syncs, by object.
pub const SHOPIFY_TOPICS: &[(&str, ObjectKind)] = &[
    ("customers/create", ObjectKind::Contact),
    ("customers/update", ObjectKind::Contact),
    ("customers/delete", ObjectKind::Contact),
    ("orders/create", ObjectKind::Order),
    ("orders/updated", ObjectKind::Order),
    ("orders/paid", ObjectKind::Order),
    ("orders/cancelled", ObjectKind::Order),
    ("orders/fulfilled", ObjectKind::Order),
    ("orders/delete", ObjectKind::Order),
];

/// WooCommerce topics the daemon syncs, by object.
pub const WOO_TOPICS: &[(&str, ObjectKind)] = &[
    ("customer.created", ObjectKind::Contact),
    ("customer.updated", ObjectKind::Contact),
    ("customer.deleted", ObjectKind::Contact),
    ("order.created", ObjectKind::Order),
    ("order.updated", ObjectKind::Order),
    ("order.deleted", ObjectKind::Order),
];

/// What one connection's registration did.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// The delivery URL.
    pub address: String,
    /// Topics subscribed by this run.
    pub registered: Vec<String>,
    /// Topics that were subscribed already.
    pub existing: Vec<String>,
    /// Only looked: `registered` lists the topics that are missing.
    pub dry: bool,
}

/// Whether this build can register webhooks for `kind`.
pub fn supports(kind: &str) -> bool {
    matches!(kind, "shopify" | "woocommerce")
}

/// The topics a connection should be subscribed to: those of the objects it
/// reads (a push-only connection needs none).
pub fn topics_for(cfg: &ConnectionConfig) -> Vec<&'static str> {
    let table = match cfg.kind.as_str() {
        "shopify" => SHOPIFY_TOPICS,
        "woocommerce" => WOO_TOPICS,
        _ => return Vec::new(),
    };
    if !cfg.direction.pulls() {
        return Vec::new();
    }
    table
        .iter()
        .filter(|(_, object)| syncs(cfg, *object))
        .map(|(topic, _)| *topic)
        .collect()
}

/// `public_url` + `/webhooks/<name>`.
pub fn address(public_url: &str, name: &str) -> String {
    format!("{}/webhooks/{name}", public_url.trim_end_matches('/'))
}

/// Registers the missing subscriptions of one connection; with `dry`, only
/// lists which are missing.
pub async fn register(
    cfg: &ConnectionConfig,
    public_url: &str,
    dry: bool,
) -> anyhow::Result<Registration> {
    let address = address(public_url, &cfg.name);
    let topics = topics_for(cfg);
    let mut done = match cfg.kind.as_str() {
        "shopify" => shopify(cfg, &address, &topics, dry).await,
        "woocommerce" => woocommerce(cfg, &address, &topics, dry).await,
        other => bail!("{other} has no webhooks this build can register"),
    }?;
    done.dry = dry;
    Ok(done)
}

fn split(existing: &[(String, String)], address: &str, topics: &[&str]) -> Registration {
    let (have, want): (Vec<&str>, Vec<&str>) = topics
        .iter()
        .partition(|t| existing.iter().any(|(et, ea)| et == *t && ea == address));
    Registration {
        address: address.to_string(),
        registered: want.into_iter().map(str::to_string).collect(),
        existing: have.into_iter().map(str::to_string).collect(),
        dry: false,
    }
}

async fn shopify(
    cfg: &ConnectionConfig,
    address: &str,
    topics: &[&str],
    dry: bool,
) -> anyhow::Result<Registration> {
    let shop: synchub_shopify::ShopifyConfig = serde_json::from_value(cfg.config.clone())?;
    if shop.webhook_secrets.is_empty() {
        bail!(
            "`webhook_secrets` is empty, so every delivery would be refused: set it to the app's \
             client secret first"
        );
    }
    let client = synchub_shopify::client::ShopifyClient::new(&shop)?;
    let http = client.http();
    let path = format!("/admin/api/{}/webhooks.json", shop.api_version);
    let resp = http
        .get(&path)
        .query(&[("limit", "250")])
        .idempotent()
        .send()
        .await?;
    let body = shopify_body(resp.status().as_u16(), &resp.text())?;
    let existing: Vec<(String, String)> = body["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let field = |k: &str| w[k].as_str().unwrap_or_default().to_string();
            (field("topic"), field("address"))
        })
        .collect();
    let mut plan = split(&existing, address, topics);
    if dry {
        return Ok(plan);
    }
    let mut done = Vec::new();
    for topic in std::mem::take(&mut plan.registered) {
        let hook = json!({"webhook": {"topic": topic, "address": address, "format": "json"}});
        let resp = http.post(&path).json(&hook).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text();
        if status == 422 && text.contains("already been taken") {
            plan.existing.push(topic);
            continue;
        }
        shopify_body(status, &text).map_err(|e| anyhow!("{topic}: {e}"))?;
        done.push(topic);
    }
    plan.registered = done;
    Ok(plan)
}

/// A Shopify REST answer's body, or the error it carries (a 403 names the
/// scope Shopify wants).
fn shopify_body(status: u16, text: &str) -> anyhow::Result<Value> {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if status < 400 {
        return Ok(body);
    }
    let errors = match &body["errors"] {
        Value::String(s) => s.clone(),
        Value::Null => format!("HTTP {status}"),
        other => other.to_string(),
    };
    bail!("shopify answered {status}: {errors}")
}

async fn woocommerce(
    cfg: &ConnectionConfig,
    address: &str,
    topics: &[&str],
    dry: bool,
) -> anyhow::Result<Registration> {
    let store: synchub_woocommerce::WooConfig = serde_json::from_value(cfg.config.clone())?;
    let Some(secret) = store.webhook_secret.as_ref() else {
        bail!(
            "`webhook_secret` is not set, so deliveries could not be verified: set it (any long \
             random value) first; it is sent to the store as each webhook's secret"
        );
    };
    let client = synchub_woocommerce::client::WooClient::new(&store)?;
    let mut existing = Vec::new();
    let mut page = 1u32;
    loop {
        let number = page.to_string();
        let listed = client
            .list(
                "webhooks",
                &[("per_page", "100"), ("page", number.as_str())],
            )
            .await
            .map_err(woo_error)?;
        existing.extend(listed.items.iter().map(|w| {
            let field = |k: &str| w[k].as_str().unwrap_or_default().to_string();
            (field("topic"), field("delivery_url"))
        }));
        if page >= listed.total_pages {
            break;
        }
        page += 1;
    }
    let mut plan = split(&existing, address, topics);
    if dry {
        return Ok(plan);
    }
    for topic in &plan.registered {
        let body = json!({
            "name": format!("synchub {} {topic}", cfg.name),
            "status": "active",
            "topic": topic,
            "delivery_url": address,
            "secret": secret.expose_secret(),
        });
        client
            .write("POST", "webhooks", &body, false)
            .await
            .map_err(|e| match woo_error(e) {
                // a key problem, not one of the topic
                e if e.to_string().starts_with("the consumer key") => e,
                e => anyhow!("{topic}: {e:#}"),
            })?;
    }
    plan.registered.sort();
    Ok(plan)
}

/// A read-only key is refused any write: say which key to make instead.
fn woo_error(e: synchub_woocommerce::WooError) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("does not have write permissions") {
        anyhow!(
            "the consumer key is read-only: registering webhooks needs a key with Read/Write \
             permission (WooCommerce › Settings › Advanced › REST API)"
        )
    } else {
        anyhow!(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synchub_engine::config::Direction;

    #[test]
    fn topics_follow_objects_and_direction() {
        let mut cfg = ConnectionConfig {
            name: "shop".into(),
            kind: "shopify".into(),
            direction: Direction::Pull,
            objects: vec![ObjectKind::Contact],
            region: None,
            config: Value::Null,
        };
        assert_eq!(
            topics_for(&cfg),
            ["customers/create", "customers/update", "customers/delete"]
        );
        cfg.direction = Direction::Push;
        assert!(topics_for(&cfg).is_empty());
        cfg.direction = Direction::TwoWay;
        cfg.objects.clear();
        assert_eq!(topics_for(&cfg).len(), SHOPIFY_TOPICS.len());
        cfg.kind = "woocommerce".into();
        assert_eq!(topics_for(&cfg).len(), WOO_TOPICS.len());
        assert_eq!(
            address("https://sync.example.com.tw/", "shop"),
            "https://sync.example.com.tw/webhooks/shop"
        );
    }
}
