//! Mapping tests against the recorded fixtures.

use super::*;
use rust_decimal_macros::dec;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

#[test]
fn maps_the_customers_page_with_cjk_names_and_raw_phones() {
    let page = fixture("customers_page.json");
    let body = page["body"].as_array().expect("array");
    let wang = customer_to_remote(&body[1]).expect("maps");
    assert_eq!(wang.external_id, "26");
    assert_eq!(wang.version.as_deref(), Some("2023-11-20T10:40:12"));
    assert_eq!(
        wang.updated_at.map(|t| t.to_rfc3339()),
        Some("2023-11-20T10:40:12+00:00".into())
    );
    let Some(Record::Contact(c)) = &wang.record else {
        panic!("contact")
    };
    assert_eq!(c.full_name.as_deref(), Some("王小明"));
    assert_eq!(c.phones, vec!["0912-345-678"]);
    assert_eq!(c.company.as_deref(), Some("範例有限公司"));
    assert_eq!(
        c.addresses.len(),
        1,
        "identical shipping address is not repeated"
    );
    let john = customer_to_remote(&body[0]).expect("maps");
    let Some(Record::Contact(j)) = &john.record else {
        panic!("contact")
    };
    assert_eq!(j.full_name.as_deref(), Some("John Doe"));
}

#[test]
fn maps_the_docs_order_exactly_in_decimal() {
    let order = fixture("order.json");
    let r = order_to_remote(&order).expect("maps");
    let Some(Record::Order(o)) = &r.record else {
        panic!("order")
    };
    assert_eq!(o.total, dec!(29.35));
    assert_eq!(o.tax_total, Some(dec!(1.35)));
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.lines[0].unit_price, dec!(3.00));
    assert_eq!(o.lines[0].quantity, dec!(2));
    assert_eq!(o.lines[1].sku.as_deref(), Some("Bar3"));
    assert_eq!(o.financial_status.as_deref(), Some("paid"));
    // a guest order (customer_id 0) links the buyer by email
    let party = o.customer.as_ref().expect("party");
    assert_eq!(party.external_id, None);
    assert_eq!(party.email.as_deref(), Some("john.doe@example.com"));
    assert_eq!(o.custom["shipping_total"], "10.00");
}

#[test]
fn bad_money_is_rejected_with_the_payload() {
    let bad = json!({"id": 9, "total": "12,50", "currency": "TWD"});
    let r = order_to_remote(&bad).expect_err("rejected");
    assert_eq!(r.external_id.as_deref(), Some("9"));
    assert!(r.reason.contains("12,50"));
}

#[test]
fn customer_body_matches_the_batch_fixture_request() {
    let fx = fixture("batch_response.json");
    let contact = Contact {
        phones: vec!["+886 912 345 678".into()],
        ..Contact::default()
    };
    assert_eq!(
        contact_to_customer(&contact),
        json!({"billing": fx["request"]["update"][0]["billing"]})
    );
    let cjk = Contact {
        full_name: Some("陳大文".into()),
        ..Contact::default()
    };
    let body = contact_to_customer(&cjk);
    assert_eq!(
        (body["last_name"].as_str(), body["first_name"].as_str()),
        (Some("陳"), Some("大文"))
    );
}
