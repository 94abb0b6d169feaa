//! The sandbox's REST side beyond GraphQL: the token's granted access
//! scopes and the webhook subscriptions, with Shopify's answers — 401 for
//! a wrong token, 403 naming the scope a topic needs, 422 for a topic
//! already subscribed at the same address (so registering twice makes
//! nothing new).
//!
//! <https://shopify.dev/docs/api/admin-rest/latest/resources/accessscope>,
//! <https://shopify.dev/docs/api/admin-rest/latest/resources/webhook>

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::api::Shared;
use super::state::ShopState;

/// The scopes a sandbox token is granted unless a test says otherwise:
/// everything the connector uses.
pub const DEFAULT_SCOPES: &[&str] = &[
    "read_customers",
    "write_customers",
    "read_orders",
    "read_all_orders",
];

/// Topics the sandbox accepts subscriptions for, with the scope each needs.
const TOPICS: &[(&str, &str)] = &[
    ("customers/create", "read_customers"),
    ("customers/update", "read_customers"),
    ("customers/delete", "read_customers"),
    ("customers/enable", "read_customers"),
    ("customers/disable", "read_customers"),
    ("orders/create", "read_orders"),
    ("orders/updated", "read_orders"),
    ("orders/paid", "read_orders"),
    ("orders/cancelled", "read_orders"),
    ("orders/fulfilled", "read_orders"),
    ("orders/partially_fulfilled", "read_orders"),
    ("orders/delete", "read_orders"),
    ("products/create", "read_products"),
    ("products/update", "read_products"),
    ("products/delete", "read_products"),
    ("app/uninstalled", ""),
];

/// The scope a GraphQL root field needs, for the fields the sandbox serves
/// (bulk operations need the scopes of the query they export, not checked).
pub(crate) fn scope_of_root(root: &str) -> Option<&'static str> {
    match root {
        "customers" | "customersCount" => Some("read_customers"),
        "customerCreate" | "customerUpdate" => Some("write_customers"),
        "orders" | "ordersCount" => Some("read_orders"),
        _ => None,
    }
}

/// The GraphQL answer for a field the token's scopes do not cover.
pub(crate) fn access_denied(root: &str, scope: &str) -> Value {
    json!({"errors": [{
        "message": format!("Access denied for {root} field. Required access: `{scope}` access scope."),
        "extensions": {
            "code": "ACCESS_DENIED",
            "documentation": "https://shopify.dev/api/usage/access-scopes",
            "requiredAccess": format!("`{scope}` access scope."),
        },
        "path": [root],
    }]})
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, ShopState> {
    match shared.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The shop, when the request carries the accepted token; else the 401.
// The error is the answer itself, built once per refused request.
#[allow(clippy::result_large_err)]
fn authorized<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
) -> Result<std::sync::MutexGuard<'a, ShopState>, Response> {
    let mut shop = lock(shared);
    if shop.faults.down {
        let body = json!({"errors": "Service Unavailable"});
        return Err((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok());
    if token != Some(shop.access_token.as_str()) {
        let body = json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"});
        return Err((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    shop.requests += 1;
    Ok(shop)
}

/// `GET /admin/oauth/access_scopes.json`.
pub async fn access_scopes(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let shop = match authorized(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let scopes: Vec<Value> = shop.scopes.iter().map(|s| json!({"handle": s})).collect();
    Json(json!({"access_scopes": scopes})).into_response()
}

/// `GET /admin/api/{version}/webhooks.json`.
pub async fn list_webhooks(
    State(shared): State<Shared>,
    Path(_version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let shop = match authorized(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    Json(json!({"webhooks": shop.subscriptions})).into_response()
}

fn unprocessable(field: &str, message: &str) -> Response {
    let body = json!({"errors": {field: [message]}});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// `POST /admin/api/{version}/webhooks.json` with
/// `{"webhook": {"topic", "address", "format"}}`.
pub async fn create_webhook(
    State(shared): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shop = match authorized(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        let body = json!({"errors": {"webhook": "Required parameter missing or invalid"}});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    let hook = &req["webhook"];
    let topic = hook["topic"].as_str().unwrap_or_default().to_string();
    let address = hook["address"].as_str().unwrap_or_default().to_string();
    let format = hook["format"].as_str().unwrap_or("json").to_string();
    let Some((_, scope)) = TOPICS.iter().find(|(t, _)| *t == topic) else {
        return unprocessable("topic", "Invalid topic specified.");
    };
    if !scope.is_empty() && !shop.scopes.iter().any(|s| s == scope) {
        let body = json!({"errors": format!("[API] This action requires merchant approval for {scope} scope.")});
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    if !(address.starts_with("https://") || address.starts_with("http://")) {
        return unprocessable("address", "is invalid");
    }
    let taken = shop
        .subscriptions
        .iter()
        .any(|w| w["topic"] == topic.as_str() && w["address"] == address.as_str());
    if taken {
        return unprocessable("address", "for this topic has already been taken");
    }
    let now = shop.tick().to_rfc3339();
    let id = 1_000_000 + shop.subscriptions.len() as u64 + 1;
    let created = json!({
        "id": id,
        "address": address,
        "topic": topic,
        "created_at": now,
        "updated_at": now,
        "format": format,
        "fields": [],
        "metafield_namespaces": [],
        "api_version": version,
    });
    shop.subscriptions.push(created.clone());
    (StatusCode::CREATED, Json(json!({"webhook": created}))).into_response()
}
