//! Route handlers of the sandbox store, with WooCommerce's error shapes.

// Helpers return the error answer itself; it is built once per failed request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};

use super::data;
use super::StoreState;
use crate::map::parse_gmt;

type Shared = Arc<Mutex<StoreState>>;
type Params = Query<HashMap<String, String>>;
/// A list request's `per_page`, `page` and whether `order=desc`.
pub(super) type PageAsked = (usize, usize, bool);

pub(super) fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    extra: Option<Value>,
) -> Response {
    let mut data = json!({"status": status.as_u16()});
    if let Some(extra) = extra {
        data["params"] = extra;
    }
    (
        status,
        Json(json!({"code": code, "message": message, "data": data})),
    )
        .into_response()
}

/// Locks the store after checking Basic or query-string credentials.
pub(super) fn authorized<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    what: &str,
) -> Result<MutexGuard<'a, StoreState>, Response> {
    let store = match shared.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut store = store;
    if let Some(secs) = store.faults.throttle_next.take() {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests. Please wait and try again.",
            None,
        );
        if let Ok(v) = secs.to_string().parse() {
            r.headers_mut().insert("retry-after", v);
        }
        return Err(r);
    }
    if store.faults.down {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service Unavailable",
            None,
        ));
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let query = q
        .get("consumer_key")
        .zip(q.get("consumer_secret"))
        .map(|(k, s)| format!("{k}:{s}"));
    let expected = format!("{}:{}", store.consumer_key, store.consumer_secret);
    if basic.or(query).as_deref() != Some(expected.as_str()) {
        let message = format!("Sorry, you cannot {what}.");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_cannot_view",
            &message,
            None,
        ));
    }
    // A key is made read, write or read_write; WooCommerce refuses a
    // request its permission does not cover before routing it
    // (`WC_REST_Authentication::check_permissions`).
    let write = matches!(
        what,
        "create resources" | "edit this resource" | "batch manipulate this resource"
    );
    let allowed = match store.key_permissions.as_str() {
        "read" => !write,
        "write" => write,
        _ => true,
    };
    if !allowed {
        let message = format!(
            "The API key provided does not have {} permissions.",
            if write { "write" } else { "read" }
        );
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "woocommerce_rest_authentication_error",
            &message,
            None,
        ));
    }
    Ok(store)
}

/// `Faults::throttle_writes`: a write past the ones let through answers
/// 429 with `Retry-After`, as a host's rate limiter would.
fn throttled_write(store: &mut StoreState) -> Option<Response> {
    let secs = store.faults.throttle_writes?;
    if store.faults.writes_before_throttle > 0 {
        store.faults.writes_before_throttle -= 1;
        return None;
    }
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "Too many requests. Please wait and try again.",
        None,
    );
    if let Ok(v) = secs.to_string().parse() {
        r.headers_mut().insert("retry-after", v);
    }
    Some(r)
}

pub(super) fn page_params(q: &HashMap<String, String>) -> Result<PageAsked, Response> {
    let per_page = q.get("per_page").map_or(Ok(10), |v| v.parse::<usize>());
    let per_page = match per_page {
        Ok(n) if (1..=100).contains(&n) => n,
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "rest_invalid_param",
                "Invalid parameter(s): per_page",
                Some(
                    json!({"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"}),
                ),
            ))
        }
    };
    let page = match q.get("page").map_or(Ok(1), |v| v.parse::<usize>()) {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "rest_invalid_param",
                "Invalid parameter(s): page",
                Some(json!({"page": "page must be greater than or equal to 1"})),
            ))
        }
    };
    Ok((per_page, page, q.get("order").is_some_and(|o| o == "desc")))
}

/// A list page with the pagination headers.
pub(super) fn list_response(
    base: &str,
    resource: &str,
    items: Vec<&Value>,
    per_page: usize,
    page: usize,
    desc: bool,
) -> Response {
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let mut items = items;
    if desc {
        items.reverse();
    }
    let slice: Vec<&Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut resp = Json(slice).into_response();
    let h = resp.headers_mut();
    let link = |p: usize, rel: &str| {
        format!("<{base}/wp-json/wc/v3/{resource}?per_page={per_page}&page={p}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
    }
    links.push(link(pages, "last"));
    for (name, value) in [
        ("x-wp-total", total.to_string()),
        ("x-wp-totalpages", pages.to_string()),
        ("link", links.join(", ")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// The prelude of every list endpoint: the credentials checked (faults
/// produced), the request counted, the page asked for read.
pub(super) fn list_request<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<(MutexGuard<'a, StoreState>, PageAsked), Response> {
    let mut store = authorized(shared, headers, q, "list resources")?;
    store.requests += 1;
    let page = page_params(q)?;
    Ok((store, page))
}

/// `GET /customers`.
pub async fn list_customers(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, Response> {
    let (store, (per_page, page, desc)) = list_request(&s, &headers, &q)?;
    let email = q.get("email").map(|e| e.to_ascii_lowercase());
    let include: Option<Vec<u64>> = q.get("include").map(|ids| {
        ids.split(',')
            .filter_map(|id| id.trim().parse().ok())
            .collect()
    });
    let items: Vec<&Value> = store
        .customers
        .values()
        .filter(|c| {
            email.as_ref().is_none_or(|e| {
                c["email"].as_str().map(str::to_ascii_lowercase).as_ref() == Some(e)
            }) && include
                .as_ref()
                .is_none_or(|ids| c["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        })
        .collect();
    Ok(list_response(
        &store.base_url,
        "customers",
        items,
        per_page,
        page,
        desc,
    ))
}

/// `GET /orders` with `modified_after` / `modified_before` (GMT with `dates_are_gmt`).
pub async fn list_orders(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Params,
) -> Result<Response, Response> {
    let (store, (per_page, page, desc)) = list_request(&s, &headers, &q)?;
    let gmt = q
        .get("dates_are_gmt")
        .is_some_and(|v| v == "true" || v == "1");
    let bound = |key: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, Response> {
        match q.get(key) {
            None => Ok(None),
            Some(v) => match parse_gmt(v.trim_end_matches('Z')) {
                // without dates_are_gmt the value is site-local (+08:00)
                Some(t) => Ok(Some(if gmt {
                    t
                } else {
                    t - chrono::Duration::hours(8)
                })),
                None => Err(error(
                    StatusCode::BAD_REQUEST,
                    "rest_invalid_param",
                    &format!("Invalid parameter(s): {key}"),
                    Some(json!({key: "Invalid date."})),
                )),
            },
        }
    };
    let (after, before) = (bound("modified_after")?, bound("modified_before")?);
    let status = q.get("status").cloned();
    let items: Vec<&Value> = store
        .orders
        .values()
        .filter(|o| {
            let t = o["date_modified_gmt"].as_str().and_then(parse_gmt);
            after.is_none_or(|a| t.is_some_and(|t| t > a))
                && before.is_none_or(|b| t.is_some_and(|t| t < b))
                && status
                    .as_ref()
                    .is_none_or(|s| s == "any" || o["status"].as_str() == Some(s))
                && (status.as_deref() == Some("trash") || o["status"].as_str() != Some("trash"))
        })
        .collect();
    Ok(list_response(
        &store.base_url,
        "orders",
        items,
        per_page,
        page,
        desc,
    ))
}

fn invalid_id() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "woocommerce_rest_invalid_id",
        "Invalid ID.",
        None,
    )
}

/// `GET /customers/{id}`.
pub async fn get_customer(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(q): Params,
) -> Response {
    match authorized(&s, &headers, &q, "view this resource") {
        Ok(store) => store
            .customers
            .get(&id)
            .map_or_else(invalid_id, |c| Json(c.clone()).into_response()),
        Err(r) => r,
    }
}

/// `GET /orders/{id}`.
pub async fn get_order(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(q): Params,
) -> Response {
    match authorized(&s, &headers, &q, "view this resource") {
        Ok(store) => store
            .orders
            .get(&id)
            .map_or_else(invalid_id, |o| Json(o.clone()).into_response()),
        Err(r) => r,
    }
}

/// Applies a partial body; `Err((status, code, message))` on a refusal.
fn apply(
    store: &mut StoreState,
    id: Option<u64>,
    body: &Value,
) -> Result<Value, (StatusCode, &'static str, String)> {
    let mut row = match id {
        Some(id) => store.customers.get(&id).cloned().ok_or((
            StatusCode::NOT_FOUND,
            "woocommerce_rest_invalid_id",
            "Invalid ID.".into(),
        ))?,
        None => {
            let email = body["email"].as_str().unwrap_or_default();
            if email.is_empty() {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "rest_missing_callback_param",
                    "Missing parameter(s): email".into(),
                ));
            }
            let new_id = store.allocate_id();
            let now = store.tick();
            data::customer_json(
                new_id,
                now,
                now,
                json!({"first_name": "", "last_name": "", "company": "", "address_1": "",
                "address_2": "", "city": "", "state": "", "postcode": "", "country": "", "email": email, "phone": ""}),
                &store.base_url,
            )
        }
    };
    if let Some(email) = body["email"].as_str() {
        if !email.contains('@') {
            return Err((
                StatusCode::BAD_REQUEST,
                "rest_invalid_param",
                "Invalid parameter(s): email".into(),
            ));
        }
        if store
            .customer_by_email(email)
            .is_some_and(|other| Some(other) != row["id"].as_u64())
        {
            return Err((
                StatusCode::BAD_REQUEST,
                "registration-error-email-exists",
                "An account is already registered with your email address. Please log in.".into(),
            ));
        }
    }
    for key in ["email", "first_name", "last_name"] {
        if let Some(v) = body.get(key).filter(|v| v.is_string()) {
            row[key] = v.clone();
        }
    }
    if let Some(meta) = body.get("meta_data").and_then(Value::as_array) {
        // WooCommerce updates meta by key and gives each entry an id.
        for (i, m) in meta.iter().enumerate() {
            let Some(key) = m.get("key").and_then(Value::as_str) else {
                continue;
            };
            let entry = json!({"id": row["id"].as_u64().unwrap_or(0) * 100 + i as u64, "key": key, "value": m.get("value").cloned().unwrap_or(Value::Null)});
            match row["meta_data"].as_array_mut() {
                Some(list) => {
                    list.retain(|e| e["key"].as_str() != Some(key));
                    list.push(entry);
                }
                None => row["meta_data"] = json!([entry]),
            }
        }
    }
    for part in ["billing", "shipping"] {
        if let Some(fields) = body.get(part).and_then(Value::as_object) {
            for (k, v) in fields {
                row[part][k] = v.clone();
            }
        }
    }
    let topic = if id.is_some() {
        "customer.updated"
    } else {
        "customer.created"
    };
    Ok(store.save_customer(row, topic))
}

fn refusal((status, code, message): (StatusCode, &'static str, String)) -> Response {
    error(status, code, &message, None)
}

/// `POST /customers`.
pub async fn create_customer(
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
    if let Some(r) = throttled_write(&mut store) {
        return r;
    }
    match apply(&mut store, None, &body) {
        Ok(_) if std::mem::take(&mut store.faults.lose_next_write) => {
            error(StatusCode::BAD_GATEWAY, "bad_gateway", "Bad Gateway", None)
        }
        Ok(row) => (StatusCode::CREATED, Json(row)).into_response(),
        Err(e) => refusal(e),
    }
}

/// `PUT /customers/{id}` (partial body).
pub async fn update_customer(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Query(q): Params,
    Json(body): Json<Value>,
) -> Response {
    let mut store = match authorized(&s, &headers, &q, "edit this resource") {
        Ok(mut g) => {
            g.writes += 1;
            g
        }
        Err(r) => return r,
    };
    if let Some(r) = throttled_write(&mut store) {
        return r;
    }
    match apply(&mut store, Some(id), &body) {
        Ok(row) => Json(row).into_response(),
        Err(e) => refusal(e),
    }
}

/// `POST /customers/batch`: per-item errors never fail the batch.
pub async fn batch_customers(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Params,
    Json(body): Json<Value>,
) -> Response {
    let mut store = match authorized(&s, &headers, &q, "batch manipulate this resource") {
        Ok(mut g) => {
            g.writes += 1;
            g
        }
        Err(r) => return r,
    };
    if let Some(r) = throttled_write(&mut store) {
        return r;
    }
    let list = |k: &str| {
        body.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (create, update, delete) = (list("create"), list("update"), list("delete"));
    if create.len() + update.len() + delete.len() > 100 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "woocommerce_rest_request_entity_too_large",
            "Unable to accept more than 100 items for this request.",
            None,
        );
    }
    let item_error = |(status, code, message): (StatusCode, &'static str, String)| json!({"id": 0, "error": {"code": code, "message": message, "data": {"status": status.as_u16()}}});
    let created: Vec<Value> = create
        .iter()
        .map(|b| apply(&mut store, None, b).unwrap_or_else(item_error))
        .collect();
    let updated: Vec<Value> = update
        .iter()
        .map(|b| match b["id"].as_u64() {
            Some(id) if store.customers.contains_key(&id) => {
                apply(&mut store, Some(id), b).unwrap_or_else(item_error)
            }
            _ => item_error((
                StatusCode::BAD_REQUEST,
                "woocommerce_rest_invalid_id",
                "Invalid resource ID.".into(),
            )),
        })
        .collect();
    let deleted: Vec<Value> = delete
        .iter()
        .map(
            |id| match id.as_u64().and_then(|id| store.customers.remove(&id)) {
                Some(row) => {
                    store.queue_webhook("customer.deleted", &json!({"id": row["id"]}));
                    row
                }
                None => item_error((
                    StatusCode::BAD_REQUEST,
                    "woocommerce_rest_invalid_id",
                    "Invalid resource ID.".into(),
                )),
            },
        )
        .collect();
    if !create.is_empty() && std::mem::take(&mut store.faults.lose_next_write) {
        return error(StatusCode::BAD_GATEWAY, "bad_gateway", "Bad Gateway", None);
    }
    Json(json!({"create": created, "update": updated, "delete": deleted})).into_response()
}

/// Any other route.
pub async fn no_route() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "rest_no_route",
        "No route was found matching the URL and request method",
        None,
    )
}
