//! The `/admin/api/{version}/graphql.json` endpoint: authentication, query
//! cost and the THROTTLED / MAX_COST_EXCEEDED shapes, connections with
//! keyset cursors and `updated_at` search filters, and the customer mutations.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::data::{CustomerRow, OrderRow};
use super::state::ShopState;
use super::table::Position;
use super::{cost, gql, mutate, render};

/// Shared state of the running sandbox.
pub type Shared = Arc<Mutex<ShopState>>;

/// The single query cost ceiling.
const MAX_COST: u64 = 1000;

/// `POST /admin/api/{version}/graphql.json`.
pub async fn graphql(
    State(shared): State<Shared>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shop = match shared.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    // Shopify serves a version it no longer supports as its oldest one.
    let version = match &shop.oldest_version {
        Some(oldest) if version != "unstable" && version.as_str() < oldest.as_str() => {
            oldest.clone()
        }
        _ => version,
    };
    if let Some(secs) = shop.faults.throttle_next.take() {
        let body = json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        if let Ok(v) = secs.to_string().parse() {
            response.headers_mut().insert("retry-after", v);
        }
        return response;
    }
    if shop.faults.down {
        let body = json!({"errors": "Service Unavailable"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if let Some(response) = throttle_write(&mut shop, &body) {
        return response;
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok());
    if token != Some(shop.access_token.as_str()) {
        let body = json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        let body = json!({"errors": {"query": "Required parameter missing or invalid"}});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    let query = req
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let vars = req
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    shop.requests += 1;
    let root = gql::root_field(&query).unwrap_or_default();
    if let Some(scope) = super::admin::scope_of_root(&root) {
        if !shop.scopes.iter().any(|s| s == scope) {
            return Json(super::admin::access_denied(&root, scope)).into_response();
        }
    }
    let priced = match cost::price(&query, &vars) {
        Ok(p) => p,
        Err(e) => return (StatusCode::OK, Json(parse_error(&e.to_string()))).into_response(),
    };
    let requested = priced.requested;
    let answer = if requested > MAX_COST {
        max_cost_exceeded(requested, &mut shop)
    } else if let Some(throttled) = throttle(requested, &mut shop) {
        throttled
    } else {
        let mut out = execute(&root, &query, &vars, &mut shop);
        if matches!(root.as_str(), "customerCreate" | "customerUpdate")
            && std::mem::take(&mut shop.faults.lose_next_write)
        {
            let body = json!({"errors": "Bad Gateway"});
            return (StatusCode::BAD_GATEWAY, Json(body)).into_response();
        }
        let actual = if out.get("errors").is_some() {
            1
        } else {
            cost::actual(&priced, &out["data"])
        };
        out["extensions"] = cost(&mut shop, requested, Some(actual));
        out
    };
    let mut response = Json(answer).into_response();
    if let Ok(v) = version.parse() {
        response.headers_mut().insert("x-shopify-api-version", v);
    }
    response
}

/// [`Faults::throttle_writes`](super::state::Faults): a mutation past the
/// writes let through answers 429 with `Retry-After`; reads still pass.
fn throttle_write(shop: &mut ShopState, body: &[u8]) -> Option<Response> {
    let secs = shop.faults.throttle_writes?;
    let is_write = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|r| r.get("query").and_then(Value::as_str).map(str::to_string))
        .is_some_and(|q| q.trim_start().starts_with("mutation"));
    if !is_write {
        return None;
    }
    if shop.faults.writes_before_throttle > 0 {
        shop.faults.writes_before_throttle -= 1;
        return None;
    }
    let body = json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Ok(v) = secs.to_string().parse() {
        response.headers_mut().insert("retry-after", v);
    }
    Some(response)
}

fn parse_error(message: &str) -> Value {
    json!({"errors": [{"message": message, "extensions": {"code": "PARSE_ERROR"}}]})
}

fn cost(shop: &mut ShopState, requested: u64, actual: Option<u64>) -> Value {
    let (max, available, rate) = match &mut shop.bucket {
        Some(b) => {
            if let Some(a) = actual {
                b.available = (b.available - a as f64).max(0.0);
                shop.charged += a;
            }
            (b.maximum, b.available, b.restore_rate)
        }
        None => (2000.0, 2000.0, 100.0),
    };
    json!({"cost": {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {"maximumAvailable": max, "currentlyAvailable": available.floor() as u64, "restoreRate": rate},
    }})
}

fn throttle(requested: u64, shop: &mut ShopState) -> Option<Value> {
    let bucket = shop.bucket.as_mut()?;
    bucket.refill();
    if bucket.available >= requested as f64 {
        return None;
    }
    shop.throttled += 1;
    let extensions = cost(shop, requested, None);
    Some(json!({
        "errors": [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": extensions,
    }))
}

fn max_cost_exceeded(requested: u64, shop: &mut ShopState) -> Value {
    let message = format!(
        "Query cost is {requested}, which exceeds the single query max cost limit ({MAX_COST}).\n\n\
         See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n\
         cost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk \
         operations should be used instead.\nSee https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"
    );
    let extensions = cost(shop, requested, None);
    json!({
        "errors": [{"message": message, "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_COST}}],
        "extensions": extensions,
    })
}

fn execute(root: &str, query: &str, vars: &Map<String, Value>, shop: &mut ShopState) -> Value {
    match root {
        "shop" => {
            json!({"data": {"shop": {"name": "synchub sandbox", "myshopifyDomain": shop.shop_domain}}})
        }
        "customers" | "orders" => match connection(root, query, vars, shop) {
            Ok(data) => json!({"data": {root: data}}),
            Err(message) => graphql_error(&message, root),
        },
        "customer" => {
            let row = gql::field_args(query, root, vars)
                .get("id")
                .and_then(Value::as_str)
                .and_then(mutate::parse_gid)
                .and_then(|id| shop.customers.get(id));
            let node = row.map(|c| render::customer_node(&c, 0, Default::default()));
            json!({"data": {"customer": node}})
        }
        "customersCount" | "ordersCount" => {
            let total = if root == "customersCount" {
                shop.customers.len()
            } else {
                shop.orders.len()
            };
            json!({"data": {root: count(total, query, root, vars)}})
        }
        "customerCreate" | "customerUpdate" => {
            shop.writes += 1;
            let input = gql::field_args(query, root, vars)
                .remove("input")
                .unwrap_or(Value::Null);
            json!({"data": {root: mutate::customer_write(shop, root, &input)}})
        }
        "bulkOperationRunQuery" | "currentBulkOperation" => {
            super::bulk::graphql(shop, root, query, vars)
        }
        other => undefined_field(other),
    }
}

/// A `Count` answer: `limit` defaults to 10,000 and `null` lifts it; a
/// count at the limit is `AT_LEAST`, otherwise `EXACT`.
fn count(total: u64, query: &str, root: &str, vars: &Map<String, Value>) -> Value {
    let limit = match gql::field_args(query, root, vars).get("limit") {
        Some(Value::Null) => None,
        Some(v) => v.as_u64(),
        None => Some(10_000),
    };
    match limit {
        Some(limit) if total >= limit => json!({"count": limit, "precision": "AT_LEAST"}),
        _ => json!({"count": total, "precision": "EXACT"}),
    }
}

/// Lists one page of a connection in `(updatedAt, id)` order.
fn connection(
    root: &str,
    query: &str,
    vars: &Map<String, Value>,
    shop: &ShopState,
) -> Result<Value, String> {
    let args = gql::field_args(query, root, vars);
    let Some(first) = args.get("first").and_then(Value::as_u64) else {
        return Err("you must provide one of first or last".into());
    };
    if first > 250 {
        return Err(format!(
            "The 'first' argument on '{root}' can't be more than 250."
        ));
    }
    let limit = usize::try_from(first).unwrap_or(250);
    let after = match args.get("after").and_then(Value::as_str) {
        Some(c) => Some(decode_cursor(c).ok_or("Invalid cursor for current pagination sort.")?),
        None => None,
    };
    let filter = parse_search(
        args.get("query")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let (nodes, more, last) = if root == "customers" {
        let (rows, more) = match &filter.tag {
            Some(tag) => tagged(shop, tag, after, limit),
            None => shop
                .customers
                .list(after, filter.since, filter.until, limit),
        };
        let last = rows.last().map(|r: &CustomerRow| (r.updated_at, r.id));
        let nodes: Vec<Value> = rows
            .iter()
            .map(|c| render::customer_node(c, 0, Default::default()))
            .collect();
        (nodes, more, last)
    } else {
        let line_first = gql::field_args(query, "lineItems", vars)
            .get("first")
            .and_then(Value::as_u64)
            .unwrap_or(10);
        let (rows, more) = shop.orders.list(after, filter.since, filter.until, limit);
        let last = rows.last().map(|r: &OrderRow| (r.updated_at, r.id));
        let nodes: Vec<Value> = rows
            .iter()
            .map(|o| {
                let buyer = o.customer_id.and_then(|id| shop.customers.get(id));
                render::order_node(o, buyer.as_ref(), usize::try_from(line_first).unwrap_or(10))
            })
            .collect();
        (nodes, more, last)
    };
    Ok(json!({
        "pageInfo": {"hasNextPage": more, "endCursor": last.map(encode_cursor)},
        "nodes": nodes,
    }))
}

/// Customers carrying `tag`, in `(updatedAt, id)` order after `after`.
fn tagged(
    shop: &ShopState,
    tag: &str,
    after: Option<Position>,
    limit: usize,
) -> (Vec<CustomerRow>, bool) {
    let mut found = Vec::new();
    let mut pos = after;
    loop {
        let (rows, more) = shop.customers.list(pos, None, None, 250);
        pos = rows.last().map(|r| (r.updated_at, r.id)).or(pos);
        found.extend(rows.into_iter().filter(|r| r.tags.iter().any(|t| t == tag)));
        if !more || found.len() > limit {
            break;
        }
    }
    let more = found.len() > limit;
    found.truncate(limit);
    (found, more)
}

/// The `updated_at` bounds (and `tag`) of a search query.
#[derive(Debug, Default, PartialEq)]
pub struct SearchFilter {
    /// Lower bound and whether it is inclusive.
    pub since: Option<(DateTime<Utc>, bool)>,
    /// Exclusive upper bound.
    pub until: Option<DateTime<Utc>>,
    /// `tag:'…'`: only rows carrying this tag.
    pub tag: Option<String>,
}

/// Parses `updated_at:>'…' AND updated_at:<'…'`; other terms are ignored.
pub fn parse_search(q: &str) -> SearchFilter {
    let mut f = SearchFilter::default();
    for term in q.split(" AND ").flat_map(|t| t.split(" and ")) {
        if let Some(tag) = term.trim().strip_prefix("tag:") {
            f.tag = Some(
                tag.trim()
                    .trim_matches(|c| c == '\'' || c == '"')
                    .to_string(),
            );
            continue;
        }
        let Some(rest) = term.trim().strip_prefix("updated_at:") else {
            continue;
        };
        let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
            (">=", v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (">", v)
        } else if let Some(v) = rest.strip_prefix('<') {
            ("<", v.trim_start_matches('='))
        } else {
            continue;
        };
        let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
        let Some(t) = crate::map::parse_time(value) else {
            continue;
        };
        match op {
            ">=" => f.since = Some((t, true)),
            ">" => f.since = Some((t, false)),
            _ => f.until = Some(t),
        }
    }
    f
}

/// Shopify-like opaque cursor: base64 of `{"last_id":…,"last_value":"…"}`.
pub fn encode_cursor(pos: Position) -> String {
    let value = pos.0.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let json = json!({"last_id": pos.1, "last_value": value}).to_string();
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn decode_cursor(c: &str) -> Option<Position> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let id = v.get("last_id")?.as_u64()?;
    let t = NaiveDateTime::parse_from_str(v.get("last_value")?.as_str()?, "%Y-%m-%d %H:%M:%S%.f")
        .ok()?;
    Some((t.and_utc(), id))
}

fn graphql_error(message: &str, field: &str) -> Value {
    json!({"errors": [{"message": message, "locations": [{"line": 2, "column": 3}], "path": ["query", field]}]})
}

fn undefined_field(field: &str) -> Value {
    json!({"errors": [{
        "message": format!("Field '{field}' doesn't exist on type 'QueryRoot'"),
        "locations": [{"line": 1, "column": 3}],
        "path": ["query", field],
        "extensions": {"code": "undefinedField", "typeName": "QueryRoot", "fieldName": field},
    }]})
}

/// Any other path: REST-style 404.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"errors": "Not Found"}))).into_response()
}
