//! Against the real Odoo 11 started by `deploy/peers/odoo.sh`
//! (http://127.0.0.1:18069, database `odoo`, admin/admin).
//!
//! Tests share the one database (Odoo 11 serves a single database here), so
//! every test names its records with a unique prefix and looks only at them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use synchub_core::connector::{Change, ChangeOp, Cursor, ObjectKind, Refusal};
use synchub_core::model::{LineItem, Order, PartyRef};
use synchub_core::{Company, Connector, ConnectorError, Contact, Record, Watermark};
use synchub_http::Deps;
use synchub_odoo::{OdooConfig, OdooConnector, OdooCursor};
use synchub_testkit::harness::{drain, unique};

const URL: &str = "http://127.0.0.1:18069";
const DB: &str = "odoo";

/// The admin side: what a person does in Odoo, over the same JSON-RPC.
struct Admin {
    http: reqwest::Client,
    uid: i64,
}

impl Admin {
    async fn connect() -> Admin {
        let http = reqwest::Client::new();
        let up = http
            .post(format!("{URL}/jsonrpc"))
            .json(&json!({"jsonrpc":"2.0","method":"call","id":0,
                "params":{"service":"common","method":"version","args":[]}}))
            .timeout(StdDuration::from_secs(10))
            .send()
            .await;
        if up.is_err() {
            panic!(
                "the real Odoo is not running on {URL}: start it with deploy/peers/odoo.sh \
                 (deploy/test.sh runs it before the tests)"
            );
        }
        let mut admin = Admin { http, uid: 0 };
        admin.uid = admin
            .call("common", "authenticate", json!([DB, "admin", "admin", {}]))
            .await
            .as_i64()
            .expect("admin/admin logs in");
        admin
    }

    async fn call(&self, service: &str, method: &str, args: Value) -> Value {
        let answer: Value = self
            .http
            .post(format!("{URL}/jsonrpc"))
            .json(&json!({"jsonrpc":"2.0","method":"call","id":1,
                "params":{"service":service,"method":method,"args":args}}))
            .send()
            .await
            .expect("odoo answers")
            .json()
            .await
            .expect("json");
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    async fn x(&self, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
        self.call(
            "object",
            "execute_kw",
            json!([DB, self.uid, "admin", model, method, args, kwargs]),
        )
        .await
    }

    async fn create(&self, model: &str, vals: Value) -> i64 {
        self.x(model, "create", json!([vals]), json!({}))
            .await
            .as_i64()
            .expect("id")
    }

    async fn read_one(&self, model: &str, id: i64, fields: &[&str]) -> Value {
        self.x(
            model,
            "read",
            json!([[id]]),
            json!({"fields": fields, "context": {"active_test": false}}),
        )
        .await[0]
            .clone()
    }
}

fn connector_with(page_size: u32, overlap: u32, password: &str) -> OdooConnector {
    let cfg: OdooConfig = serde_json::from_value(json!({
        "url": URL, "database": DB, "login": "admin", "password": password,
        "page_size": page_size, "overlap_seconds": overlap, "push_orders": true,
    }))
    .unwrap();
    OdooConnector::new(cfg, &Deps::new("erp", ".")).unwrap()
}

/// A cursor whose watermark is `start`: an incremental read of what changed since.
fn since(start: chrono::DateTime<Utc>) -> Cursor {
    let c = OdooCursor {
        wm: Watermark {
            watermark: Some(start),
            ..Watermark::default()
        },
        known: None,
    };
    Cursor(serde_json::to_value(c).unwrap())
}

fn name_of(r: &synchub_core::RemoteRecord) -> String {
    match &r.record {
        Some(Record::Contact(c)) => c.full_name.clone().unwrap_or_default(),
        Some(Record::Company(c)) => c.name.clone(),
        Some(Record::Order(o)) => o
            .custom
            .get("odoo_client_order_ref")
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn partners_page_to_the_end_and_resume_from_every_cursor() {
    let admin = Admin::connect().await;
    let start = Utc::now() - Duration::seconds(1);
    let tag = unique("page");
    let company_name = format!("台灣茶業股份有限公司 {tag}");
    let company = admin
        .create(
            "res.partner",
            json!({"name": company_name, "is_company": true, "phone": "+886 2 2345 6789"}),
        )
        .await;
    let mut ours = BTreeMap::new();
    for i in 0..11 {
        let name = format!("陳大文{i} {tag}");
        let id = admin
            .create(
                "res.partner",
                json!({"name": name, "parent_id": company, "email": format!("tai.man{i}@example.com.tw"),
                       "phone": format!("+886 912 345 {i:03}")}),
            )
            .await;
        ours.insert(id.to_string(), name);
    }
    let c = connector_with(3, 0, "admin");
    let (pages, _) = drain(&c, ObjectKind::Contact, Some(since(start))).await;
    assert!(
        pages.len() >= 4,
        "11 contacts in pages of 3: {} pages",
        pages.len()
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, records) in &pages {
        assert!(records.len() <= 3);
        for r in records.iter().filter(|r| ours.contains_key(&r.external_id)) {
            *seen.entry(r.external_id.clone()).or_default() += 1;
            let Some(Record::Contact(contact)) = &r.record else {
                panic!("a person is a contact: {r:?}");
            };
            // CJK names and +886 phones unchanged; the company link resolved.
            assert_eq!(
                contact.full_name.as_deref(),
                ours.get(&r.external_id).map(String::as_str)
            );
            assert!(
                contact.phones[0].starts_with("+886 912 345 "),
                "{contact:?}"
            );
            assert_eq!(contact.company.as_deref(), Some(company_name.as_str()));
            assert_eq!(
                contact.custom.get("odoo_parent_id"),
                Some(&json!(company.to_string()))
            );
        }
    }
    assert_eq!(seen.len(), 11, "every contact read: {seen:?}");
    assert!(seen.values().all(|n| *n == 1), "each read once: {seen:?}");

    // Resume from every stored cursor: the pages before it plus a fresh
    // read from it deliver each contact, none twice.
    for i in 1..pages.len() {
        let before: BTreeSet<String> = pages[..i]
            .iter()
            .flat_map(|(_, rs)| rs.iter().map(|r| r.external_id.clone()))
            .filter(|id| ours.contains_key(id))
            .collect();
        let (rest, _) = drain(&c, ObjectKind::Contact, pages[i].0.clone()).await;
        let after: Vec<String> = rest
            .iter()
            .flat_map(|(_, rs)| rs.iter().map(|r| r.external_id.clone()))
            .filter(|id| ours.contains_key(id))
            .collect();
        let after_set: BTreeSet<String> = after.iter().cloned().collect();
        assert_eq!(
            after.len(),
            after_set.len(),
            "no repeats resuming at page {i}"
        );
        assert!(
            before.is_disjoint(&after_set),
            "resume at page {i} repeats {before:?} ∩ {after_set:?}"
        );
        assert_eq!(
            before.len() + after_set.len(),
            11,
            "resume at page {i} loses none"
        );
    }

    // Replaying one page (the engine crashed before storing its cursor)
    // reads the same records again.
    let (from, first) = &pages[1];
    let again = c
        .pull(ObjectKind::Contact, from.as_ref())
        .await
        .expect("replay");
    let ids = |rs: &[synchub_core::RemoteRecord]| {
        rs.iter().map(|r| r.external_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&again.records), ids(first));

    // The company is on the company stream, not the contact stream.
    let (companies, _) = drain(&c, ObjectKind::Company, Some(since(start))).await;
    let found: Vec<_> = companies
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .filter(|r| r.external_id == company.to_string())
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(name_of(found[0]), company_name);
    assert!(c.estimate(ObjectKind::Contact).await.unwrap_or(0) >= 11);
}

#[tokio::test]
async fn an_erp_edit_and_an_archive_are_read_incrementally() {
    let admin = Admin::connect().await;
    let start = Utc::now() - Duration::seconds(1);
    let tag = unique("edit");
    let id = admin
        .create(
            "res.partner",
            json!({"name": format!("林美玲 {tag}"), "phone": "+886 2 2700 0000"}),
        )
        .await;
    let c = connector_with(50, 60, "admin");
    let (pages, end) = drain(&c, ObjectKind::Contact, Some(since(start))).await;
    assert!(pages
        .iter()
        .flat_map(|(_, r)| r)
        .any(|r| r.external_id == id.to_string()));
    // Nothing changed: the overlap re-reads but delivers nothing of ours again.
    let (quiet, end) = drain(&c, ObjectKind::Contact, Some(end)).await;
    assert!(!quiet
        .iter()
        .flat_map(|(_, r)| r)
        .any(|r| r.external_id == id.to_string()));

    // Odoo 11 reports write_date to the second: edit in a later second.
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    admin
        .x(
            "res.partner",
            "write",
            json!([[id], {"name": format!("林美玲（改） {tag}")}]),
            json!({}),
        )
        .await;
    let (edited, end) = drain(&c, ObjectKind::Contact, Some(end)).await;
    let mine: Vec<_> = edited
        .iter()
        .flat_map(|(_, r)| r)
        .filter(|r| r.external_id == id.to_string())
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(name_of(mine[0]), format!("林美玲（改） {tag}"));
    assert!(!mine[0].deleted);

    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    admin
        .x(
            "res.partner",
            "write",
            json!([[id], {"active": false}]),
            json!({}),
        )
        .await;
    let (archived, end) = drain(&c, ObjectKind::Contact, Some(end)).await;
    let mine: Vec<_> = archived
        .iter()
        .flat_map(|(_, r)| r)
        .filter(|r| r.external_id == id.to_string())
        .collect();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].deleted, "archived reads as deleted: {:?}", mine[0]);
    assert!(mine[0].record.is_none());

    // A hard delete (unlink) leaves no trace in Odoo; the id reconciliation
    // at the end of the next pass reports it, once.
    let gone = admin
        .create("res.partner", json!({"name": format!("刪除 {tag}")}))
        .await;
    let (_, end) = drain(&c, ObjectKind::Contact, Some(end)).await;
    admin
        .x("res.partner", "unlink", json!([[gone]]), json!({}))
        .await;
    let (after, end) = drain(&c, ObjectKind::Contact, Some(end)).await;
    let deleted: Vec<_> = after
        .iter()
        .flat_map(|(_, r)| r)
        .filter(|r| r.external_id == gone.to_string())
        .collect();
    assert_eq!(deleted.len(), 1, "{after:?}");
    assert!(deleted[0].deleted && deleted[0].record.is_none());
    let (again, _) = drain(&c, ObjectKind::Contact, Some(end)).await;
    assert!(!again
        .iter()
        .flat_map(|(_, r)| r)
        .any(|r| r.external_id == gone.to_string()));
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
async fn crm_edits_are_written_once_read_back_and_refused_when_stale() {
    let admin = Admin::connect().await;
    let tag = unique("push");
    let company_name = format!("高雄港務 {tag}");
    let company = admin
        .create(
            "res.partner",
            json!({"name": company_name, "is_company": true}),
        )
        .await;
    let crm_id = format!("crm-{tag}");
    let contact = Contact {
        full_name: Some(format!("張志明 {tag}")),
        emails: vec!["chang@example.com.tw".into()],
        phones: vec!["+886 7 555 1234".into()],
        company: Some(company_name.clone()),
        ..Contact::default()
    };
    let c = connector_with(50, 60, "admin");
    let change = create_change(&crm_id, Record::Contact(contact.clone()));
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&change))
        .await
        .unwrap();
    let written = out[0].result.clone().expect("written");
    let id: i64 = written.external_id.parse().unwrap();
    let row = admin
        .read_one(
            "res.partner",
            id,
            &["name", "phone", "email", "parent_id", "ref"],
        )
        .await;
    assert_eq!(row["name"], json!(format!("張志明 {tag}")));
    assert_eq!(row["phone"], json!("+886 7 555 1234"));
    assert_eq!(
        row["parent_id"][0],
        json!(company),
        "many2one resolved: {row}"
    );
    assert_eq!(row["ref"], json!(crm_id));

    // The engine retries the create (it never saw the answer): still one partner.
    let again = c
        .push(ObjectKind::Contact, std::slice::from_ref(&change))
        .await
        .unwrap();
    assert_eq!(
        again[0].result.as_ref().expect("written").external_id,
        written.external_id
    );
    assert_eq!(
        again[0].result.as_ref().expect("written").version,
        written.version,
        "a retried create writes nothing"
    );
    let count = admin
        .x(
            "res.partner",
            "search_count",
            json!([[["ref", "=", crm_id]]]),
            json!({"context": {"active_test": false}}),
        )
        .await;
    assert_eq!(count, json!(1));
    let Some(Record::Contact(back)) = &written.record else {
        panic!("mapped back")
    };
    assert_eq!(back.full_name, contact.full_name);
    assert_eq!(back.company.as_deref(), Some(company_name.as_str()));

    // A sparse update from the snapshot.
    let mut edited = back.clone();
    edited.phones = vec!["+886 912 000 111".into()];
    let update = Change {
        op: ChangeOp::Update,
        external_id: Some(written.external_id.clone()),
        base_version: written.version.clone(),
        record: Record::Contact(edited.clone()),
        base: written.record.clone(),
        ..create_change(&crm_id, Record::Contact(edited.clone()))
    };
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&update))
        .await
        .unwrap();
    let updated = out[0].result.clone().expect("updated");
    let row = admin
        .read_one("res.partner", id, &["phone", "name", "parent_id"])
        .await;
    assert_eq!(row["phone"], json!("+886 912 000 111"));
    assert_eq!(row["name"], json!(format!("張志明 {tag}")));
    assert_eq!(row["parent_id"][0], json!(company));

    // Edited in Odoo since our base: a conflict carrying Odoo's copy.
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    admin
        .x(
            "res.partner",
            "write",
            json!([[id], {"function": "經理"}]),
            json!({}),
        )
        .await;
    let stale = Change {
        base_version: updated.version.clone(),
        ..update.clone()
    };
    let out = c.push(ObjectKind::Contact, &[stale]).await.unwrap();
    match &out[0].result {
        Err(Refusal::Conflict {
            current: Some(cur), ..
        }) => {
            let Some(Record::Contact(cur)) = &cur.record else {
                panic!("current record")
            };
            assert_eq!(cur.title.as_deref(), Some("經理"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // A business rule refusal is permanent: a contact made its own parent.
    let mut own_parent = edited.clone();
    own_parent.company = Some(format!("張志明 {tag}"));
    own_parent
        .custom
        .insert("odoo_parent_id".into(), json!(id.to_string()));
    let bad = Change {
        base_version: None,
        base: Some(Record::Contact(edited.clone())),
        record: Record::Contact(own_parent),
        ..update.clone()
    };
    let out = c.push(ObjectKind::Contact, &[bad]).await.unwrap();
    match &out[0].result {
        Err(r @ Refusal::Rejected { reason }) => {
            assert!(!r.is_transient());
            assert!(reason.contains("ValidationError"), "{reason}");
            assert!(reason.contains("127.0.0.1:18069"), "{reason}");
        }
        other => panic!("expected a permanent refusal, got {other:?}"),
    }

    // Delete archives.
    let delete = Change {
        op: ChangeOp::Delete,
        base_version: None,
        ..update
    };
    let out = c.push(ObjectKind::Contact, &[delete]).await.unwrap();
    assert!(out[0].result.is_ok(), "{out:?}");
    let row = admin.read_one("res.partner", id, &["active"]).await;
    assert_eq!(row["active"], json!(false));

    // A company from the CRM.
    let co = Company {
        name: format!("新竹科技 {tag}"),
        tax_id: Some("12345675".into()),
        ..Company::default()
    };
    let out = c
        .push(
            ObjectKind::Company,
            &[create_change(&format!("crm-co-{tag}"), Record::Company(co))],
        )
        .await
        .unwrap();
    let co_id: i64 = out[0]
        .result
        .as_ref()
        .expect("company")
        .external_id
        .parse()
        .unwrap();
    let row = admin
        .read_one("res.partner", co_id, &["is_company", "vat", "name"])
        .await;
    assert_eq!(row["is_company"], json!(true));
    assert_eq!(row["vat"], json!("12345675"));
}

#[tokio::test]
async fn a_shop_order_becomes_one_sale_order_across_a_retry() {
    let admin = Admin::connect().await;
    let tag = unique("order");
    let start = Utc::now() - Duration::seconds(1);
    let sku = format!("TEA-{tag}");
    admin
        .create(
            "product.product",
            json!({"name": format!("凍頂烏龍 {tag}"), "default_code": sku, "list_price": 450.0}),
        )
        .await;
    let order = Order {
        number: Some(format!("#1001-{tag}")),
        customer: Some(PartyRef {
            name: Some(format!("黃淑芬 {tag}")),
            email: Some(format!("{tag}@example.com.tw")),
            ..PartyRef::default()
        }),
        currency: "EUR".into(),
        lines: vec![LineItem {
            sku: Some(sku.clone()),
            description: "凍頂烏龍茶 150g".into(),
            quantity: dec!(3),
            unit_price: dec!(450.50),
            total: dec!(1351.50),
            ..LineItem::default()
        }],
        total: dec!(1351.50),
        ..Order::default()
    };
    let crm_id = format!("crm-order-{tag}");
    let change = create_change(&crm_id, Record::Order(order.clone()));
    let first = connector_with(50, 60, "admin");
    let out = first
        .push(ObjectKind::Order, std::slice::from_ref(&change))
        .await
        .unwrap();
    let written = out[0].result.clone().expect("written");
    // The process was killed before it stored the outcome: a new process
    // pushes the same change again.
    let second = connector_with(50, 60, "admin");
    let out = second
        .push(ObjectKind::Order, std::slice::from_ref(&change))
        .await
        .unwrap();
    assert_eq!(
        out[0].result.as_ref().expect("written").external_id,
        written.external_id
    );
    let count = admin
        .x(
            "sale.order",
            "search_count",
            json!([[["client_order_ref", "=", crm_id]]]),
            json!({}),
        )
        .await;
    assert_eq!(count, json!(1), "exactly one sale order");
    let Some(Record::Order(back)) = &written.record else {
        panic!("order read back")
    };
    assert_eq!(back.total, dec!(1351.5));
    assert_eq!(back.lines.len(), 1);
    assert_eq!(back.lines[0].quantity, dec!(3));
    assert_eq!(back.lines[0].unit_price, dec!(450.5));
    assert_eq!(
        back.custom.get("odoo_origin"),
        Some(&json!(format!("#1001-{tag}")))
    );

    // Pulled back as an order whose customer is the Odoo partner.
    let (pages, _) = drain(&first, ObjectKind::Order, Some(since(start))).await;
    let mine: Vec<_> = pages
        .iter()
        .flat_map(|(_, r)| r)
        .filter(|r| r.external_id == written.external_id)
        .collect();
    assert_eq!(mine.len(), 1);
    let Some(Record::Order(pulled)) = &mine[0].record else {
        panic!("order")
    };
    let partner: i64 = pulled
        .customer
        .as_ref()
        .and_then(|p| p.external_id.clone())
        .expect("customer")
        .parse()
        .unwrap();
    let row = admin
        .read_one("res.partner", partner, &["name", "email"])
        .await;
    assert_eq!(row["name"], json!(format!("黃淑芬 {tag}")));
    assert_eq!(pulled.total, dec!(1351.5));
    assert_eq!(pulled.currency, "EUR");

    // An unknown SKU is refused for good, naming it; updates are refused.
    let mut unknown = order.clone();
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

    // Invoices are pulled from account.invoice on Odoo 11 (none here is fine;
    // the stream must read to its end).
    let (inv, _) = drain(&first, ObjectKind::Invoice, Some(since(start))).await;
    assert!(!inv.is_empty());
}

#[tokio::test]
async fn a_wrong_password_is_one_clear_error_naming_user_and_host() {
    Admin::connect().await;
    let c = connector_with(50, 60, "not-the-password");
    let e = c.check().await.expect_err("refused");
    let text = e.to_string();
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
    assert!(text.contains("`admin`"), "{text}");
    assert!(text.contains("127.0.0.1:18069"), "{text}");
    assert!(text.contains("`odoo`"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    // A pull and a push end with the same error, not a per-record refusal.
    let e = c
        .pull(ObjectKind::Contact, None)
        .await
        .expect_err("refused");
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
    let change = create_change(
        "crm-x",
        Record::Contact(Contact {
            full_name: Some("x".into()),
            ..Contact::default()
        }),
    );
    let e = c
        .push(ObjectKind::Contact, &[change])
        .await
        .expect_err("refused");
    assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_refusal() {
    let cfg: OdooConfig = serde_json::from_value(json!({
        "url": "http://127.0.0.1:9", "database": DB, "login": "admin", "password": "admin",
    }))
    .unwrap();
    let c = OdooConnector::new(cfg, &Deps::new("erp", ".")).unwrap();
    let change = create_change(
        "crm-y",
        Record::Contact(Contact {
            full_name: Some("y".into()),
            ..Contact::default()
        }),
    );
    let out = c
        .push(ObjectKind::Contact, &[change])
        .await
        .expect("per-change outcome");
    match &out[0].result {
        Err(r @ Refusal::Retry { reason, .. }) => {
            assert!(r.is_transient());
            assert!(reason.contains("127.0.0.1:9"), "{reason}");
        }
        other => panic!("expected a transient refusal, got {other:?}"),
    }
}
