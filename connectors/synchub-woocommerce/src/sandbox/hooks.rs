//! `GET`/`POST /webhooks`: the store's webhooks, as WooCommerce keeps them.
//! WooCommerce itself does not refuse a second webhook of the same topic and
//! delivery URL (each would deliver every event), so neither does the
//! sandbox: whoever registers must list first. The `secret` is write-only
//! (never returned). The activation ping WooCommerce sends to a new
//! webhook's URL is not sent.
//!
//! <https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks>

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::api::{authorized, error, list_request, list_response};
use super::data;
use crate::map::format_gmt;

type Shared = std::sync::Arc<std::sync::Mutex<super::StoreState>>;
type Params = Query<std::collections::HashMap<String, String>>;

/// Resources and events a webhook topic may name.
const RESOURCES: &[&str] = &["coupon", "customer", "order", "product"];
const EVENTS: &[&str] = &["created", "updated", "deleted", "restored"];

/// `GET /webhooks`.
pub async fn list_webhooks(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, Response> {
    let (store, (per_page, page, desc)) = list_request(&s, &headers, &q)?;
    let items: Vec<&Value> = store.webhooks.iter().collect();
    Ok(list_response(
        &store.base_url,
        "webhooks",
        items,
        per_page,
        page,
        desc,
    ))
}

/// `POST /webhooks` with `{name, status, topic, delivery_url, secret}`.
pub async fn create_webhook(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Params,
    Json(body): Json<Value>,
) -> Response {
    let mut store = match authorized(&s, &headers, &q, "create resources") {
        Ok(mut g) => {
            g.writes += 1;
            g
        }
        Err(r) => return r,
    };
    let topic = body["topic"].as_str().unwrap_or_default().to_string();
    let valid = topic
        .split_once('.')
        .is_some_and(|(resource, event)| RESOURCES.contains(&resource) && EVENTS.contains(&event));
    if !valid {
        return error(
            StatusCode::BAD_REQUEST,
            "woocommerce_rest_webhook_invalid_topic",
            "Webhook topic is required and must be valid.",
            None,
        );
    }
    let url = body["delivery_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return error(
            StatusCode::BAD_REQUEST,
            "rest_invalid_param",
            "Invalid parameter(s): delivery_url",
            Some(json!({"delivery_url": "Invalid URL."})),
        );
    }
    let now = store.tick();
    let id = 100 + store.webhooks.len() as u64 + 1;
    let (resource, event) = topic.split_once('.').unwrap_or_default();
    let name = body["name"]
        .as_str()
        .map_or_else(|| format!("Webhook {id}"), str::to_string);
    let status = body["status"].as_str().unwrap_or("active").to_string();
    let hook = json!({
        "id": id,
        "name": name,
        "status": status,
        "topic": topic,
        "resource": resource,
        "event": event,
        "hooks": [format!("woocommerce_{event}_{resource}")],
        "delivery_url": url,
        "date_created": data::local(now),
        "date_created_gmt": format_gmt(now),
        "date_modified": Value::Null,
        "date_modified_gmt": Value::Null,
    });
    store.webhooks.push(hook.clone());
    (StatusCode::CREATED, Json(hook)).into_response()
}
