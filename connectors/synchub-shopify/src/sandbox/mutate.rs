//! `customerCreate` and `customerUpdate`: validation with Shopify's
//! `userErrors` (HTTP 200), then a write that bumps `updatedAt` and queues
//! the `customers/create|update` webhook, exactly as the shop would.

use serde_json::{json, Value};

use super::data::{self, CustomerRow};
use super::render;
use super::state::ShopState;

fn user_error(field: Option<&str>, message: &str) -> Value {
    json!({"field": field.map(|f| vec![f]), "message": message})
}

/// Numeric id of a customer GID.
pub fn parse_gid(gid: &str) -> Option<u64> {
    gid.strip_prefix("gid://shopify/Customer/")?.parse().ok()
}

/// E.164 as Shopify accepts it: `+` and 8 to 15 digits.
fn valid_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

fn valid_email(e: &str) -> bool {
    let mut parts = e.split('@');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && domain.contains('.') && !e.contains(' '))
}

fn opt_str(input: &Value, key: &str) -> Option<Option<String>> {
    match input.get(key) {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => Some(
            v.as_str()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        ),
    }
}

/// Runs `customerCreate` / `customerUpdate` and returns the payload object.
pub fn customer_write(shop: &mut ShopState, mutation: &str, input: &Value) -> Value {
    let creating = mutation == "customerCreate";
    let existing = if creating {
        None
    } else {
        let id = input.get("id").and_then(Value::as_str).and_then(parse_gid);
        match id.and_then(|id| shop.customers.get(id)) {
            Some(row) => Some(row),
            None => {
                return json!({"customer": null, "userErrors": [user_error(Some("id"), "Customer does not exist")]})
            }
        }
    };
    let mut row = existing.clone().unwrap_or_else(|| CustomerRow {
        id: 0,
        first_name: None,
        last_name: None,
        email: None,
        phone: None,
        tags: Vec::new(),
        note: None,
        state: "DISABLED".into(),
        created_at: data::seed_start(),
        updated_at: data::seed_start(),
        address: None,
        currency: "TWD".into(),
    });
    let mut errors = Vec::new();
    if let Some(v) = opt_str(input, "firstName") {
        row.first_name = v;
    }
    if let Some(v) = opt_str(input, "lastName") {
        row.last_name = v;
    }
    if let Some(v) = opt_str(input, "note") {
        row.note = v;
    }
    if let Some(Value::Array(tags)) = input.get("tags") {
        let mut list: Vec<String> = tags
            .iter()
            .filter_map(Value::as_str)
            .map(|t| t.trim().to_string())
            .collect();
        list.sort();
        list.dedup();
        row.tags = list;
    }
    if let Some(email) = opt_str(input, "email") {
        match &email {
            Some(e) if !valid_email(e) => {
                errors.push(user_error(Some("email"), "Email is invalid"))
            }
            Some(e) if shop.customer_by_email(e).is_some_and(|id| id != row.id) => {
                errors.push(user_error(Some("email"), "Email has already been taken"))
            }
            _ => row.email = email,
        }
    }
    if let Some(phone) = opt_str(input, "phone") {
        match &phone {
            Some(p) if !valid_phone(p) => {
                errors.push(user_error(Some("phone"), "Phone is invalid"))
            }
            Some(p) if shop.customer_by_phone(p).is_some_and(|id| id != row.id) => {
                errors.push(user_error(Some("phone"), "Phone has already been taken"))
            }
            _ => row.phone = phone,
        }
    }
    if creating
        && row.first_name.is_none()
        && row.last_name.is_none()
        && row.email.is_none()
        && row.phone.is_none()
    {
        errors.push(user_error(
            None,
            "Customer must have a name, phone number or email address",
        ));
    }
    if !errors.is_empty() {
        return json!({"customer": null, "userErrors": errors});
    }
    if existing.as_ref() == Some(&row) {
        // nothing changed: Shopify does not bump updatedAt
        return json!({"customer": render::customer_node(&row, 0, Default::default()), "userErrors": []});
    }
    let topic = if creating {
        row.id = shop.customers.allocate_id();
        let now = shop.tick();
        row.created_at = now;
        "customers/create"
    } else {
        "customers/update"
    };
    let saved = shop.save_customer(row, topic);
    json!({"customer": render::customer_node(&saved, 0, Default::default()), "userErrors": []})
}
