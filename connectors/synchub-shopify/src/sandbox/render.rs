//! Rows rendered as Shopify renders them: GraphQL nodes (camelCase, GIDs,
//! MoneyBags with decimal strings) and REST/webhook payloads (snake_case,
//! numeric ids, times with the shop's offset).

use chrono::{DateTime, FixedOffset, Offset, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::data::{CustomerRow, OrderRow};
use super::table::Row;

impl Row for CustomerRow {
    fn id(&self) -> u64 {
        self.id
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

impl Row for OrderRow {
    fn id(&self) -> u64 {
        self.id
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

/// `2024-01-02T14:24:09Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The shop's local time (+08:00) as REST and webhooks write it.
pub fn local_time(t: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    t.with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Customer GID.
pub fn customer_gid(id: u64) -> String {
    format!("gid://shopify/Customer/{id}")
}

/// Order GID.
pub fn order_gid(id: u64) -> String {
    format!("gid://shopify/Order/{id}")
}

fn money(amount: Decimal, currency: &str) -> Value {
    // Shopify prints at least one decimal place: "12850.0", "0.0", "598.94"
    let mut s = amount.normalize().to_string();
    if !s.contains('.') {
        s.push_str(".0");
    }
    json!({"amount": s, "currencyCode": currency})
}

fn bag(amount: Decimal, currency: &str) -> Value {
    json!({"shopMoney": money(amount, currency)})
}

/// The display name Shopify derives: `first last`, else the email.
pub fn display_name(c: &CustomerRow) -> String {
    let parts: Vec<&str> = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        c.email.clone().or(c.phone.clone()).unwrap_or_default()
    } else {
        parts.join(" ")
    }
}

/// A GraphQL `Customer` node with the fields the connector selects.
pub fn customer_node(c: &CustomerRow, orders: u64, spent: Decimal) -> Value {
    json!({
        "id": customer_gid(c.id),
        "firstName": c.first_name,
        "lastName": c.last_name,
        "displayName": display_name(c),
        "email": c.email,
        "phone": c.phone,
        "tags": c.tags,
        "note": c.note,
        "state": c.state,
        "createdAt": time(c.created_at),
        "updatedAt": time(c.updated_at),
        "numberOfOrders": orders.to_string(),
        "amountSpent": money(spent, &c.currency),
        "defaultAddress": c.address.as_ref().map(|a| json!({
            "address1": a.address1,
            "address2": null,
            "city": a.city,
            "province": a.province,
            "provinceCode": a.province_code,
            "zip": a.zip,
            "country": a.country,
            "countryCodeV2": a.country_code,
            "phone": a.phone,
            "company": a.company,
        })),
    })
}

/// A GraphQL `Order` node with at most `line_first` line items.
pub fn order_node(o: &OrderRow, buyer: Option<&CustomerRow>, line_first: usize) -> Value {
    let subtotal = o.subtotal();
    let lines: Vec<Value> = o
        .lines
        .iter()
        .take(line_first)
        .map(|l| {
            json!({
                "id": format!("gid://shopify/LineItem/{}", l.id),
                "sku": l.sku,
                "name": l.title,
                "title": l.title,
                "quantity": l.quantity,
                "originalUnitPriceSet": bag(l.price, &o.currency),
                "discountedTotalSet": bag(l.price * Decimal::from(l.quantity), &o.currency),
            })
        })
        .collect();
    json!({
        "id": order_gid(o.id),
        "name": format!("#{}", o.number),
        "email": o.email,
        "phone": null,
        "createdAt": time(o.created_at),
        "processedAt": time(o.created_at),
        "updatedAt": time(o.updated_at),
        "cancelledAt": o.cancelled_at.map(time),
        "closedAt": null,
        "displayFinancialStatus": o.financial,
        "displayFulfillmentStatus": o.fulfillment,
        "currencyCode": o.currency,
        "subtotalPriceSet": bag(subtotal, &o.currency),
        "totalTaxSet": bag(o.tax, &o.currency),
        "totalPriceSet": bag(subtotal + o.tax, &o.currency),
        "customer": buyer.map(|c| json!({
            "id": customer_gid(c.id),
            "email": c.email,
            "displayName": display_name(c),
        })),
        "lineItems": {"nodes": lines},
    })
}

/// The REST/webhook payload of a customer (`customers/create|update`).
pub fn customer_rest(c: &CustomerRow) -> Value {
    json!({
        "id": c.id,
        "email": c.email,
        "created_at": local_time(c.created_at),
        "updated_at": local_time(c.updated_at),
        "first_name": c.first_name,
        "last_name": c.last_name,
        "state": c.state.to_ascii_lowercase(),
        "note": c.note,
        "verified_email": true,
        "multipass_identifier": null,
        "tax_exempt": false,
        "phone": c.phone,
        "currency": c.currency,
        "tags": c.tags.join(", "),
        "addresses": [],
        "tax_exemptions": [],
        "admin_graphql_api_id": customer_gid(c.id),
        "default_address": null,
    })
}

/// The REST/webhook payload of an order (`orders/create|updated`), trimmed.
pub fn order_rest(o: &OrderRow) -> Value {
    json!({
        "id": o.id,
        "admin_graphql_api_id": order_gid(o.id),
        "name": format!("#{}", o.number),
        "email": o.email,
        "created_at": local_time(o.created_at),
        "updated_at": local_time(o.updated_at),
        "currency": o.currency,
        "financial_status": o.financial.to_ascii_lowercase(),
        "total_price": (o.subtotal() + o.tax).to_string(),
        "customer": o.customer_id.map(|id| json!({"id": id, "admin_graphql_api_id": customer_gid(id)})),
    })
}
