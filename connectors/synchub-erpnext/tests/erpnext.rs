//! The ERPNext connector against its sandbox, and the sandbox against the
//! recorded fixtures (`tests/fixtures`, from `api-notes/fixtures/erpnext`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::{json, Map, Value};
use synchub_core::model::Contact;
use synchub_core::{Change, ChangeOp, Connector, Cursor, ErrorClass, ObjectKind, Record, Refusal};
use synchub_erpnext::sandbox::{self, SandboxHandle, SandboxOptions, SANDBOX_KEY, SANDBOX_SECRET};
use synchub_erpnext::{ErpNextConnector, ErpNextFactory};
use synchub_http::{ConnectorFactory, Deps, QuotaConfig};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The payload of a fixture: its `_` metadata keys stripped.
fn payload(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('_') || *k == "_server_messages")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `_server_messages` decoded: a list of objects.
fn messages(v: &Value) -> Value {
    let raw = v["_server_messages"].as_str().unwrap_or("[]");
    let list: Vec<String> = serde_json::from_str(raw).unwrap();
    Value::Array(
        list.iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect(),
    )
}

async fn get(sb: &SandboxHandle, path_and_query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path_and_query}", sb.url()))
        .header(
            "Authorization",
            format!("token {SANDBOX_KEY}:{SANDBOX_SECRET}"),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The fixture's `_request` line as a path with its query encoded.
fn request_path(fixture: &Value) -> String {
    let req = fixture["_request"].as_str().unwrap();
    let target = req.strip_prefix("GET ").unwrap();
    let (path, query) = target.split_once('?').unwrap();
    let mut url = reqwest::Url::parse("http://x").unwrap();
    url.set_path(path);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap();
        url.query_pairs_mut().append_pair(k, v);
    }
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

fn connector(sb: &SandboxHandle, page: u32) -> Arc<dyn Connector> {
    let mut cfg = sb.config();
    cfg.page_size = page;
    cfg.quota = Some(QuotaConfig::per_second(10_000, 10_000));
    ErpNextFactory::build(cfg, &Deps::new("erp", "."))
        .unwrap()
        .connector
}

async fn read_all(
    c: &Arc<dyn Connector>,
    object: ObjectKind,
    from: Option<Cursor>,
) -> (Vec<synchub_core::RemoteRecord>, Option<Cursor>, usize) {
    let mut cursor = from;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = c.pull(object, cursor.as_ref()).await.unwrap();
        pages += 1;
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        out.extend(page.records);
        if page.next.is_some() {
            cursor = page.next;
        }
        if page.done {
            return (out, cursor, pages);
        }
        assert!(pages < 100, "no end");
    }
}

// GIVEN the sandbox with the fixture documents WHEN the fixtures' requests are
// replayed THEN it answers what the fixtures recorded, errors included.
#[tokio::test]
async fn the_sandbox_answers_as_the_fixtures_recorded() {
    let sb = sandbox::spawn(SandboxOptions { fixtures: true })
        .await
        .unwrap();
    let list = fixture("customer_list.json");
    let (status, answer) = get(&sb, &request_path(&list)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["data"], list["data"]);

    let deleted = fixture("deleted_document_list.json");
    let (status, answer) = get(&sb, &request_path(&deleted)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["data"], deleted["data"]);

    let order = fixture("sales_order.json");
    let (status, answer) = get(&sb, "/api/resource/Sales%20Order/SAL-ORD-2024-00042").await;
    assert_eq!(status, 200);
    assert_eq!(answer, order);

    // Without `fields` a list gives names only, 20 by default, modified desc.
    let (_, names) = get(&sb, "/api/resource/Customer").await;
    assert_eq!(names["data"][0], json!({"name": "CUST-2023-00987"}));

    let e404 = fixture("error_404.json");
    let (status, answer) = get(&sb, "/api/resource/Customer/CUST-0999").await;
    assert_eq!(status, 404);
    assert_eq!(
        answer.as_object().map(|m| m.len()),
        Some(2),
        "no traceback keys on a 404: {answer}"
    );
    assert_eq!(answer["exc_type"], e404["exc_type"]);
    assert_eq!(messages(&answer), messages(&payload(&e404)));

    let v2 = fixture("error_v2_404.json");
    let (status, answer) = get(&sb, "/api/v2/document/Customer/CUST-0999").await;
    assert_eq!(status, 404);
    assert_eq!(answer["errors"], v2["errors"]);

    let e403 = fixture("error_403.json");
    sb.site().denied.insert("Customer".into());
    let (status, answer) = get(&sb, "/api/resource/Customer/CUST-2024-00012").await;
    assert_eq!(status, 403);
    assert_eq!(answer["exc_type"], e403["exc_type"]);
    assert_eq!(answer["exception"], e403["exception"]);
    assert_eq!(messages(&answer), messages(&payload(&e403)));
    sb.site().denied.clear();

    // A stale `modified` on an update: the fixture's shape and wording.
    let e417 = fixture("error_417_timestamp_mismatch.json");
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/api/resource/Sales%20Order/SAL-ORD-2024-00042",
            sb.url()
        ))
        .header(
            "Authorization",
            format!("token {SANDBOX_KEY}:{SANDBOX_SECRET}"),
        )
        .json(&json!({"po_no": "PO-7782", "modified": "2024-06-01 10:26:02.000931"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 417);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["exc_type"], e417["exc_type"]);
    assert_eq!(answer["exception"], e417["exception"]);
    assert_eq!(messages(&answer), messages(&payload(&e417)));

    // Bad credentials: 401 AuthenticationError.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/resource/Customer", sb.url()))
        .header("Authorization", "token wrong:key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    sb.shutdown().await;
}

// GIVEN the fixture site WHEN customers, contacts and orders are pulled THEN
// CJK names, +852 phones, addresses and the order's customer link come through.
#[tokio::test]
async fn fixtures_pull_into_the_crm_model() {
    let sb = sandbox::spawn(SandboxOptions { fixtures: true })
        .await
        .unwrap();
    let c = connector(&sb, 2);
    let (customers, _, pages) = read_all(&c, ObjectKind::Company, None).await;
    assert!(pages >= 2, "paged");
    let live: Vec<&synchub_core::RemoteRecord> = customers.iter().filter(|r| !r.deleted).collect();
    assert_eq!(live.len(), 2);
    let Some(Record::Company(tw)) = &live[0].record else {
        panic!("{:?}", live[0])
    };
    assert_eq!(tw.name, "台灣範例股份有限公司");
    assert_eq!(tw.phones, vec!["+886 912 345 678"]);
    assert_eq!(tw.addresses.len(), 1);
    assert_eq!(tw.addresses[0].city.as_deref(), Some("台北市"));
    assert_eq!(
        live[0].version.as_deref(),
        Some("2024-06-01 10:15:42.123456")
    );
    // 10:15:42 in Taipei is 02:15:42 UTC.
    assert_eq!(
        live[0].updated_at.map(|t| t.to_rfc3339()),
        Some("2024-06-01T02:15:42.123456+00:00".into())
    );
    let disabled: Vec<&str> = customers
        .iter()
        .filter(|r| r.deleted)
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(
        disabled,
        vec!["CUST-2023-00987"],
        "a disabled customer reads as deleted"
    );

    let (contacts, _, _) = read_all(&c, ObjectKind::Contact, None).await;
    assert_eq!(contacts.len(), 1);
    let Some(Record::Contact(p)) = &contacts[0].record else {
        panic!()
    };
    assert_eq!(p.full_name.as_deref(), Some("陳大文"));
    assert_eq!(p.phones, vec!["+852 9123 4567", "+852 2345 6789"]);
    assert_eq!(p.emails, vec!["tm.chan@example.hk"]);
    assert_eq!(p.company.as_deref(), Some("陳大文"));

    let (orders, _, _) = read_all(&c, ObjectKind::Order, None).await;
    assert_eq!(orders.len(), 1);
    let Some(Record::Order(o)) = &orders[0].record else {
        panic!()
    };
    let party = o.customer.clone().unwrap();
    assert_eq!(party.email.as_deref(), Some("purchasing@example.com.tw"));
    assert_eq!(party.name.as_deref(), Some("台灣範例股份有限公司"));
    assert_eq!(
        o.custom.get("erpnext_customer"),
        Some(&json!("CUST-2024-00012"))
    );
    assert_eq!(o.total, rust_decimal_macros::dec!(10500));
    assert_eq!(o.lines.len(), 2);
    sb.shutdown().await;
}

fn contact_doc(i: usize, modified: &str) -> Map<String, Value> {
    let v = json!({"name": format!("C-{i:03}"), "first_name": format!("客戶{i}"), "full_name": format!("客戶{i}"),
        "owner": "x", "creation": modified, "modified": modified, "docstatus": 0, "idx": 0, "doctype": "Contact",
        "email_ids": [], "phone_nos": [], "links": []});
    v.as_object().cloned().unwrap()
}

// GIVEN seven contacts sharing one `modified` time and pages of three WHEN a
// read stops after every page and a new connector resumes from the cursor
// THEN every contact comes exactly once, and nothing more after the end.
#[tokio::test]
async fn equal_modified_times_across_page_boundaries_resume_exactly() {
    let sb = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    {
        let mut site = sb.site();
        let list = site.docs.entry("Contact".into()).or_default();
        for i in 0..7 {
            list.push(contact_doc(i, "2024-06-01 10:00:00.000000"));
        }
        list.push(contact_doc(7, "2024-06-01 09:59:59.999999"));
    }
    let full = connector(&sb, 3);
    let (all, end, _) = read_all(&full, ObjectKind::Contact, None).await;
    let ids: Vec<String> = all.iter().map(|r| r.external_id.clone()).collect();
    assert_eq!(
        ids,
        ["C-007", "C-000", "C-001", "C-002", "C-003", "C-004", "C-005", "C-006"]
    );
    for stop in 1..=3 {
        let c = connector(&sb, 3);
        let mut cursor = None;
        let mut seen = Vec::new();
        for _ in 0..stop {
            let p = c.pull(ObjectKind::Contact, cursor.as_ref()).await.unwrap();
            seen.extend(p.records.iter().map(|r| r.external_id.clone()));
            cursor = p.next;
        }
        let restarted = connector(&sb, 3);
        let (rest, _, _) = read_all(&restarted, ObjectKind::Contact, cursor).await;
        seen.extend(rest.iter().map(|r| r.external_id.clone()));
        assert_eq!(seen, ids, "stopped after page {stop}");
    }
    // The overlap re-lists them; none is delivered again.
    let (again, end2, _) = read_all(&full, ObjectKind::Contact, end).await;
    assert!(again.is_empty(), "{again:?}");
    // One of the tied contacts changes: it alone comes.
    sb.site()
        .update(
            "Contact",
            "C-003",
            json!({"designation": "經理"}).as_object().cloned().unwrap(),
        )
        .unwrap();
    let (changed, _, _) = read_all(&full, ObjectKind::Contact, end2).await;
    let ids: Vec<&str> = changed.iter().map(|r| r.external_id.as_str()).collect();
    assert_eq!(ids, ["C-003"]);
    sb.shutdown().await;
}

fn change(
    op: ChangeOp,
    record: Record,
    external_id: Option<String>,
    base_version: Option<String>,
    base: Option<Record>,
) -> Change {
    Change {
        crm_id: "crm-1".into(),
        op,
        external_id,
        base_version,
        record,
        idempotency_key: "key-crm-1".into(),
        base,
    }
}

fn rows(doc: &Map<String, Value>, table: &str, field: &str) -> Vec<String> {
    doc[table]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_str().unwrap().to_string())
        .collect()
}

// GIVEN a CRM contact with a CJK name, +886 and +852 phones and two emails
// WHEN it is created, edited in ERPNext's child tables, read back, edited in
// the CRM and pushed again THEN each side's child rows and the CRM record
// match, unchanged by the trips.
#[tokio::test]
async fn child_tables_round_trip_both_ways() {
    let sb = sandbox::spawn(SandboxOptions { fixtures: true })
        .await
        .unwrap();
    let c = connector(&sb, 50);
    let crm = Contact {
        given_name: Some("美玲".into()),
        family_name: Some("林".into()),
        full_name: Some("林美玲".into()),
        emails: vec!["mei.lin@example.com.tw".into(), "ml@example.hk".into()],
        phones: vec!["+886 912 345 678".into(), "+852 9123 4567".into()],
        ..Contact::default()
    };
    let out = c
        .push(
            ObjectKind::Contact,
            &[change(
                ChangeOp::Create,
                Record::Contact(crm.clone()),
                None,
                None,
                None,
            )],
        )
        .await
        .unwrap();
    let written = out[0].result.clone().unwrap();
    let name = written.external_id.clone();
    assert_eq!(
        written.record,
        Some(Record::Contact(crm.clone())),
        "CRM → ERPNext → CRM is unchanged"
    );
    {
        let site = sb.site();
        let doc = site.doc("Contact", &name).unwrap();
        assert_eq!(rows(doc, "email_ids", "email_id"), crm.emails);
        assert_eq!(rows(doc, "phone_nos", "phone"), crm.phones);
        assert_eq!(doc["email_ids"][0]["is_primary"], json!(1));
        assert_eq!(doc["phone_nos"][0]["is_primary_mobile_no"], json!(1));
        assert_eq!(doc["mobile_no"], json!("+886 912 345 678"));
        assert_eq!(doc["first_name"], json!("美玲"));
        assert_eq!(doc["last_name"], json!("林"));
        assert_eq!(doc["synchub_key"], json!("key-crm-1"));
    }
    // In ERPNext: a third phone row is added, the second email removed.
    let mut edit = Map::new();
    {
        let site = sb.site();
        let doc = site.doc("Contact", &name).unwrap();
        let mut phones = doc["phone_nos"].as_array().unwrap().clone();
        phones.push(json!({"phone": "+886 (2) 2722-9999", "is_primary_phone": 0, "is_primary_mobile_no": 0}));
        edit.insert("phone_nos".into(), Value::Array(phones));
        edit.insert("email_ids".into(), json!([doc["email_ids"][0].clone()]));
    }
    sb.site().update("Contact", &name, edit).unwrap();
    let (pulled, _, _) = read_all(&c, ObjectKind::Contact, None).await;
    let mine = pulled.iter().find(|r| r.external_id == name).unwrap();
    let Some(Record::Contact(remote)) = &mine.record else {
        panic!()
    };
    assert_eq!(
        remote.phones,
        vec!["+886 912 345 678", "+852 9123 4567", "+886 (2) 2722-9999"]
    );
    assert_eq!(remote.emails, vec!["mei.lin@example.com.tw"]);
    assert_eq!(remote.full_name.as_deref(), Some("林美玲"));

    // In the CRM: the +852 phone removed and an email added; pushed sparsely
    // against the version read.
    let mut next = remote.clone();
    next.phones.retain(|p| !p.starts_with("+852"));
    next.emails.push("lin.meiling@example.cn".into());
    let out = c
        .push(
            ObjectKind::Contact,
            &[change(
                ChangeOp::Update,
                Record::Contact(next.clone()),
                Some(name.clone()),
                mine.version.clone(),
                mine.record.clone(),
            )],
        )
        .await
        .unwrap();
    let w = out[0].result.clone().unwrap();
    assert_eq!(w.record, Some(Record::Contact(next.clone())));
    let doc = sb.site().doc("Contact", &name).cloned().unwrap();
    assert_eq!(rows(&doc, "phone_nos", "phone"), next.phones);
    assert_eq!(rows(&doc, "email_ids", "email_id"), next.emails);
    assert_eq!(
        doc["first_name"],
        json!("美玲"),
        "names were not in the sparse update"
    );
    sb.shutdown().await;
}

// GIVEN pushes ERPNext refuses in each way THEN the refusal says what the
// engine does next: validation → Rejected, a stale base → Conflict with the
// current document, a site that is down → Retry, revoked keys → the batch
// fails with a Reauth error.
#[tokio::test]
async fn push_refusals_are_typed() {
    let sb = sandbox::spawn(SandboxOptions { fixtures: true })
        .await
        .unwrap();
    let c = connector(&sb, 50);
    let bad = Contact {
        full_name: Some("王小明".into()),
        emails: vec!["not an email".into()],
        ..Contact::default()
    };
    let out = c
        .push(
            ObjectKind::Contact,
            &[change(
                ChangeOp::Create,
                Record::Contact(bad),
                None,
                None,
                None,
            )],
        )
        .await
        .unwrap();
    match &out[0].result {
        Err(Refusal::Rejected { reason }) => {
            assert!(reason.contains("not a valid Email Address"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let nameless = Contact {
        emails: vec![],
        ..Contact::default()
    };
    let mut ch = change(
        ChangeOp::Create,
        Record::Contact(nameless),
        None,
        None,
        None,
    );
    ch.idempotency_key = "k-nameless".into();
    let out = c.push(ObjectKind::Contact, &[ch]).await.unwrap();
    assert!(
        matches!(&out[0].result, Err(Refusal::Rejected { reason }) if reason.contains("MandatoryError")),
        "{out:?}"
    );

    // Stale: the customer changed in ERPNext after our read.
    let (customers, _, _) = read_all(&c, ObjectKind::Company, None).await;
    let tw = customers
        .iter()
        .find(|r| r.external_id == "CUST-2024-00012")
        .unwrap();
    sb.site()
        .update(
            "Customer",
            "CUST-2024-00012",
            json!({"tax_id": "12345678"}).as_object().cloned().unwrap(),
        )
        .unwrap();
    let Some(Record::Company(mut company)) = tw.record.clone() else {
        panic!()
    };
    company.name = "台灣範例股份有限公司（新）".into();
    let out = c
        .push(
            ObjectKind::Company,
            &[change(
                ChangeOp::Update,
                Record::Company(company),
                Some(tw.external_id.clone()),
                tw.version.clone(),
                tw.record.clone(),
            )],
        )
        .await
        .unwrap();
    match &out[0].result {
        Err(Refusal::Conflict { reason, current }) => {
            assert!(reason.contains("TimestampMismatchError"), "{reason}");
            let current = current.as_ref().expect("the current document");
            let Some(Record::Company(now)) = &current.record else {
                panic!()
            };
            assert_eq!(now.tax_id.as_deref(), Some("12345678"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sb.site().doc("Customer", "CUST-2024-00012").unwrap()["customer_name"],
        json!("台灣範例股份有限公司")
    );

    // A document that no longer exists.
    let gone = change(
        ChangeOp::Update,
        Record::Contact(Contact {
            full_name: Some("x".into()),
            ..Contact::default()
        }),
        Some("nobody".into()),
        None,
        None,
    );
    let out = c.push(ObjectKind::Contact, &[gone]).await.unwrap();
    assert!(
        matches!(&out[0].result, Err(Refusal::Rejected { reason }) if reason.contains("DoesNotExistError")),
        "{out:?}"
    );

    sb.site().faults.down = true;
    let ok = Contact {
        full_name: Some("李四".into()),
        ..Contact::default()
    };
    let mut ch = change(
        ChangeOp::Create,
        Record::Contact(ok.clone()),
        None,
        None,
        None,
    );
    ch.idempotency_key = "k-down".into();
    let out = c.push(ObjectKind::Contact, std::slice::from_ref(&ch)).await;
    sb.site().faults.down = false;
    match out {
        Ok(o) => assert!(matches!(o[0].result, Err(Refusal::Retry { .. })), "{o:?}"),
        Err(e) => assert_eq!(e.class(), ErrorClass::Retry, "{e}"),
    }

    sb.site().api_secret = "rotated".into();
    let e = c
        .push(ObjectKind::Contact, &[ch])
        .await
        .expect_err("revoked");
    assert_eq!(e.class(), ErrorClass::Reauth, "{e}");
    assert!(
        !e.to_string().contains(SANDBOX_SECRET),
        "the secret is never shown: {e}"
    );
    sb.shutdown().await;
}

// GIVEN a create whose answer is lost after ERPNext saved it WHEN the engine
// retries the change THEN the stored reference finds the contact: one
// document, and the retry reports it as written.
#[tokio::test]
async fn a_create_retried_after_a_lost_answer_makes_one_document() {
    let sb = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let c = connector(&sb, 50);
    let crm = Contact {
        full_name: Some("張志明".into()),
        phones: vec!["+886 2 2345 6789".into()],
        ..Contact::default()
    };
    let ch = change(ChangeOp::Create, Record::Contact(crm), None, None, None);
    sb.site().faults.lose_next_write = true;
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&ch))
        .await
        .unwrap();
    assert!(
        matches!(out[0].result, Err(Refusal::Retry { .. })),
        "{out:?}"
    );
    assert_eq!(
        sb.site().count("Contact"),
        1,
        "saved although the answer was lost"
    );
    let out = c
        .push(ObjectKind::Contact, std::slice::from_ref(&ch))
        .await
        .unwrap();
    let w = out[0].result.clone().unwrap();
    assert_eq!(sb.site().count("Contact"), 1);
    assert_eq!(w.external_id, "張志明");
    let writes = sb.site().writes;
    assert_eq!(writes, 1, "the retry created nothing");
    sb.shutdown().await;
}

// GIVEN a full read WHEN a contact is deleted in ERPNext and a customer
// disabled THEN reading on lists both as deleted; a CRM delete of a
// customer disables it.
#[tokio::test]
async fn deletions_come_from_the_deleted_document_feed() {
    let sb = sandbox::spawn(SandboxOptions { fixtures: true })
        .await
        .unwrap();
    let c = connector(&sb, 50);
    let (contacts, end, _) = read_all(&c, ObjectKind::Contact, None).await;
    let name = contacts[0].external_id.clone();
    sb.site().delete("Contact", &name).unwrap();
    let (after, _, _) = read_all(&c, ObjectKind::Contact, end).await;
    assert_eq!(after.len(), 1);
    assert!(
        after[0].deleted && after[0].external_id == name,
        "{after:?}"
    );
    // The fixture's old deletion (before this stream's first read) is not replayed.
    assert!(after.iter().all(|r| r.external_id != "CUST-2024-00005"));

    let (customers, end, _) = read_all(&c, ObjectKind::Company, None).await;
    let hk = customers
        .iter()
        .find(|r| r.external_id == "CUST-2024-00013")
        .unwrap();
    let out = c
        .push(
            ObjectKind::Company,
            &[change(
                ChangeOp::Delete,
                hk.record.clone().unwrap(),
                Some(hk.external_id.clone()),
                None,
                None,
            )],
        )
        .await
        .unwrap();
    assert!(out[0].result.is_ok(), "{out:?}");
    assert_eq!(
        sb.site().doc("Customer", "CUST-2024-00013").unwrap()["disabled"],
        json!(1)
    );
    let (after, _, _) = read_all(&c, ObjectKind::Company, end).await;
    assert_eq!(
        after
            .iter()
            .map(|r| (r.external_id.as_str(), r.deleted))
            .collect::<Vec<_>>(),
        vec![("CUST-2024-00013", true)]
    );
    sb.shutdown().await;
}

// GIVEN the fixture webhook (signed with `frappe_test_secret`) WHEN verified
// THEN it asks for a company sync; its replay is a duplicate; a changed body
// is refused.
#[tokio::test]
async fn the_fixture_webhook_verifies() {
    use synchub_http::webhook::{MemoryReplayGuard, ReplayGuard};
    use synchub_http::BodyCheck;
    let sb = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let built = ErpNextFactory::build(sb.config(), &Deps::new("erp", ".")).unwrap();
    let source = built.webhooks.expect("a webhook source");
    let f = fixture("webhook_on_update.json");
    let body = f["raw_body"].as_str().unwrap().as_bytes().to_vec();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-frappe-webhook-signature",
        f["headers"]["X-Frappe-Webhook-Signature"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    let guard: Arc<dyn ReplayGuard> = Arc::new(MemoryReplayGuard::new(
        std::time::Duration::from_secs(60),
        10,
    ));
    let deliver = |body: Vec<u8>| {
        let (source, headers, guard) = (source.clone(), headers.clone(), guard.clone());
        async move {
            let BodyCheck::Signed(mut p) = source.begin(&headers).unwrap() else {
                panic!()
            };
            p.update(&body);
            let v = p.finish().map_err(|e| e.to_string())?;
            source
                .classify(&v, &headers, &body, guard.as_ref())
                .await
                .map_err(|e| e.to_string())
        }
    };
    let first = deliver(body.clone()).await.unwrap();
    assert_eq!(
        first,
        synchub_core::WebhookAction::Sync {
            object: ObjectKind::Company,
            deleted: None
        }
    );
    assert_eq!(
        deliver(body.clone()).await.unwrap(),
        synchub_core::WebhookAction::Nothing("duplicate")
    );
    let mut tampered = body;
    tampered.push(b' ');
    assert!(deliver(tampered).await.is_err());
    sb.shutdown().await;
}

// The cursor a connector writes is the one it reads.
#[tokio::test]
async fn a_foreign_cursor_is_a_clear_error() {
    let sb = sandbox::spawn(SandboxOptions::default()).await.unwrap();
    let c = ErpNextConnector::new(sb.config(), &Deps::new("erp", ".")).unwrap();
    let e = c
        .pull(
            ObjectKind::Contact,
            Some(&Cursor(json!({"historyId": "1"}))),
        )
        .await
        .expect_err("foreign");
    assert!(e.to_string().contains("not an erpnext cursor"), "{e}");
    sb.shutdown().await;
}
