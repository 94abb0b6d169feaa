//! Against the real Tryton 8.2 started by `deploy/peers/tryton.sh`
//! (http://127.0.0.1:18000, database `synchub`, admin / admin-pass, with
//! the TWD currency and one company set up by the script).
//!
//! Tests share the database; each names its records with a unique tag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{Duration, Utc};
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use synchub_core::connector::{Change, ChangeOp, Cursor, ObjectKind, Refusal, RemoteRecord};
use synchub_core::model::{LineItem, Order, PartyRef};
use synchub_core::{Connector, ConnectorError, Contact, Record, Watermark};
use synchub_http::Deps;
use synchub_testkit::harness::{drain, unique};
use synchub_tryton::{TrytonConfig, TrytonConnector, TrytonCursor};

const URL: &str = "http://127.0.0.1:18000";

struct Admin {
    http: reqwest::Client,
    auth: String,
}

impl Admin {
    async fn connect() -> Admin {
        let http = reqwest::Client::new();
        let answer = http
            .post(format!("{URL}/synchub/rpc/"))
            .json(&json!({"id": 1, "method": "common.db.login", "params": ["admin", {"password": "admin-pass"}, "en"]}))
            .timeout(StdDuration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("the real Tryton is not running on {URL} ({e}): start it with deploy/peers/tryton.sh")
            });
        let body: Value = answer.json().await.expect("json");
        let uid = body["result"][0].as_i64().expect("uid");
        let token = body["result"][1].as_str().expect("token");
        let auth = format!(
            "Session {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{uid}:{token}"))
        );
        Admin { http, auth }
    }

    async fn m(&self, model: &str, method: &str, mut args: Vec<Value>) -> Value {
        args.push(json!({"company": 1, "companies": [1]}));
        let body: Value = self
            .http
            .post(format!("{URL}/synchub/rpc/"))
            .header("Authorization", &self.auth)
            .json(&json!({"id": 1, "method": format!("model.{model}.{method}"), "params": args}))
            .send()
            .await
            .expect("tryton answers")
            .json()
            .await
            .expect("json");
        assert!(
            !matches!(body.get("error"), Some(e) if !e.is_null()),
            "{model}.{method}: {body}"
        );
        body["result"].clone()
    }
}

fn connector(page_size: u32, overlap: u32, password: &str, login: &str) -> TrytonConnector {
    let cfg: TrytonConfig = serde_json::from_value(json!({
        "url": URL, "database": "synchub", "login": login, "password": password,
        "page_size": page_size, "overlap_seconds": overlap, "push_orders": true,
    }))
    .unwrap();
    TrytonConnector::new(cfg, &Deps::new("erp", ".")).unwrap()
}

fn since(start: chrono::DateTime<Utc>) -> Cursor {
    let c = TrytonCursor {
        wm: Watermark {
            watermark: Some(start),
            ..Watermark::default()
        },
        known: None,
    };
    Cursor(serde_json::to_value(c).unwrap())
}

fn all(pages: &[(Option<Cursor>, Vec<RemoteRecord>)]) -> Vec<&RemoteRecord> {
    pages.iter().flat_map(|(_, r)| r).collect()
}

#[tokio::test]
async fn parties_page_to_the_end_resume_and_edits_and_deletes_are_seen() {
    let admin = Admin::connect().await;
    let start = Utc::now() - Duration::seconds(1);
    let tag = unique("page");
    let mut ours = BTreeMap::new();
    let vals: Vec<Value> = (0..8)
        .map(|i| json!({"name": format!("陳大文{i} {tag}"),
            "contact_mechanisms": [["create", [{"type": "email", "value": format!("tai{i}@example.com.tw")},
                                               {"type": "phone", "value": format!("+886 912 345 {i:03}")}]]],
            "addresses": [["create", [{"street": "中山北路二段 1 號", "city": "台北市", "postal_code": "104"}]]]}))
        .collect();
    let ids = admin.m("party.party", "create", vec![json!(vals)]).await;
    for (i, id) in ids.as_array().unwrap().iter().enumerate() {
        ours.insert(id.as_i64().unwrap().to_string(), format!("陳大文{i} {tag}"));
    }
    let c = connector(3, 0, "admin-pass", "admin");
    let (pages, end) = drain(&c, ObjectKind::Contact, Some(since(start))).await;
    assert!(pages.len() >= 3, "{} pages", pages.len());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in all(&pages)
        .into_iter()
        .filter(|r| ours.contains_key(&r.external_id))
    {
        *seen.entry(r.external_id.clone()).or_default() += 1;
        let Some(Record::Contact(p)) = &r.record else {
            panic!("party maps to a contact")
        };
        assert_eq!(p.full_name.as_ref(), ours.get(&r.external_id));
        assert_eq!(p.emails.len(), 1);
        assert!(p.phones[0].starts_with("+886 912 345 "), "{p:?}");
        assert_eq!(p.addresses[0].city.as_deref(), Some("台北市"));
        assert!(r.version.is_some(), "the _timestamp is the version");
    }
    assert_eq!(seen.len(), 8);
    assert!(seen.values().all(|n| *n == 1));

    // Resume from every cursor: nothing lost, nothing twice.
    for i in 1..pages.len() {
        let before: BTreeSet<String> = pages[..i]
            .iter()
            .flat_map(|(_, r)| r.iter().map(|r| r.external_id.clone()))
            .filter(|id| ours.contains_key(id))
            .collect();
        let (rest, _) = drain(&c, ObjectKind::Contact, pages[i].0.clone()).await;
        let after: Vec<String> = all(&rest)
            .iter()
            .map(|r| r.external_id.clone())
            .filter(|id| ours.contains_key(id))
            .collect();
        let after_set: BTreeSet<String> = after.iter().cloned().collect();
        assert_eq!(after.len(), after_set.len());
        assert!(before.is_disjoint(&after_set));
        assert_eq!(before.len() + after_set.len(), 8, "resume at page {i}");
    }

    // An edit in Tryton is read incrementally, once.
    let edited: i64 = ours.keys().next().unwrap().parse().unwrap();
    admin
        .m(
            "party.party",
            "write",
            vec![
                json!([edited]),
                json!({"name": format!("陳大文（改） {tag}")}),
            ],
        )
        .await;
    let (next, end) = drain(&c, ObjectKind::Contact, Some(end)).await;
    let mine: Vec<_> = all(&next)
        .into_iter()
        .filter(|r| ours.contains_key(&r.external_id))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let Some(Record::Contact(p)) = &mine[0].record else {
        panic!()
    };
    assert_eq!(p.full_name, Some(format!("陳大文（改） {tag}")));

    // A hard delete is found by id reconciliation at the end of the pass.
    let gone: i64 = ours.keys().nth(1).unwrap().parse().unwrap();
    admin.m("party.party", "delete", vec![json!([gone])]).await;
    let (next, _) = drain(&c, ObjectKind::Contact, Some(end)).await;
    let deleted: Vec<_> = all(&next)
        .into_iter()
        .filter(|r| r.external_id == gone.to_string())
        .collect();
    assert_eq!(deleted.len(), 1, "{next:?}");
    assert!(deleted[0].deleted && deleted[0].record.is_none());
}

fn create_change(crm_id: &str, record: Record) -> Change {
    Change {
        crm_id: crm_id.into(),
        op: ChangeOp::Create,
        external_id: None,
        base_version: None,
        record,
        idempotency_key: format!("{crm_id}:create"),
        base: None,
    }
}

#[tokio::test]
async fn crm_writes_land_once_and_a_stale_timestamp_is_a_conflict() {
    let admin = Admin::connect().await;
    let tag = unique("push");
    let crm_id = format!("crm-{tag}");
    let contact = Contact {
        full_name: Some(format!("林美玲 {tag}")),
        emails: vec!["mei.ling@example.com.tw".into()],
        phones: vec!["+886 2 2700 1234".into()],
        ..Contact::default()
    };
    let c = connector(50, 60, "admin-pass", "admin");
    let change = create_change(&crm_id, Record::Contact(contact.clone()));
    let first = c
        .push(ObjectKind::Contact, std::slice::from_ref(&change))
        .await
        .unwrap();
    let written = first[0].result.clone().expect("written");
    let again = c
        .push(ObjectKind::Contact, std::slice::from_ref(&change))
        .await
        .unwrap();
    assert_eq!(
        again[0].result.as_ref().expect("again").external_id,
        written.external_id
    );
    let count = admin
        .m(
            "party.party",
            "search_count",
            vec![json!([[
                "identifiers.code",
                "=",
                format!("synchub:{crm_id}")
            ]])],
        )
        .await;
    assert_eq!(count, json!(1), "a retried create makes one party");
    let Some(Record::Contact(back)) = &written.record else {
        panic!()
    };
    assert_eq!(back.full_name, contact.full_name);
    assert_eq!(back.phones, contact.phones);
    assert_eq!(back.emails, contact.emails);

    // A sparse update: the phones only.
    let mut edited = back.clone();
    edited.phones = vec!["+886 912 000 222".into()];
    let update = Change {
        op: ChangeOp::Update,
        external_id: Some(written.external_id.clone()),
        base_version: written.version.clone(),
        base: written.record.clone(),
        record: Record::Contact(edited.clone()),
        ..change.clone()
    };
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&update))
        .await
        .unwrap();
    let updated = out[0].result.clone().expect("updated");
    let Some(Record::Contact(now)) = &updated.record else {
        panic!()
    };
    assert_eq!(now.phones, vec!["+886 912 000 222".to_string()]);
    assert_eq!(now.emails, contact.emails);

    // Someone edits in Tryton; our write with the old _timestamp is refused.
    let id: i64 = written.external_id.parse().unwrap();
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    admin
        .m(
            "party.party",
            "write",
            vec![json!([id]), json!({"name": format!("林美玲（ERP） {tag}")})],
        )
        .await;
    let mut stale_rec = edited.clone();
    stale_rec.full_name = Some(format!("林美玲（CRM） {tag}"));
    let stale = Change {
        base_version: updated.version.clone(),
        base: updated.record.clone(),
        record: Record::Contact(stale_rec),
        ..update.clone()
    };
    let out = c.push(ObjectKind::Contact, &[stale]).await.unwrap();
    match &out[0].result {
        Err(Refusal::Conflict {
            current: Some(cur),
            reason,
        }) => {
            assert!(reason.contains("ConcurrencyException"), "{reason}");
            let Some(Record::Contact(cur)) = &cur.record else {
                panic!()
            };
            assert_eq!(cur.full_name, Some(format!("林美玲（ERP） {tag}")));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // A write to a party that no longer exists is refused for good.
    let ghost = Change {
        external_id: Some("99999999".into()),
        base_version: None,
        ..update.clone()
    };
    let out = c.push(ObjectKind::Contact, &[ghost]).await.unwrap();
    match &out[0].result {
        Err(r @ Refusal::Rejected { reason }) => {
            assert!(!r.is_transient());
            assert!(reason.contains("127.0.0.1:18000"), "{reason}");
        }
        other => panic!("expected a permanent refusal, got {other:?}"),
    }

    // Delete archives.
    let delete = Change {
        op: ChangeOp::Delete,
        base_version: None,
        ..update
    };
    assert!(c.push(ObjectKind::Contact, &[delete]).await.unwrap()[0]
        .result
        .is_ok());
    let row = admin
        .m(
            "party.party",
            "search_read",
            vec![
                json!([["id", "=", id]]),
                json!(0),
                json!(1),
                Value::Null,
                json!(["active"]),
            ],
        )
        .await;
    assert_eq!(row, json!([]), "archived parties are hidden by default");
}

#[tokio::test]
async fn a_shop_order_becomes_one_sale_across_a_retry() {
    let admin = Admin::connect().await;
    let tag = unique("order");
    let start = Utc::now() - Duration::seconds(1);
    let sku = format!("TEA-{tag}");
    admin
        .m("product.template", "create", vec![json!([{"name": format!("凍頂烏龍 {tag}"), "type": "goods", "default_uom": 1,
            "salable": true, "sale_uom": 1, "list_price": {"__class__": "Decimal", "decimal": "450"},
            "products": [["create", [{"suffix_code": sku}]]]}])])
        .await;
    let order = Order {
        number: Some(format!("#1001-{tag}")),
        customer: Some(PartyRef {
            name: Some(format!("黃淑芬 {tag}")),
            email: Some(format!("{tag}@example.com.tw")),
            ..PartyRef::default()
        }),
        currency: "TWD".into(),
        lines: vec![LineItem {
            sku: Some(sku.clone()),
            description: "凍頂烏龍茶 150g".into(),
            quantity: dec!(3),
            unit_price: dec!(450),
            total: dec!(1350),
            ..LineItem::default()
        }],
        total: dec!(1350),
        ..Order::default()
    };
    let crm_id = format!("crm-order-{tag}");
    let change = create_change(&crm_id, Record::Order(order.clone()));
    let first = connector(50, 60, "admin-pass", "admin");
    let out = first
        .push(ObjectKind::Order, std::slice::from_ref(&change))
        .await
        .unwrap();
    let written = out[0].result.clone().expect("written");
    // A new process (the first was killed before storing the outcome) retries.
    let second = connector(50, 60, "admin-pass", "admin");
    let out = second
        .push(ObjectKind::Order, std::slice::from_ref(&change))
        .await
        .unwrap();
    assert_eq!(
        out[0].result.as_ref().expect("again").external_id,
        written.external_id
    );
    let count = admin
        .m(
            "sale.sale",
            "search_count",
            vec![json!([["reference", "=", crm_id]])],
        )
        .await;
    assert_eq!(count, json!(1), "exactly one sale");
    let Some(Record::Order(back)) = &written.record else {
        panic!()
    };
    assert_eq!(back.total, dec!(1350));
    assert_eq!(back.currency, "TWD");
    assert_eq!(back.lines[0].sku.as_deref(), Some(sku.as_str()));
    assert_eq!(back.lines[0].quantity, dec!(3));

    let (pages, _) = drain(&first, ObjectKind::Order, Some(since(start))).await;
    let mine: Vec<_> = all(&pages)
        .into_iter()
        .filter(|r| r.external_id == written.external_id)
        .collect();
    assert_eq!(mine.len(), 1);
    let Some(Record::Order(pulled)) = &mine[0].record else {
        panic!()
    };
    assert_eq!(
        pulled.customer.as_ref().and_then(|p| p.name.clone()),
        Some(format!("黃淑芬 {tag}"))
    );

    let mut unknown = order;
    unknown.lines[0].sku = Some(format!("NOPE-{tag}"));
    let out = first
        .push(
            ObjectKind::Order,
            &[create_change(
                &format!("{crm_id}-2"),
                Record::Order(unknown),
            )],
        )
        .await
        .unwrap();
    match &out[0].result {
        Err(Refusal::Rejected { reason }) => {
            assert!(reason.contains(&format!("NOPE-{tag}")), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (_inv, _) = drain(&first, ObjectKind::Invoice, None).await;
}

#[tokio::test]
async fn a_wrong_password_is_one_clear_error_naming_user_and_host() {
    Admin::connect().await;
    // A login of its own per run: Tryton rate-limits failed logins per login.
    let login = unique("synchub-nobody");
    let c = connector(50, 60, "not-the-password", &login);
    let e = c.check().await.expect_err("refused");
    let text = e.to_string();
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
    assert!(
        text.contains(&format!("`{login}`")) && text.contains("127.0.0.1:18000"),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
}
