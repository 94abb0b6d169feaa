//! The GraphQL documents the connector sends (Admin API 2025-01 schema).

macro_rules! customer_fields {
    () => {
        "id firstName lastName displayName email phone tags note state createdAt updatedAt \
         numberOfOrders amountSpent { amount currencyCode } \
         defaultAddress { address1 address2 city province provinceCode zip country countryCodeV2 phone company }"
    };
}

macro_rules! order_fields {
    ($lines:literal) => {
        concat!(
            "id name email phone createdAt processedAt updatedAt cancelledAt closedAt \
             displayFinancialStatus displayFulfillmentStatus currencyCode \
             subtotalPriceSet { shopMoney { amount currencyCode } } \
             totalTaxSet { shopMoney { amount currencyCode } } \
             totalPriceSet { shopMoney { amount currencyCode } } \
             customer { id email displayName } \
             lineItems(first: ",
            $lines,
            ") { nodes { id sku name title quantity \
             originalUnitPriceSet { shopMoney { amount currencyCode } } \
             discountedTotalSet { shopMoney { amount currencyCode } } } }"
        )
    };
}

/// One page of customers, oldest change first.
pub const CUSTOMERS: &str = concat!(
    "query Customers($first: Int!, $after: String, $query: String) { ",
    "customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { ",
    "pageInfo { hasNextPage endCursor } nodes { ",
    customer_fields!(),
    " } } }"
);

/// One customer by id: an update based on a version compares it with the
/// shop's `updatedAt` first (customers carry no concurrency token).
pub const CUSTOMER: &str = concat!(
    "query Customer($id: ID!) { customer(id: $id) { ",
    customer_fields!(),
    " } }"
);

/// One page of orders with their line items, oldest change first.
pub const ORDERS: &str = concat!(
    "query Orders($first: Int!, $after: String, $query: String, $lines: Int!) { ",
    "orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) { ",
    "pageInfo { hasNextPage endCursor } nodes { ",
    order_fields!("$lines"),
    " } } }"
);

/// `customerCreate`.
pub const CUSTOMER_CREATE: &str = concat!(
    "mutation customerCreate($input: CustomerInput!) { customerCreate(input: $input) { ",
    "customer { ",
    customer_fields!(),
    " } userErrors { field message } } }"
);

/// `customerUpdate`.
pub const CUSTOMER_UPDATE: &str = concat!(
    "mutation customerUpdate($input: CustomerInput!) { customerUpdate(input: $input) { ",
    "customer { ",
    customer_fields!(),
    " } userErrors { field message } } }"
);

/// How many customers the shop holds (`limit: null`: an exact count past
/// the default cap of 10,000). A `Count` object: 1 point.
/// <https://shopify.dev/docs/api/admin-graphql/2025-01/queries/customersCount>
pub const CUSTOMERS_COUNT: &str =
    "query CustomersCount { customersCount(limit: null) { count precision } }";

/// How many orders the shop holds; 1 point.
/// <https://shopify.dev/docs/api/admin-graphql/2025-01/queries/ordersCount>
pub const ORDERS_COUNT: &str = "query OrdersCount { ordersCount(limit: null) { count precision } }";

/// The connectivity check.
pub const SHOP: &str = "query Shop { shop { name myshopifyDomain } }";

/// Bulk export of all customers (no connection arguments inside bulk queries).
pub const BULK_CUSTOMERS: &str = concat!(
    "{ customers { edges { node { ",
    customer_fields!(),
    " } } } }"
);

/// Bulk export of all orders; line items come back as child lines.
pub const BULK_ORDERS: &str = concat!(
    "{ orders { edges { node { ",
    order_fields!("250"),
    " } } } }"
);

/// Starts a bulk export.
pub const BULK_RUN: &str = "mutation bulkOperationRunQuery($query: String!) { bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message } } }";

/// Polls the bulk export.
pub const BULK_POLL: &str = "query BulkPoll { currentBulkOperation { id status createdAt errorCode objectCount rootObjectCount url partialDataUrl } }";
