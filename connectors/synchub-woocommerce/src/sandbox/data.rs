//! Deterministic sample data of the sandbox store, in REST v3 shape.
//!
//! The first customers are the people of the Shopify sandbox under other
//! spellings and phone formats (`Tai Man Chan` / `0932111222` here, `陳大文` /
//! `+886 932-111-222` there), plus messy records (an invalid phone, a guest
//! order, a 0-line order). Further rows are generated from their index.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use crate::map::format_gmt;

/// First customer id.
pub const FIRST_CUSTOMER_ID: u64 = 25;
/// First order id.
pub const FIRST_ORDER_ID: u64 = 727;

/// Seed row `i` was last modified at `2023-12-31 + (i / 2) * 30 s` (GMT):
/// a day before the Shopify sandbox's rows, so the same person's records in
/// the two shops never carry the very same change time (which a newest-wins
/// merge rightly sends to review).
pub fn seed_time(i: u64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2023, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or_default();
    base + Duration::seconds(i64::try_from(i / 2).unwrap_or(0) * 30)
}

/// The site's local time (Asia/Taipei, +08:00) without an offset, as `date_*` fields.
pub fn local(t: DateTime<Utc>) -> String {
    format_gmt(t + Duration::hours(8))
}

fn party(
    first: &str,
    last: &str,
    email: &str,
    phone: &str,
    company: &str,
    city: &str,
    country: &str,
) -> Value {
    json!({
        "first_name": first, "last_name": last, "company": company,
        "address_1": if country == "TW" { "中正路100號" } else { "1 Main Street" }, "address_2": "",
        "city": city, "state": "", "postcode": "100", "country": country,
        "email": email, "phone": phone,
    })
}

/// A customer as the REST API returns it.
pub fn customer_json(
    id: u64,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    billing: Value,
    base_url: &str,
) -> Value {
    let mut shipping = billing.clone();
    if let Some(s) = shipping.as_object_mut() {
        s.remove("email");
        s.insert("phone".into(), json!(""));
    }
    json!({
        "id": id,
        "date_created": local(created), "date_created_gmt": format_gmt(created),
        "date_modified": local(modified), "date_modified_gmt": format_gmt(modified),
        "email": billing["email"], "first_name": billing["first_name"], "last_name": billing["last_name"],
        "role": "customer",
        "username": billing["email"].as_str().and_then(|e| e.split('@').next()).unwrap_or("user").to_ascii_lowercase(),
        "billing": billing, "shipping": shipping,
        "is_paying_customer": true,
        "avatar_url": "https://secure.gravatar.com/avatar/8eb1b522f60d11fa897de1dc6351b7e8?s=96",
        "meta_data": [],
        "_links": {
            "self": [{"href": format!("{base_url}/wp-json/wc/v3/customers/{id}")}],
            "collection": [{"href": format!("{base_url}/wp-json/wc/v3/customers")}],
        },
    })
}

/// Seed customer `i`.
pub fn seed_customer(i: u64, base_url: &str) -> Value {
    let billing = match i {
        0 => party(
            "Tai Man",
            "Chan",
            "Tai.Man.Chan@example.com.tw",
            "0932111222",
            "",
            "Taipei",
            "TW",
        ),
        1 => party(
            "美玲",
            "林",
            "meiling.lin@example.com.tw",
            "+886 912 000 111",
            "",
            "臺北市",
            "TW",
        ),
        2 => party(
            "Siu-ming",
            "WONG",
            "siuming.wong@example.hk",
            "9123 4567",
            "",
            "Kowloon",
            "HK",
        ),
        3 => party(
            "偉",
            "張",
            "zhang.wei@example.cn",
            "138 0013 8000",
            "範例有限公司",
            "上海",
            "CN",
        ),
        4 => party(
            "Amy",
            "Ho",
            "amy.ho@example.com",
            "n/a",
            "",
            "Hong Kong",
            "HK",
        ),
        _ => {
            let given =
                ["小明", "Mei Ling", "家豪", "John", "怡君"][usize::try_from(i % 5).unwrap_or(0)];
            let family =
                ["王", "Lee", "陳", "Smith", "林"][usize::try_from((i / 5) % 5).unwrap_or(0)];
            let phone = format!(
                "09{:02}-{:03}-{:03}",
                i % 100,
                (i * 7) % 1000,
                (i * 13) % 1000
            );
            party(
                given,
                family,
                &format!("customer{i}@example.net"),
                &phone,
                "",
                "Taichung",
                "TW",
            )
        }
    };
    let t = seed_time(i);
    customer_json(
        FIRST_CUSTOMER_ID + i,
        t - Duration::days(20),
        t,
        billing,
        base_url,
    )
}

fn line(id: u64, name: &str, sku: &str, qty: u64, unit_cents: u64) -> Value {
    let total = format!("{}.{:02}", unit_cents * qty / 100, unit_cents * qty % 100);
    json!({
        "id": id, "name": name, "product_id": 93, "variation_id": 0, "quantity": qty,
        "tax_class": "", "subtotal": total, "subtotal_tax": "0.00", "total": total, "total_tax": "0.00",
        "taxes": [], "meta_data": [], "sku": sku, "price": unit_cents / 100,
    })
}

/// Seed order `i` in a store of `customers` customers.
pub fn seed_order(i: u64, customers: u64, base_url: &str) -> Value {
    let id = FIRST_ORDER_ID + i;
    let t = seed_time(i) + Duration::seconds(10);
    let (customer_id, lines, status, currency) = match i {
        0 => (
            Some(0),
            vec![line(
                id * 10,
                "凍頂烏龍茶 150g",
                "TEA-OOLONG-150",
                2,
                19_900,
            )],
            "completed",
            "TWD",
        ),
        // a guest checkout by the same person, e-mail in other case
        1 => (
            None,
            vec![line(id * 10, "青瓷茶杯", "CUP-CELADON", 1, 45_050)],
            "processing",
            "TWD",
        ),
        // a 0-line order
        2 => (Some(3), vec![], "cancelled", "CNY"),
        _ => {
            let n = 1 + i % 2;
            let lines = (0..n)
                .map(|k| {
                    line(
                        id * 10 + k,
                        "商品",
                        &format!("SKU-{:04}", (i + k) % 5000),
                        1 + k,
                        1_000 + (i * 37) % 9_000,
                    )
                })
                .collect();
            (
                (customers > 0).then(|| (i * 7_919) % customers),
                lines,
                "processing",
                "TWD",
            )
        }
    };
    let billing = match customer_id.filter(|c| *c < customers) {
        Some(c) => seed_customer(c, base_url)["billing"].clone(),
        None => party(
            "Tai Man",
            "Chan",
            "tai.man.chan@EXAMPLE.com.tw",
            "0932-111-222",
            "",
            "Taipei",
            "TW",
        ),
    };
    let cents: u64 = lines
        .iter()
        .map(|l: &Value| {
            l["total"]
                .as_str()
                .unwrap_or("0")
                .replace('.', "")
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum();
    let total = format!("{}.{:02}", cents / 100, cents % 100);
    json!({
        "id": id, "parent_id": 0, "number": id.to_string(), "order_key": format!("wc_order_{id:x}"),
        "created_via": "checkout", "version": "8.6.1", "status": status, "currency": currency,
        "date_created": local(t - Duration::hours(1)), "date_created_gmt": format_gmt(t - Duration::hours(1)),
        "date_modified": local(t), "date_modified_gmt": format_gmt(t),
        "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": "0.00", "shipping_tax": "0.00",
        "cart_tax": "0.00", "total": total, "total_tax": "0.00", "prices_include_tax": false,
        "customer_id": customer_id.filter(|c| *c < customers).map_or(0, |c| FIRST_CUSTOMER_ID + c),
        "customer_ip_address": "", "customer_user_agent": "", "customer_note": "",
        "billing": billing.clone(), "shipping": shipping_of(&billing),
        "payment_method": "bacs", "payment_method_title": "Direct Bank Transfer", "transaction_id": "",
        "date_paid": null, "date_paid_gmt": null, "date_completed": null, "date_completed_gmt": null,
        "cart_hash": "", "meta_data": [], "line_items": lines, "tax_lines": [], "shipping_lines": [],
        "fee_lines": [], "coupon_lines": [], "refunds": [],
        "_links": {
            "self": [{"href": format!("{base_url}/wp-json/wc/v3/orders/{id}")}],
            "collection": [{"href": format!("{base_url}/wp-json/wc/v3/orders")}],
        },
    })
}

/// An order's shipping address: the billing one without email and phone.
fn shipping_of(billing: &Value) -> Value {
    let mut s = billing.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("email");
        m.remove("phone");
    }
    s
}
