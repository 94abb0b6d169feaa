//! What a shop connection's credentials may do, compared with what its
//! pipeline entry asks of them, for `synchub check`: a Shopify token's
//! granted access scopes (`GET /admin/oauth/access_scopes.json`) against
//! the scopes its objects and direction need.
//!
//! WooCommerce has no endpoint that tells a key's permission (read, write,
//! read_write): a read-only key shows only when a write is refused (401
//! `woocommerce_rest_authentication_error`), which `--register-webhooks`
//! reports with the way out.
//!
//! <https://shopify.dev/docs/api/admin-rest/latest/resources/accessscope>

use serde_json::Value;
use synchub_core::ObjectKind;
use synchub_engine::config::ConnectionConfig;
use synchub_shopify::ShopifyConfig;

/// A scope the connection needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub scope: &'static str,
    pub why: &'static str,
}

/// Whether the connection syncs `object` (an empty `objects` list means
/// every object the connector has).
pub fn syncs(cfg: &ConnectionConfig, object: ObjectKind) -> bool {
    cfg.objects.is_empty() || cfg.objects.contains(&object)
}

/// The Shopify access scopes a connection needs, from its objects and
/// direction (what `src/queries.rs` sends; docs/connectors/shopify.md,
/// "Access scopes").
pub fn shopify_needs(cfg: &ConnectionConfig) -> Vec<Need> {
    let mut needs = Vec::new();
    if syncs(cfg, ObjectKind::Contact) {
        // a push reads too: a retried create looks for its customer first
        needs.push(Need {
            scope: "read_customers",
            why: "to read customers",
        });
        if cfg.direction.pushes() {
            needs.push(Need {
                scope: "write_customers",
                why: "to push contacts (`direction` pushes)",
            });
        }
    }
    if syncs(cfg, ObjectKind::Order) && cfg.direction.pulls() {
        needs.push(Need {
            scope: "read_orders",
            why: "to read orders",
        });
    }
    needs
}

/// Every scope [`shopify_needs`] can ask for, plus the optional one: the
/// scopes the guide may name (checked by `docs_guides`).
#[cfg(test)]
pub const SHOPIFY_SCOPES: &[&str] = &[
    "read_customers",
    "write_customers",
    "read_orders",
    "read_all_orders",
];

/// The outcome of comparing granted scopes with the needed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeReport {
    /// Needed and not granted: the check fails.
    pub missing: Vec<Need>,
    /// Worth saying but not a failure.
    pub note: Option<String>,
}

/// Compares the granted scopes with what the connection needs. A `write_`
/// scope implies its `read_` scope, as Shopify grants it.
pub fn compare(cfg: &ConnectionConfig, granted: &[String]) -> ScopeReport {
    let has = |scope: &str| {
        granted.iter().any(|g| {
            g == scope
                || scope
                    .strip_prefix("read_")
                    .is_some_and(|rest| g == &format!("write_{rest}"))
        })
    };
    let missing = shopify_needs(cfg)
        .into_iter()
        .filter(|n| !has(n.scope))
        .collect();
    let note = (syncs(cfg, ObjectKind::Order) && cfg.direction.pulls() && !has("read_all_orders"))
        .then(|| {
            "without `read_all_orders` only the orders of the last 60 days are read".to_string()
        });
    ScopeReport { missing, note }
}

/// The one line naming what is missing, and how to fix it.
pub fn missing_line(missing: &[Need]) -> (String, String) {
    let names: Vec<String> = missing.iter().map(|n| format!("`{}`", n.scope)).collect();
    let whys: Vec<&str> = missing.iter().map(|n| n.why).collect();
    let problem = format!(
        "the access token lacks the {} scope{}, needed {}",
        names.join(" and "),
        if names.len() > 1 { "s" } else { "" },
        whys.join(" and ")
    );
    let fix = format!(
        "in the Shopify admin: Settings → Apps and sales channels → Develop apps → your app → \
         Configuration → Admin API access scopes, tick {}, save, then reinstall the app and put \
         the new token in `access_token` (docs/connectors/shopify.md)",
        names.join(", ")
    );
    (problem, fix)
}

/// The Admin API version the shop serves for the configured one: Shopify
/// answers a request for a version past its end of support with its oldest
/// supported one, named in `X-Shopify-API-Version`.
/// <https://shopify.dev/docs/api/usage/versioning>
pub async fn shopify_served_version(cfg: &ShopifyConfig) -> anyhow::Result<Option<String>> {
    let client = synchub_shopify::client::ShopifyClient::new(cfg)?;
    let resp = client
        .http()
        .post(&format!("/admin/api/{}/graphql.json", cfg.api_version))
        .json(&serde_json::json!({"query": synchub_shopify::queries::SHOP, "variables": {}}))
        .idempotent()
        .send()
        .await?;
    Ok(resp
        .headers()
        .get("x-shopify-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string))
}

/// What is wrong when the shop serves another version than the configured
/// one, and how to fix it.
pub fn version_problem(configured: &str, served: Option<&str>) -> Option<(String, String)> {
    let served = served?;
    if configured == "unstable" || served == configured {
        return None;
    }
    Some((
        format!("`api_version` {configured} is no longer served: Shopify answered as {served}"),
        format!(
            "set `api_version` to a supported version (at least {served}; synchub's default is \
             {}), or remove it",
            synchub_shopify::config::DEFAULT_API_VERSION
        ),
    ))
}

/// The token's granted scopes, asked of the shop.
pub async fn shopify_granted(cfg: &ShopifyConfig) -> anyhow::Result<Vec<String>> {
    let client = synchub_shopify::client::ShopifyClient::new(cfg)?;
    let resp = client
        .http()
        .get("/admin/oauth/access_scopes.json")
        .idempotent()
        .send()
        .await?;
    let status = resp.status().as_u16();
    if status >= 400 {
        anyhow::bail!(
            "reading the token's access scopes: {} answered {status}",
            client.http().host()
        );
    }
    let body: Value = resp.json()?;
    let scopes = body["access_scopes"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("the access scopes answer has no `access_scopes` list"))?
        .iter()
        .filter_map(|s| s["handle"].as_str().map(str::to_string))
        .collect();
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use synchub_engine::config::Direction;

    fn conn(direction: Direction, objects: Vec<ObjectKind>) -> ConnectionConfig {
        ConnectionConfig {
            name: "s".into(),
            kind: "shopify".into(),
            direction,
            objects,
            region: None,
            config: Value::Null,
        }
    }

    #[test]
    fn needs_follow_objects_and_direction() {
        let scopes = |c: &ConnectionConfig| -> Vec<&str> {
            shopify_needs(c).iter().map(|n| n.scope).collect()
        };
        assert_eq!(
            scopes(&conn(Direction::TwoWay, vec![])),
            ["read_customers", "write_customers", "read_orders"]
        );
        assert_eq!(
            scopes(&conn(Direction::Pull, vec![ObjectKind::Contact])),
            ["read_customers"]
        );
        assert_eq!(
            scopes(&conn(Direction::Push, vec![ObjectKind::Contact])),
            ["read_customers", "write_customers"]
        );
        for n in shopify_needs(&conn(Direction::TwoWay, vec![])) {
            assert!(SHOPIFY_SCOPES.contains(&n.scope));
        }
    }

    #[test]
    fn a_write_scope_covers_its_read_scope_and_the_line_names_what_is_missing() {
        let c = conn(Direction::TwoWay, vec![ObjectKind::Contact]);
        let granted = vec!["write_customers".to_string()];
        assert!(compare(&c, &granted).missing.is_empty());
        let granted = vec!["read_customers".to_string()];
        let report = compare(&c, &granted);
        assert_eq!(report.missing.len(), 1);
        let (problem, fix) = missing_line(&report.missing);
        assert!(problem.contains("`write_customers` scope"), "{problem}");
        assert!(fix.contains("reinstall"), "{fix}");
        let orders = conn(Direction::Pull, vec![ObjectKind::Order]);
        let report = compare(&orders, &["read_orders".to_string()]);
        assert!(report.missing.is_empty());
        assert!(report.note.is_some_and(|n| n.contains("read_all_orders")));
    }
}
