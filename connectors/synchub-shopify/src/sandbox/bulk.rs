//! Bulk operations: `bulkOperationRunQuery` starts an export, the
//! `currentBulkOperation` poll moves it CREATED → RUNNING → COMPLETED, and
//! the result URL streams JSONL generated page by page (nested line items
//! become their own lines with `__parentId`, as Shopify writes them).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::api::{parse_search, SearchFilter, Shared};
use super::state::ShopState;
use super::table::Position;
use super::{gql, render};

/// A bulk query.
#[derive(Debug, Clone)]
pub struct BulkOp {
    /// Numeric id.
    pub id: u64,
    /// `customers` or `orders`.
    pub root: String,
    /// The inner `query:` filter.
    pub search: String,
    /// Polls seen so far.
    pub polls: u32,
    /// When it was created (the shop's clock).
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl BulkOp {
    fn status(&self) -> &'static str {
        match self.polls {
            0 => "CREATED",
            1 => "RUNNING",
            _ => "COMPLETED",
        }
    }
}

/// Serves the two bulk fields.
pub fn graphql(shop: &mut ShopState, root: &str, query: &str, vars: &Map<String, Value>) -> Value {
    if root == "bulkOperationRunQuery" {
        let inner = gql::field_args(query, root, vars)
            .remove("query")
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let inner_root = gql::root_field(&inner).unwrap_or_default();
        if let Some(op) = shop.bulk.as_ref().filter(|op| op.status() != "COMPLETED") {
            let message = format!(
                "A bulk query operation for this app and shop is already in progress: gid://shopify/BulkOperation/{}.",
                op.id
            );
            return json!({"data": {root: {"bulkOperation": null, "userErrors": [{"field": ["query"], "message": message}]}}});
        }
        if inner_root != "customers" && inner_root != "orders" {
            return json!({"data": {root: {"bulkOperation": null, "userErrors": [{"field": ["query"], "message": "Invalid bulk query: the sandbox exports customers or orders"}]}}});
        }
        let search = gql::field_args(&inner, &inner_root, &Map::new())
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let id = shop.bulk.as_ref().map_or(1, |op| op.id + 1);
        let created_at = shop.tick();
        shop.bulk = Some(BulkOp {
            id,
            root: inner_root,
            search,
            polls: 0,
            created_at,
        });
        return json!({"data": {root: {"bulkOperation": {"id": format!("gid://shopify/BulkOperation/{id}"), "status": "CREATED"}, "userErrors": []}}});
    }
    let base = shop.base_url.clone();
    let count = |shop: &ShopState, root: &str| {
        if root == "customers" {
            shop.customers.len()
        } else {
            shop.orders.len()
        }
    };
    let node = match shop.bulk.as_mut() {
        None => Value::Null,
        Some(op) => {
            op.polls += 1;
            let op = op.clone();
            let done = op.status() == "COMPLETED";
            json!({
                "id": format!("gid://shopify/BulkOperation/{}", op.id),
                "status": op.status(),
                "createdAt": render::time(op.created_at),
                "errorCode": null,
                "objectCount": if done { count(shop, &op.root).to_string() } else { "0".into() },
                "rootObjectCount": if done { count(shop, &op.root).to_string() } else { "0".into() },
                "url": done.then(|| format!("{base}/bulk/{}.jsonl", op.id)),
                "partialDataUrl": null,
            })
        }
    };
    json!({"data": {"currentBulkOperation": node}})
}

/// `GET /bulk/{id}.jsonl`: the export, streamed.
pub async fn download(State(shared): State<Shared>, Path(file): Path<String>) -> Response {
    let op = {
        let shop = match shared.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        shop.bulk.clone()
    };
    let wanted = file
        .strip_suffix(".jsonl")
        .and_then(|s| s.parse::<u64>().ok());
    let Some(op) = op.filter(|op| Some(op.id) == wanted && op.status() == "COMPLETED") else {
        return (StatusCode::NOT_FOUND, "NoSuchKey").into_response();
    };
    let filter = parse_search(&op.search);
    let state = (shared, None::<Position>, false);
    let stream = futures::stream::unfold(state, move |(shared, after, done)| {
        let root = op.root.clone();
        let since = filter.since;
        let until = filter.until;
        async move {
            if done {
                return None;
            }
            let (chunk, last, more) = chunk(
                &shared,
                &root,
                after,
                &SearchFilter {
                    since,
                    until,
                    tag: None,
                },
            );
            Some((
                Ok::<Bytes, std::io::Error>(Bytes::from(chunk)),
                (shared, last, !more),
            ))
        }
    });
    Response::builder()
        .header("content-type", "application/jsonl")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn chunk(
    shared: &Shared,
    root: &str,
    after: Option<Position>,
    f: &SearchFilter,
) -> (Vec<u8>, Option<Position>, bool) {
    const ROWS: usize = 1_000;
    let shop = match shared.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut out = Vec::with_capacity(ROWS * 400);
    let mut push = |v: &Value| {
        if serde_json::to_writer(&mut out, v).is_ok() {
            out.push(b'\n');
        }
    };
    if root == "customers" {
        let (rows, more) = shop.customers.list(after, f.since, f.until, ROWS);
        rows.iter()
            .for_each(|c| push(&render::customer_node(c, 0, Default::default())));
        let last = rows.last().map(|r| (r.updated_at, r.id)).or(after);
        (out, last, more)
    } else {
        let (rows, more) = shop.orders.list(after, f.since, f.until, ROWS);
        for o in &rows {
            let buyer = o.customer_id.and_then(|id| shop.customers.get(id));
            let mut node = render::order_node(o, buyer.as_ref(), usize::MAX);
            let lines = node.as_object_mut().and_then(|m| m.remove("lineItems"));
            push(&node);
            let parent = render::order_gid(o.id);
            for mut line in lines
                .and_then(|l| l.get("nodes").cloned())
                .and_then(|n| n.as_array().cloned())
                .unwrap_or_default()
            {
                line["__parentId"] = Value::String(parent.clone());
                push(&line);
            }
        }
        let last = rows.last().map(|r| (r.updated_at, r.id)).or(after);
        (out, last, more)
    }
}
