//! The requested cost of a GraphQL document by Shopify's documented rules,
//! computed from the exact text the connector sends, and the page sizes
//! that keep a query under the single-query maximum and the shop's bucket.
//!
//! Rules (<https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits>,
//! "Cost calculation"): a scalar or enum costs 0, an object 1, a connection
//! 2 plus `first` (or `last`) times the cost of one node (the node object
//! itself plus what it selects, nested connections multiplied in), a
//! mutation 10. A requested cost over 1,000 is refused before execution
//! (`MAX_COST_EXCEEDED`).
//!
//! The calculation here is syntactic: a field with a sub-selection and a
//! `first`/`last` argument is a connection; one with a sub-selection and no
//! such argument is an object; a leaf costs nothing. It prices the
//! connector's own documents; what the shop really charges is learned from
//! `extensions.cost.requestedQueryCost` (see [`crate::client`]).

use serde_json::{json, Map, Value};

use crate::gqlparse::{parse, Field, OperationKind, ParseError};
use crate::queries;

/// Shopify's single-query ceiling on the requested cost.
pub const MAX_SINGLE_QUERY_COST: u32 = 1000;
/// The most items a connection page may ask for.
pub const MAX_PAGE: u32 = 250;
/// What a mutation field costs, whatever it selects.
const MUTATION_COST: u64 = 10;

/// The requested cost of `query` with `variables`.
pub fn requested_cost(query: &str, variables: &Value) -> Result<u32, ParseError> {
    let empty = Map::new();
    let vars = variables.as_object().unwrap_or(&empty);
    let op = parse(query, vars)?;
    let total: u64 = match op.kind {
        OperationKind::Mutation => op.selection.iter().map(|_| MUTATION_COST).sum(),
        OperationKind::Query => selection_cost(&op.selection),
    };
    Ok(u32::try_from(total).unwrap_or(u32::MAX))
}

fn selection_cost(fields: &[Field]) -> u64 {
    fields.iter().map(field_cost).sum()
}

fn page_size(field: &Field) -> Option<u64> {
    ["first", "last"]
        .iter()
        .find_map(|k| field.args.get(*k).and_then(Value::as_u64))
}

fn field_cost(field: &Field) -> u64 {
    if field.selection.is_empty() {
        return 0;
    }
    match page_size(field) {
        Some(n) => 2 + n.saturating_mul(node_cost(field)),
        None => 1 + selection_cost(&field.selection),
    }
}

/// One node of a connection: `nodes { … }` or `edges { node { … } }`;
/// `pageInfo` and `cursor` are part of the connection's base cost.
fn node_cost(connection: &Field) -> u64 {
    connection
        .selection
        .iter()
        .filter_map(|f| match f.name.as_str() {
            "nodes" => Some(1 + selection_cost(&f.selection)),
            "edges" => f
                .selection
                .iter()
                .find(|n| n.name == "node")
                .map(|n| 1 + selection_cost(&n.selection)),
            _ => None,
        })
        .max()
        .unwrap_or(1)
}

/// Variables of one customers page.
pub fn customers_vars(first: u32) -> Value {
    json!({"first": first, "after": null, "query": null})
}

/// Variables of one orders page.
pub fn orders_vars(first: u32, lines: u32) -> Value {
    json!({"first": first, "after": null, "query": null, "lines": lines})
}

/// The requested cost of one customers page of `first`.
pub fn customers_page_cost(first: u32) -> u32 {
    requested_cost(queries::CUSTOMERS, &customers_vars(first)).unwrap_or(u32::MAX)
}

/// The requested cost of one orders page of `first` orders with `lines` line items each.
pub fn orders_page_cost(first: u32, lines: u32) -> u32 {
    requested_cost(queries::ORDERS, &orders_vars(first, lines)).unwrap_or(u32::MAX)
}

/// The largest page (≤ 250) whose requested cost stays within `limit`;
/// `None` when not even one item fits.
pub fn largest_page(limit: u32, cost_of: impl Fn(u32) -> u32) -> Option<u32> {
    (1..=MAX_PAGE).rev().find(|n| cost_of(*n) <= limit)
}

/// The limit a page must fit: the single-query maximum, and the bucket
/// size when the plan's bucket is known (a query above the bucket can
/// never be served).
pub fn page_limit(bucket: Option<u32>) -> u32 {
    bucket.map_or(MAX_SINGLE_QUERY_COST, |b| b.min(MAX_SINGLE_QUERY_COST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_the_connector_documents_by_the_documented_rules() {
        // customers: 2 + 250 × (customer 1 + amountSpent 1 + defaultAddress 1)
        assert_eq!(customers_page_cost(250), 752);
        // orders: 2 + 25 × (order 1 + 3 MoneyBag×2 + customer 1
        //   + lineItems (2 + 10 × (line 1 + 2 MoneyBag×2)))
        assert_eq!(orders_page_cost(25, 10), 1502);
        assert_eq!(orders_page_cost(16, 10), 962);
        let update = json!({"input": {"id": "gid://shopify/Customer/1"}});
        assert_eq!(
            requested_cost(queries::CUSTOMER_UPDATE, &update).expect("cost"),
            10
        );
        assert_eq!(requested_cost(queries::SHOP, &json!({})).expect("cost"), 1);
        // the shape of the recorded 502-point customers page: one nested object per node
        let q = "query { customers(first: 250) { pageInfo { hasNextPage endCursor } \
                 edges { cursor node { id email amountSpent { amount currencyCode } } } } }";
        assert_eq!(requested_cost(q, &json!({})).expect("cost"), 502);
    }

    #[test]
    fn page_sizes_fit_the_maximum_and_the_bucket() {
        assert_eq!(
            largest_page(page_limit(None), |n| orders_page_cost(n, 10)),
            Some(16)
        );
        assert_eq!(
            largest_page(page_limit(None), customers_page_cost),
            Some(250)
        );
        // a 500-point bucket: customers pages of at most 166
        assert_eq!(
            largest_page(page_limit(Some(500)), customers_page_cost),
            Some(166)
        );
        // 250 line items per order: not even one order fits
        assert_eq!(
            largest_page(page_limit(None), |n| orders_page_cost(n, 250)),
            None
        );
    }
}
