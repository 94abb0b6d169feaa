//! What the sandbox charges, the way Shopify documents it: every field's
//! cost comes from its type in the schema (scalar or enum 0, object 1,
//! connection 2 + `first` × one node, mutation 10), priced from the query
//! text the sandbox receives. The requested cost is the worst case; the
//! actual cost counts what the answer really holds (null objects and
//! missing nodes are refunded).
//!
//! This is deliberately not the connector's calculation ([`crate::cost`]
//! decides by syntax, this by a schema table), and it is checked against
//! the `extensions.cost` figures of the recorded fixtures.
//!
//! <https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits>

use serde_json::{Map, Value};

use crate::gqlparse::{parse, Field, OperationKind, ParseError};

/// What a field returns, as far as cost goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Returns {
    Scalar,
    Object(&'static str),
    Connection(&'static str),
}

/// The slice of the Admin API schema the sandbox serves.
fn schema(parent: &str, field: &str) -> Returns {
    use Returns::{Connection, Object, Scalar};
    match (parent, field) {
        ("QueryRoot", "customers") => Connection("Customer"),
        ("QueryRoot", "orders") => Connection("Order"),
        ("QueryRoot", "customer") => Object("Customer"),
        ("QueryRoot", "order") => Object("Order"),
        ("QueryRoot", "shop") => Object("Shop"),
        ("QueryRoot", "customersCount" | "ordersCount") => Object("Count"),
        ("QueryRoot", "currentBulkOperation") => Object("BulkOperation"),
        ("Customer", "amountSpent") => Object("MoneyV2"),
        ("Customer", "defaultAddress") => Object("MailingAddress"),
        ("Customer", "orders") => Connection("Order"),
        ("Order", "customer") => Object("Customer"),
        ("Order", "lineItems") => Connection("LineItem"),
        ("Order", "billingAddress" | "shippingAddress") => Object("MailingAddress"),
        (
            "Order",
            "subtotalPriceSet"
            | "totalTaxSet"
            | "totalPriceSet"
            | "totalDiscountsSet"
            | "totalShippingPriceSet"
            | "currentTotalPriceSet",
        ) => Object("MoneyBag"),
        ("LineItem", "originalUnitPriceSet" | "discountedTotalSet" | "originalTotalSet") => {
            Object("MoneyBag")
        }
        ("LineItem", "variant") => Object("ProductVariant"),
        ("LineItem", "product") => Object("Product"),
        ("MoneyBag", "shopMoney" | "presentmentMoney") => Object("MoneyV2"),
        _ => Scalar,
    }
}

/// The priced request.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    /// The parsed operation.
    pub kind: OperationKind,
    /// The root field names.
    pub roots: Vec<Field>,
    /// The requested (worst-case) cost.
    pub requested: u64,
}

/// Prices `query` with `vars` before execution.
pub fn price(query: &str, vars: &Map<String, Value>) -> Result<Priced, ParseError> {
    let op = parse(query, vars)?;
    let requested = match op.kind {
        OperationKind::Mutation => 10 * op.selection.len() as u64,
        OperationKind::Query => op.selection.iter().map(|f| requested(f, "QueryRoot")).sum(),
    };
    Ok(Priced {
        kind: op.kind,
        roots: op.selection,
        requested,
    })
}

fn page_size(f: &Field) -> u64 {
    ["first", "last"]
        .iter()
        .find_map(|k| f.args.get(*k).and_then(Value::as_u64))
        .unwrap_or(0)
}

fn requested(f: &Field, parent: &str) -> u64 {
    match schema(parent, &f.name) {
        Returns::Scalar => 0,
        Returns::Object(t) => 1 + f.selection.iter().map(|c| requested(c, t)).sum::<u64>(),
        Returns::Connection(node) => 2 + page_size(f) * node_requested(f, node),
    }
}

/// One node of a connection (the node object and what it selects); the
/// connection's `pageInfo`, edges and cursors are in its base cost of 2.
fn node_requested(connection: &Field, node: &str) -> u64 {
    node_selections(connection)
        .map(|sel| 1 + sel.iter().map(|c| requested(c, node)).sum::<u64>())
        .max()
        .unwrap_or(1)
}

fn node_selections(connection: &Field) -> impl Iterator<Item = &[Field]> {
    connection
        .selection
        .iter()
        .filter_map(|f| match f.name.as_str() {
            "nodes" => Some(f.selection.as_slice()),
            "edges" => f
                .selection
                .iter()
                .find(|n| n.name == "node")
                .map(|n| n.selection.as_slice()),
            _ => None,
        })
}

/// The actual cost of an executed query: what the answer's `data` holds.
pub fn actual(priced: &Priced, data: &Value) -> u64 {
    match priced.kind {
        OperationKind::Mutation => priced.requested,
        OperationKind::Query => priced
            .roots
            .iter()
            .map(|f| actual_field(f, "QueryRoot", &data[f.name.as_str()]))
            .sum(),
    }
}

fn actual_field(f: &Field, parent: &str, value: &Value) -> u64 {
    match schema(parent, &f.name) {
        Returns::Scalar => 0,
        Returns::Object(_) if value.is_null() => 0,
        Returns::Object(t) => {
            1 + f
                .selection
                .iter()
                .map(|c| actual_field(c, t, &value[c.name.as_str()]))
                .sum::<u64>()
        }
        Returns::Connection(node) => {
            let nodes: Vec<&Value> = match value.get("nodes").and_then(Value::as_array) {
                Some(n) => n.iter().collect(),
                None => value
                    .get("edges")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| &e["node"])
                    .collect(),
            };
            let Some(sel) = node_selections(f).next() else {
                return 2;
            };
            2 + nodes
                .iter()
                .map(|n| {
                    1 + sel
                        .iter()
                        .map(|c| actual_field(c, node, &n[c.name.as_str()]))
                        .sum::<u64>()
                })
                .sum::<u64>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    fn recorded(v: &Value, what: &str) -> u64 {
        v["extensions"]["cost"][what].as_u64().expect(what)
    }

    /// The customers query of the API notes (§2), `first: 250`.
    const NOTES_CUSTOMERS: &str = "query Customers($cursor: String, $q: String) {
      customers(first: 250, after: $cursor, query: $q, sortKey: UPDATED_AT) {
        pageInfo { hasNextPage endCursor }
        nodes { id firstName lastName email phone displayName tags note state
                createdAt updatedAt numberOfOrders amountSpent { amount currencyCode }
                defaultAddress { address1 address2 city province provinceCode zip country countryCodeV2 phone company } } } }";

    #[test]
    fn charges_what_the_recorded_fixtures_report() {
        // customerUpdate: a mutation costs 10 whatever it selects
        let update = fixture("graphql_customer_update.json");
        let req = &update["request"];
        let vars = req["variables"].as_object().expect("vars");
        let priced = price(req["query"].as_str().expect("query"), vars).expect("parse");
        assert_eq!(
            priced.requested,
            recorded(&update["response_ok"], "requestedQueryCost")
        );
        let data = &update["response_ok"]["data"];
        assert_eq!(
            actual(&priced, data),
            recorded(&update["response_ok"], "actualQueryCost")
        );

        // MAX_COST_EXCEEDED: the orders page of 25 orders × 10 line items
        let max = fixture("graphql_max_cost_exceeded.json");
        let orders = "query Orders($first: Int!, $after: String, $query: String, $lines: Int!) {
          orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
            pageInfo { hasNextPage endCursor } nodes { id name email updatedAt currencyCode
              subtotalPriceSet { shopMoney { amount currencyCode } }
              totalTaxSet { shopMoney { amount currencyCode } }
              totalPriceSet { shopMoney { amount currencyCode } }
              customer { id email displayName }
              lineItems(first: $lines) { nodes { id sku name title quantity
                originalUnitPriceSet { shopMoney { amount currencyCode } }
                discountedTotalSet { shopMoney { amount currencyCode } } } } } } }";
        let vars = json!({"first": 25, "lines": 10});
        let priced = price(orders, vars.as_object().expect("vars")).expect("parse");
        assert_eq!(priced.requested, recorded(&max, "requestedQueryCost"));
        assert_eq!(priced.requested, max["errors"][0]["extensions"]["cost"]);

        // the customers page: its actual cost (2 customers, one without a
        // default address: 2 + 3 + 2) is what the notes' query costs on its data
        let page = fixture("graphql_customers_page.json");
        let priced = price(NOTES_CUSTOMERS, &Map::new()).expect("parse");
        assert_eq!(
            actual(&priced, &page["data"]),
            recorded(&page, "actualQueryCost")
        );
        // …while its recorded requested 502 (as in the THROTTLED fixture) is a
        // 250-customer page with one nested object per node, not the notes'
        // query, which the documented rules price at 2 + 250 × 3
        assert_eq!(priced.requested, 752);
        let one_object = "{ customers(first: 250) { pageInfo { hasNextPage endCursor } \
            edges { cursor node { id email amountSpent { amount currencyCode } } } } }";
        let priced = price(one_object, &Map::new()).expect("parse");
        assert_eq!(priced.requested, recorded(&page, "requestedQueryCost"));
        assert_eq!(
            priced.requested,
            recorded(&fixture("graphql_throttled.json"), "requestedQueryCost")
        );
    }
}
