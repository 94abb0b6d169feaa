//! Mapping tests against the recorded fixtures in `tests/fixtures`.

use super::*;
use rust_decimal_macros::dec;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

#[test]
fn maps_the_cjk_customer_of_the_fixture_page() {
    // GIVEN the recorded customers page
    let page = fixture("graphql_customers_page.json");
    let nodes = page["data"]["customers"]["nodes"]
        .as_array()
        .expect("nodes");
    // WHEN each node is mapped
    let first = customer_to_remote(&nodes[0]).expect("maps");
    let second = customer_to_remote(&nodes[1]).expect("maps");
    // THEN the CJK name is family+given, phones are kept raw, money is exact
    assert_eq!(
        first.external_id,
        "gid://shopify/Customer/706405506930370084"
    );
    assert_eq!(first.version.as_deref(), Some("2024-01-02T14:24:09Z"));
    let Some(Record::Contact(c)) = &first.record else {
        panic!("contact")
    };
    assert_eq!(c.full_name.as_deref(), Some("林美玲"));
    assert_eq!(c.given_name.as_deref(), Some("美玲"));
    assert_eq!(c.emails, vec!["meiling.lin@example.com.tw"]);
    assert_eq!(c.phones, vec!["+886912345678", "+886227208889"]);
    assert_eq!(c.addresses[0].country.as_deref(), Some("TW"));
    assert_eq!(c.addresses[0].region.as_deref(), Some("TPE"));
    assert_eq!(c.custom["amount_spent"]["amount"], "12850.0");
    assert_eq!(c.tags, vec!["VIP", "台北"]);
    let Some(Record::Contact(c2)) = &second.record else {
        panic!("contact")
    };
    assert_eq!(c2.full_name.as_deref(), Some("Tai Man Chan"));
    assert!(c2.addresses.is_empty());
    assert_eq!(c2.custom["state"], "disabled");
}

#[test]
fn maps_orders_with_decimal_totals_lines_and_customer_link() {
    let page = fixture("graphql_orders_page.json");
    let nodes = page["data"]["orders"]["nodes"].as_array().expect("nodes");
    let o = order_to_remote(&nodes[0]).expect("maps");
    let Some(Record::Order(order)) = &o.record else {
        panic!("order")
    };
    assert_eq!(order.total, dec!(598.94));
    assert_eq!(order.subtotal, Some(dec!(597.0)));
    assert_eq!(order.currency, "TWD");
    assert_eq!(
        order.financial_status.as_deref(),
        Some("partially_refunded")
    );
    assert_eq!(order.status.as_deref(), Some("open"));
    assert_eq!(order.lines.len(), 1);
    assert_eq!(order.lines[0].quantity, dec!(3));
    assert_eq!(order.lines[0].unit_price, dec!(199.0));
    assert_eq!(order.lines[0].total, dec!(597.0));
    let party = order.customer.as_ref().expect("customer");
    assert_eq!(
        party.external_id.as_deref(),
        Some("gid://shopify/Customer/706405506930370084")
    );
    // the 0-line guest order maps with an email-only party and no lines
    let guest = order_to_remote(&nodes[1]).expect("maps");
    let Some(Record::Order(g)) = &guest.record else {
        panic!("order")
    };
    assert!(g.lines.is_empty());
    assert_eq!(g.total, dec!(0.0));
    assert_eq!(g.status.as_deref(), Some("cancelled"));
    assert_eq!(
        g.customer.as_ref().and_then(|p| p.email.as_deref()),
        Some("guest@example.hk")
    );
}

#[test]
fn unusable_nodes_are_rejected_with_their_payload() {
    let bad = json!({"id": "gid://shopify/Order/1", "updatedAt": "2024-01-01T00:00:00Z",
        "currencyCode": "TWD", "totalPriceSet": {"shopMoney": {"amount": "12,5", "currencyCode": "TWD"}}});
    let r = order_to_remote(&bad).expect_err("rejected");
    assert_eq!(r.external_id.as_deref(), Some("gid://shopify/Order/1"));
    assert!(r.reason.contains("12,5"), "{}", r.reason);
    let no_time = json!({"id": "gid://shopify/Customer/1", "updatedAt": "yesterday"});
    assert!(customer_to_remote(&no_time).is_err());
}

#[test]
fn customer_input_matches_the_fixture_request_shape() {
    let fx = fixture("graphql_customer_update.json");
    let expected = &fx["request"]["variables"]["input"];
    let contact = Contact {
        phones: vec![" +886912000111 ".into()],
        tags: vec!["VIP".into(), "台北".into(), "synchub".into()],
        ..Contact::default()
    };
    let input =
        contact_to_customer_input(&contact, Some("gid://shopify/Customer/706405506930370084"));
    assert_eq!(&input, expected);
}

#[test]
fn cjk_full_name_splits_family_first() {
    let c = Contact {
        full_name: Some("陳大文".into()),
        ..Contact::default()
    };
    let input = contact_to_customer_input(&c, None);
    assert_eq!(input["lastName"], "陳");
    assert_eq!(input["firstName"], "大文");
    let c = Contact {
        full_name: Some("Tai Man Chan".into()),
        ..Contact::default()
    };
    let input = contact_to_customer_input(&c, None);
    assert_eq!(input["lastName"], "Chan");
    assert_eq!(input["firstName"], "Tai Man");
}

#[test]
fn the_idempotency_key_tag_is_safe_and_never_reaches_the_crm() {
    // GIVEN a key with characters a search query cannot carry
    let tag = key_tag("crm-1/v2 'x'");
    // THEN only the safe characters remain, after the prefix
    assert_eq!(tag, "synchub-key:crm-1v2x");
    assert!(key_tag(&"k".repeat(400)).len() <= 255);
    // WHEN a customer carrying that tag is read back
    let page = fixture("graphql_customers_page.json");
    let mut node = page["data"]["customers"]["nodes"][0].clone();
    node["tags"] = serde_json::json!(["VIP", tag]);
    let rec = customer_to_remote(&node).expect("maps");
    // THEN the CRM sees the shop's own tags only
    let Some(Record::Contact(c)) = &rec.record else {
        panic!("contact")
    };
    assert_eq!(c.tags, vec!["VIP"]);
}
